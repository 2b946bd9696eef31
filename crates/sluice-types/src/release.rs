//! Released results: only noised values, each with its 95% confidence
//! interval, plus provenance and the citation of the data source (art. 24).
//! The body is signed by the platform in a DSSE-style envelope.

use serde::{Deserialize, Serialize};

use crate::privacy::{Delta, Epsilon};

pub const RELEASE_PAYLOAD_TYPE: &str = "application/vnd.sluice.release+json; version=1";

/// Confidence level of every interval a release states (`ci95`,
/// `rank_error95`): the noise code calibrates its intervals to it and the
/// release writer records it.
pub const CONFIDENCE_LEVEL: f64 = 0.95;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// A group key: a value of a declared public domain (not private).
    GroupKey,
    /// A DP aggregate, or a value computed from released aggregates.
    Aggregate,
    /// A public constant: a literal or a function of literals (no data).
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutputColumn {
    pub name: String,
    pub kind: ColumnKind,
    /// For aggregates: the SQL function (count, sum, avg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<String>,
    /// For aggregates: the ε this column consumed (its share of the job's ε).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<Epsilon>,
}

/// One output cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Cell {
    /// A noised value with its 95% confidence interval `[low, high]`.
    Noisy { value: f64, ci95: [f64; 2] },
    /// A DP quantile (MIN, MAX, MEDIAN, percentiles). Its error is stated in
    /// rows, since a value interval would depend on the data: with
    /// probability at least 95%, the value's quantile score is within
    /// `rank_error95` rows of the best candidate's (docs/dp-sql.md).
    Quantile { value: f64, rank_error95: f64 },
    /// A value computed from noised measurements whose error has no closed
    /// form, such as a trained model's coefficient (docs/learn.md). It is
    /// as private as the measurements it comes from.
    Derived { value: f64 },
    /// A public group key or constant; in an aggregate column, a text or
    /// boolean value computed from released values (no interval), or null.
    Key(serde_json::Value),
}

impl Cell {
    fn is_finite(&self) -> bool {
        match self {
            Cell::Noisy { value, ci95 } => value.is_finite() && ci95.iter().all(|x| x.is_finite()),
            Cell::Quantile {
                value,
                rank_error95,
            } => value.is_finite() && rank_error95.is_finite(),
            Cell::Derived { value } => value.is_finite(),
            Cell::Key(_) => true,
        }
    }

    /// This cell with no non-finite number, which JSON cannot carry: a
    /// value whose error is not finite becomes a derived cell (a value
    /// without a stated error); a value that is not finite becomes `null`
    /// (nothing released). Post-processing of noised values only.
    pub fn into_finite(self) -> Cell {
        if self.is_finite() {
            return self;
        }
        match self {
            Cell::Noisy { value, .. } | Cell::Quantile { value, .. } | Cell::Derived { value }
                if value.is_finite() =>
            {
                Cell::Derived { value }
            }
            _ => Cell::Key(serde_json::Value::Null),
        }
    }
}

/// What the sandbox returns: outputs only, unsigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReleasedOutputs {
    pub columns: Vec<OutputColumn>,
    /// Rows in deterministic key order.
    pub rows: Vec<Vec<Cell>>,
    /// Human-readable description of mechanisms and the budget split.
    pub mechanism: String,
    pub epsilon: Epsilon,
    pub delta: Delta,
}

impl ReleasedOutputs {
    /// Whether every cell holds only finite numbers.
    pub fn is_finite(&self) -> bool {
        self.rows.iter().flatten().all(Cell::is_finite)
    }

    /// Every cell made finite ([`Cell::into_finite`]), so that the outputs
    /// survive JSON unchanged on their way to the signature.
    pub fn make_finite(&mut self) {
        for cell in self.rows.iter_mut().flatten() {
            if !cell.is_finite() {
                *cell = cell.clone().into_finite();
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReleasedDataset {
    pub name: String,
    pub id: String,
    pub version: String,
    pub provider: String,
    pub citation: String,
}

/// The signed content of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReleaseBody {
    pub job_id: String,
    pub title: String,
    pub manifest_digest: String,
    pub datasets: Vec<ReleasedDataset>,
    pub outputs: ReleasedOutputs,
    /// Privacy spent by this release (equal to what the manifest asked for).
    pub epsilon_spent: Epsilon,
    pub delta_spent: Delta,
    pub confidence_level: f64,
    pub created_at: String,
}

/// DSSE-style envelope: the payload is the canonical JSON of a [`ReleaseBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignedRelease {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the canonical JSON payload.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
}

/// A release as returned by the API: the envelope plus its decoded body for
/// convenience (the body is authoritative only once the envelope verifies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Release {
    pub envelope: SignedRelease,
    pub body: ReleaseBody,
}
