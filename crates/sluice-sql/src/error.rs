//! The crate's two errors: a rejection (derived from the query and the
//! schemas only, safe to show) and a failure while executing (for the
//! operator log only). The bottom layer: it imports nothing of the crate.

/// A rejection: every reason at once, derived from the query and the
/// schemas only (never from data), so it is safe to show the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection(pub Vec<String>);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query rejected: {}", self.0.join("; "))
    }
}

impl std::error::Error for Rejection {}

impl Rejection {
    /// A planning error from DataFusion, reduced to what names SQL and
    /// schema (planning reads no data).
    pub(crate) fn planning(e: &datafusion::error::DataFusionError) -> Self {
        Rejection(vec![planning_message(&e.to_string())])
    }
}

/// A failure while executing: the detail is for the operator log only.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("query rejected")]
    Rejected(Rejection),
    #[error("stored data does not match its declared schema: {0}")]
    SchemaMismatch(String),
    #[error("execution failed: {0}")]
    Engine(String),
    #[error("noise failed: {0}")]
    Noise(#[from] sluice_dp::DpError),
}

impl From<datafusion::error::DataFusionError> for ExecError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        ExecError::Engine(e.to_string())
    }
}

fn planning_message(e: &str) -> String {
    let e = e.trim();
    if e.contains("DDL not supported")
        || e.contains("DML not supported")
        || e.contains("Statement not supported")
    {
        return format!("only SELECT queries are allowed ({e})");
    }
    // DataFusion's messages repeat prefixes and add bug-report boilerplate.
    let first = e.lines().next().unwrap_or(e);
    let mut msg = first;
    while let Some(rest) = ["Error during planning: ", "Internal error: ", "SQL error: "]
        .iter()
        .find_map(|p| msg.strip_prefix(p))
    {
        msg = rest;
    }
    let msg = msg.split(", errors:").next().unwrap_or(msg);
    format!("the query could not be planned: {msg}")
}
