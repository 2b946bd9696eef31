//! The protocol between the server and a sandbox process. Every task that
//! reads rows (ingest of an upload, preview of unconditional data, queries)
//! runs in the sandbox; the server only sees what comes back here: quality
//! reports (counts and row numbers, no values), preview rows of public data,
//! released (noised) outputs, rejections derived from schemas and the query
//! alone, or a failure category that does not depend on the data.

use serde::{Deserialize, Serialize};

use crate::catalog::DataFormat;
use crate::privacy::{Delta, Epsilon};
use crate::quality::QualityReport;
use crate::release::ReleasedOutputs;
use crate::schema::DatasetSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SandboxTable {
    /// Name the query uses for the table.
    pub name: String,
    /// Path of the stored Parquet file, opened only inside the sandbox.
    pub path: String,
    pub schema: DatasetSchema,
    /// Ingest found no privacy unit with more than `max_rows_per_unit` rows
    /// and no row without a unit in this (immutable) version, so bounding
    /// it again is a no-op.
    #[serde(default)]
    pub bound_verified: bool,
    /// Public data (an unconditional dataset anyone can download): its rows
    /// are not private, so a private table may join it on a key that is
    /// unique in it, without multiplying anyone's rows.
    #[serde(default)]
    pub public: bool,
    /// Columns whose every stored value ingest found within the declared
    /// bounds and domain (from the platform's quality report): their
    /// clamping is skipped, since it would change nothing.
    #[serde(default)]
    pub in_bounds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum SandboxTask {
    /// Check a query against schemas only; touches no data file.
    Analyze(QueryTask),
    /// Analyze, then run and release.
    Execute(QueryTask),
    /// Compile and check a WASM job's module and outputs; reads no data.
    AnalyzeWasm(WasmTask),
    /// Run a WASM job and release its clamped, noised aggregate.
    ExecuteWasm(WasmTask),
    /// Check a training job's query, features and label against schemas
    /// only; reads no data.
    AnalyzeTrain(TrainTask),
    /// Train under DP and release the model and its DP evaluation.
    ExecuteTrain(TrainTask),
    /// Debug builds only: tries what a hostile job would from inside a real
    /// sandbox process (open TCP connections, read files, start a process),
    /// so that tests check the isolation instead of trusting the design.
    /// `inputs` are granted to it as a job's dataset files would be. Absent
    /// from release builds, where such a task does not even parse.
    #[cfg(debug_assertions)]
    Probe {
        #[serde(default)]
        connect: Vec<String>,
        #[serde(default)]
        inputs: Vec<String>,
        #[serde(default)]
        read: Vec<String>,
        #[serde(default)]
        write: Vec<String>,
        #[serde(default)]
        spawn: bool,
    },
    /// Parse an upload (its bytes follow the request on stdin), pseudonymise,
    /// check quality and write a Parquet version into `output_dir`.
    Ingest(IngestTask),
    /// First rows of an unconditional dataset.
    Preview(PreviewTask),
    /// Every row of an unconditional dataset's version as spreadsheet-safe CSV.
    Export(ExportTask),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueryTask {
    pub query: String,
    pub tables: Vec<SandboxTable>,
    pub epsilon: Epsilon,
    pub delta: Delta,
    /// Weights of measurements by name (see `Manifest::privacy.split`).
    #[serde(default)]
    pub split: std::collections::BTreeMap<String, f64>,
}

/// A WASM job on one table: the module (base64), its mode, the numeric
/// columns it reads and its outputs' bounds and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WasmTask {
    pub module: String,
    pub mode: crate::manifest::WasmMode,
    pub table: SandboxTable,
    pub columns: Vec<String>,
    pub outputs: Vec<crate::manifest::WasmOutput>,
    #[serde(default)]
    pub blocks: Option<u32>,
    pub epsilon: Epsilon,
    /// Fuel and memory per unit (map) or block (sample-aggregate), fixed
    /// when the job was prepared; absent from tasks held before limits
    /// were declared, which get the mode's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<crate::manifest::WasmLimits>,
}

/// A DP training job: the row-level query over `tables` whose output
/// columns are the features and the label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrainTask {
    pub model: crate::manifest::TrainModel,
    pub query: String,
    pub label: String,
    pub hyper: crate::manifest::TrainHyper,
    /// Optional `gradient` module, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    pub tables: Vec<SandboxTable>,
    pub epsilon: Epsilon,
    pub delta: Delta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IngestTask {
    pub format: DataFormat,
    pub schema: DatasetSchema,
    pub output_dir: String,
    /// The platform's pseudonym key, hex; passed on stdin, never on argv.
    pub pseudonym_key_hex: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PreviewTask {
    pub path: String,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportTask {
    pub path: String,
    /// Largest CSV the sandbox may answer with, in bytes.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SandboxResponse {
    /// Analysis accepted the query: a description of what will run, and
    /// its exact cost and expected error.
    Accepted {
        plan: String,
        estimate: Estimate,
    },
    /// Rejected before any data was touched; every reason at once.
    Rejected {
        reasons: Vec<String>,
    },
    Released {
        outputs: ReleasedOutputs,
    },
    Ingested {
        version: String,
        file_name: String,
        bytes: u64,
        report: QualityReport,
    },
    Preview {
        rows: Vec<serde_json::Map<String, serde_json::Value>>,
    },
    /// An unconditional version as CSV, text cells neutralised.
    Exported {
        csv: String,
    },
    /// Debug builds only: what the probe managed to do, in request order.
    #[cfg(debug_assertions)]
    Probed {
        connected: Vec<bool>,
        read: Vec<bool>,
        written: Vec<bool>,
        spawned: bool,
    },
    /// Failed after data may have been touched: a category from a fixed
    /// set, so that nothing derived from the data crosses into the server.
    Failed {
        category: Failure,
    },
}

/// Why a sandbox task failed. The set is fixed and carries no detail: an
/// engine's error text can quote the value it failed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The job's engine failed while reading or computing.
    Execution,
    /// Writing a new version failed (disk full, file size limit).
    Write,
    /// Reading a stored version for a preview or export failed.
    Read,
    /// The task itself was unusable (a bad key, a malformed request).
    BadTask,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Execution => "execution_failed",
            Failure::Write => "write_failed",
            Failure::Read => "read_failed",
            Failure::BadTask => "bad_task",
        }
    }
}

