//! The protocol between the server and a sandbox process. The request names
//! the job's dataset files and schemas; the response carries released (noised)
//! outputs, a rejection with reasons derived from schemas and the query only,
//! or a failure category that does not depend on the data.

use serde::{Deserialize, Serialize};

use crate::privacy::{Delta, Epsilon};
use crate::release::ReleasedOutputs;
use crate::schema::DatasetSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxTable {
    /// Name the query uses for the table.
    pub name: String,
    /// Path of the stored Parquet file, opened only inside the sandbox.
    pub path: String,
    pub schema: DatasetSchema,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Check the query against schemas only; touches no data file.
    Analyze,
    /// Analyze, then run and release.
    Execute,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRequest {
    pub job_id: String,
    pub mode: SandboxMode,
    pub query: String,
    pub tables: Vec<SandboxTable>,
    pub epsilon: Epsilon,
    pub delta: Delta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SandboxResponse {
    /// Analysis accepted the query (mode analyze).
    Accepted { plan: String },
    /// The query was rejected before any data was touched.
    Rejected { reasons: Vec<String> },
    Released { outputs: ReleasedOutputs },
    /// Execution failed after data was touched; the category is generic.
    Failed { category: String },
}
