//! Domain and wire types shared by every Sluice crate: identifiers, open
//! categories, dataset schemas and column roles, manifests, releases, the
//! sandbox protocol and stable error codes.
//!
//! This crate does no I/O and names no engine; it depends on serde (and
//! base64, for modules carried in manifests) only, so
//! that every other crate (including the server, which must never link an
//! engine) can speak the same types.

pub mod api;
pub mod audit;
pub mod catalog;
pub mod error;
pub mod job;
pub mod manifest;
pub mod privacy;
pub mod quality;
pub mod release;
pub mod rows;
pub mod sandbox;
pub mod schema;
pub mod text;
pub mod time;

pub use catalog::{CatalogEntry, DataFormat, DatasetVersion, OpenCategory, Role};
pub use error::ErrorCode;
pub use job::JobState;
pub use manifest::{JobKind, Manifest};
pub use privacy::{Delta, Epsilon, PrivacyError};
pub use quality::QualityReport;
pub use release::{Cell, OutputColumn, Release, ReleaseBody, SignedRelease};
pub use schema::{ColumnRole, ColumnSpec, ColumnType, DatasetSchema, SchemaError};

/// Decodes standard base64 (as WASM modules are carried in manifests).
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// Encodes bytes as standard base64.
pub fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