/// What a sandbox may say on stderr, the operator log: one line
/// `sluice-sandbox: <code>` per event, from this fixed set. The server logs
/// recognised lines and drops anything else unread, since an engine or a
/// panic message could quote data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diagnostic {
    /// A task failed (see [`Failure`]).
    Failed(Failure),
    /// The sandbox panicked; the message is not printed.
    Panicked,
    /// The task line on stdin could not be read or parsed.
    MalformedTask,
    /// The async runtime could not start.
    RuntimeFailed,
    /// The ingest output directory could not be created.
    OutputDirFailed,
    /// A protection the OS does not offer here (see docs/threat-model.md).
    NoNetworkIsolation,
    NoFileIsolation,
    PartialFileIsolation,
    NoSeccomp,
    ResourceLimitsIncomplete,
}

const DIAGNOSTIC_PREFIX: &str = "sluice-sandbox: ";

impl Diagnostic {
    const ALL: [Diagnostic; 13] = [
        Diagnostic::Failed(Failure::Execution),
        Diagnostic::Failed(Failure::Write),
        Diagnostic::Failed(Failure::Read),
        Diagnostic::Failed(Failure::BadTask),
        Diagnostic::Panicked,
        Diagnostic::MalformedTask,
        Diagnostic::RuntimeFailed,
        Diagnostic::OutputDirFailed,
        Diagnostic::NoNetworkIsolation,
        Diagnostic::NoFileIsolation,
        Diagnostic::PartialFileIsolation,
        Diagnostic::NoSeccomp,
        Diagnostic::ResourceLimitsIncomplete,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Diagnostic::Failed(f) => f.as_str(),
            Diagnostic::Panicked => "panicked",
            Diagnostic::MalformedTask => "malformed_task",
            Diagnostic::RuntimeFailed => "runtime_failed",
            Diagnostic::OutputDirFailed => "output_dir_failed",
            Diagnostic::NoNetworkIsolation => "no_network_isolation",
            Diagnostic::NoFileIsolation => "no_file_isolation",
            Diagnostic::PartialFileIsolation => "partial_file_isolation",
            Diagnostic::NoSeccomp => "no_seccomp",
            Diagnostic::ResourceLimitsIncomplete => "resource_limits_incomplete",
        }
    }

    /// The stderr line that reports it.
    pub fn line(self) -> String {
        format!("{DIAGNOSTIC_PREFIX}{}", self.code())
    }

    /// The diagnostic a stderr line reports, if it is exactly one.
    pub fn parse(line: &str) -> Option<Diagnostic> {
        let code = line.strip_prefix(DIAGNOSTIC_PREFIX)?;
        Self::ALL.into_iter().find(|d| d.code() == code)
    }

    /// Whether it means a protection is missing (the operator must know).
    pub fn is_missing_protection(self) -> bool {
        matches!(
            self,
            Diagnostic::NoNetworkIsolation
                | Diagnostic::NoFileIsolation
                | Diagnostic::PartialFileIsolation
                | Diagnostic::NoSeccomp
                | Diagnostic::ResourceLimitsIncomplete
        )
    }
}

/// What a query will cost and how accurate it will be, known before any
/// data is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Estimate {
    /// Exactly what will be charged.
    pub epsilon: Epsilon,
    pub delta: Delta,
    /// Released rows (cells per output column); 0 when keys are selected
    /// from the data, whose number is then not known in advance.
    pub rows: u64,
    /// Keys without a public domain: released only where the noisy row
    /// count exceeds this threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_threshold: Option<u64>,
    pub columns: Vec<ColumnEstimate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ColumnEstimate {
    pub name: String,
    /// Aggregate function, or None for a group key (exact, public).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<Epsilon>,
    /// Standard deviation of the noise in every cell (COUNT, SUM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_dev: Option<f64>,
    /// Half-width of every cell's 95% interval (COUNT, SUM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95_halfwidth: Option<f64>,
    /// Quantiles: the 95% bound on the rank error, in rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_error95: Option<f64>,
    /// For ratios (AVG), whose error depends on the group's size: the
    /// numerator's and denominator's noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
