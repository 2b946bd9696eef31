//! Catalog entries (art. 14 fields), open categories (art. 7) and roles.

use serde::{Deserialize, Serialize};

use crate::schema::DatasetSchema;

/// Art. 7: whether and how a dataset may be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpenCategory {
    /// Never opened: no job, preview or download may reference it.
    NotOpen,
    /// Opened only to approved users; previewed as synthetic rows only.
    Conditional,
    /// Opened to all: real preview and download.
    Unconditional,
}

impl OpenCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            OpenCategory::NotOpen => "not_open",
            OpenCategory::Conditional => "conditional",
            OpenCategory::Unconditional => "unconditional",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "not_open" => Some(OpenCategory::NotOpen),
            "conditional" => Some(OpenCategory::Conditional),
            "unconditional" => Some(OpenCategory::Unconditional),
            _ => None,
        }
    }
}

/// Largest upload accepted, in bytes as received: the server refuses a
/// larger body, and ingest a larger input.
pub const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// Source file formats accepted at ingest (art. 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    Csv,
    /// A JSON array of objects, or JSON lines (one object per line).
    Json,
    /// Flat records: `<root><record><col>v</col>...</record>...</root>`.
    Xml,
    Xlsx,
    Parquet,
}

impl DataFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DataFormat::Csv => "csv",
            DataFormat::Json => "json",
            DataFormat::Xml => "xml",
            DataFormat::Xlsx => "xlsx",
            DataFormat::Parquet => "parquet",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(DataFormat::Csv),
            "json" | "jsonl" | "ndjson" => Some(DataFormat::Json),
            "xml" => Some(DataFormat::Xml),
            "xlsx" | "xls" => Some(DataFormat::Xlsx),
            "parquet" => Some(DataFormat::Parquet),
            _ => None,
        }
    }
}

/// Platform roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Provider,
    User,
    Reviewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Provider => "provider",
            Role::User => "user",
            Role::Reviewer => "reviewer",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "provider" => Some(Role::Provider),
            "user" => Some(Role::User),
            "reviewer" => Some(Role::Reviewer),
            _ => None,
        }
    }
}

/// One published version of a dataset, identified by the SHA-256 of its
/// stored Parquet bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DatasetVersion {
    /// Hex SHA-256 of the stored Parquet file.
    pub version: String,
    pub created_at: String,
    pub source_format: DataFormat,
}

/// A catalog entry with the art. 14 fields. `data_items` is the full list of
/// data items (the schema's columns with their descriptions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CatalogEntry {
    pub id: String,
    pub name: String,
    pub title: String,
    pub description: String,
    /// Organisation that provides the data.
    pub provider: String,
    pub open_category: OpenCategory,
    /// Data format offered for download (art. 14: "data format").
    pub format: DataFormat,
    /// Art. 14 "data type", e.g. "table".
    pub data_type: String,
    pub update_frequency: String,
    pub schema: DatasetSchema,
    pub versions: Vec<DatasetVersion>,
    pub created_at: String,
}

impl CatalogEntry {
    pub fn latest_version(&self) -> Option<&DatasetVersion> {
        self.versions.last()
    }
    /// Citation string that every release carries (art. 24).
    pub fn citation(&self, version: &str) -> String {
        let short = &version[..version.len().min(12)];
        format!(
            "{provider}, \"{title}\" (dataset {name}, version {short}), via the Sluice public-data platform",
            provider = self.provider,
            title = self.title,
            name = self.name,
        )
    }
}
