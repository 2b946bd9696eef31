//! Request and response bodies of the HTTP API (shared by server and client).

use serde::{Deserialize, Serialize};

use crate::catalog::{DataFormat, OpenCategory, Role};
use crate::quality::QualityReport;
use crate::schema::DatasetSchema;

/// The dataset descriptor a provider writes (TOML): catalog fields (art. 14),
/// budget and schema in one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetDescriptor {
    pub dataset: DatasetFields,
    pub schema: DatasetSchema,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetFields {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// The providing organisation (art. 14).
    pub provider: String,
    pub open_category: OpenCategory,
    /// Format the data is offered in / uploaded as.
    pub format: DataFormat,
    #[serde(default = "default_data_type")]
    pub data_type: String,
    pub update_frequency: String,
    /// Total ε all users together may spend on this dataset.
    #[serde(default = "default_cap")]
    pub epsilon_cap: f64,
    /// ε each user may spend on this dataset.
    #[serde(default = "default_user_epsilon")]
    pub user_epsilon: f64,
}

fn default_data_type() -> String {
    "table".into()
}
fn default_cap() -> f64 {
    100.0
}
fn default_user_epsilon() -> f64 {
    10.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedUser {
    pub user: UserView,
    /// Shown once; only its hash is stored.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VersionAdded {
    pub dataset: String,
    pub version: String,
    pub report: QualityReport,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PublicKey {
    pub key_id: String,
    pub public_key_hex: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobView {
    pub id: String,
    pub state: crate::JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub manifest_digest: String,
    pub epsilon: String,
    pub created_at: String,
    pub updated_at: String,
    /// A running job's outcome becomes visible at this time (RFC 3339 with
    /// milliseconds), fixed before it read any data; a job not done by
    /// then gets a later one (docs/threat-model.md, "Timing").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BudgetView {
    pub dataset: String,
    pub user_granted: String,
    pub user_spent: String,
    pub user_remaining: String,
    /// δ spent so far (only jobs that select group keys from the data spend δ).
    #[serde(default)]
    pub user_delta_spent: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PreviewView {
    /// True when the rows are synthetic (generated from the schema only).
    pub synthetic: bool,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The answer to `POST /v1/jobs/estimate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EstimateView {
    pub accepted: bool,
    /// Every reason, when rejected.
    pub reasons: Vec<String>,
    pub manifest_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<crate::sandbox::Estimate>,
    /// The least ε one job may spend here (the platform's, or a higher one
    /// an agreement the manifest names sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_epsilon: Option<String>,
    /// Seconds from the job's start to when its outcome becomes visible:
    /// its schedule, fixed before it reads data (later only if it runs
    /// over, docs/threat-model.md "Timing").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seconds: Option<f64>,
}

/// `PUT /v1/datasets/{name}/review-policy`: how many distinct reviewers
/// must approve each job on the dataset (0 to 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewPolicy {
    pub reviewers: u8,
}

/// One reviewer's decision as shown to reviewers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReviewDecisionView {
    pub reviewer: String,
    pub decision: String,
    pub reason: String,
    pub manifest_digest: String,
    pub at: String,
}

/// A job held for review: what a reviewer sees. Never data: the manifest,
/// the analysis the sandbox made from schemas (plan, exact cost, noise),
/// and the difference from the same user's last approved manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReviewView {
    pub job_id: String,
    pub submitted_by: String,
    pub title: String,
    pub datasets: Vec<String>,
    pub manifest_digest: String,
    /// The manifest as pretty JSON (WASM modules as base64).
    pub manifest: String,
    pub plan: String,
    pub estimate: crate::sandbox::Estimate,
    /// Digest of the user's last approved manifest, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_approved_digest: Option<String>,
    /// Line diff against it: each line starts with "+ ", "- " or "  ".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
    pub required: u8,
    pub decisions: Vec<ReviewDecisionView>,
}

/// `POST /v1/reviews/{job}`: approve or reject, bound to the digest read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// "approve" or "reject".
    pub decision: String,
    pub reason: String,
    pub manifest_digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReviewResult {
    /// "pending" (more approvals needed), "approved" (the job now runs,
    /// unless `note` says why it could not start) or "rejected".
    pub outcome: String,
    pub approvals: u8,
    pub required: u8,
    /// Why an approved job could not start (its agreement no longer covers
    /// it, its budget is spent): the job is rejected with that reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /v1/datasets/{name}/suspend|withdraw|resume` and
/// `POST /v1/users/{name}/close`: the reason, recorded and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: String,
}

/// `POST /v1/datasets/{name}/revoke`: restrict one user's access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub user: String,
    pub reason: String,
}

/// A revocation, as publicly listed (art. 34).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RevocationView {
    pub user: String,
    /// The dataset, or None when the authority closed the user's access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    pub decided_by: String,
    pub reason: String,
    pub at: String,
}

/// What a control action did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ControlResult {
    /// Jobs cancelled by it (queued, awaiting review or running).
    pub jobs_cancelled: usize,
}

/// Usage figures for one group of datasets (art. 9). Counts and budget
/// only: no private value of any dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageRow {
    /// The provider's name or the open category.
    pub group: String,
    pub datasets: u64,
    pub versions: u64,
    /// Jobs that read a dataset of the group, by outcome.
    pub jobs_released: u64,
    /// Failed or cancelled: nothing released.
    pub jobs_failed: u64,
    pub jobs_rejected: u64,
    pub jobs_pending: u64,
    /// Applications for the group's datasets (art. 20).
    pub applications: u64,
    /// ε spent (committed) on the group's datasets, all users together.
    pub epsilon_spent: String,
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageStats {
    pub by_provider: Vec<UsageRow>,
    pub by_category: Vec<UsageRow>,
    pub users: u64,
    pub releases: u64,
    pub revocations: u64,
}

/// `POST /v1/datasets/{name}/feedback`: report an error or omission (any
/// user), or open a quality rectification task (the authority).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// "error", "omission", "other", or "rectification" (the authority).
    pub kind: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FeedbackView {
    pub id: String,
    pub dataset: String,
    pub reported_by: String,
    pub kind: String,
    pub description: String,
    /// "open" or "answered".
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    pub created_at: String,
    pub due_at: String,
    pub overdue: bool,
    /// "requested", "approved" or "refused", with the working days asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

/// `POST /v1/feedback/{id}/answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackAnswer {
    pub answer: String,
}

/// `POST /v1/feedback/{id}/extension`: the provider asks for a deadline of
/// `working_days` in all (at most 30).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionRequest {
    pub working_days: u32,
    pub reason: String,
}

/// `POST /v1/feedback/{id}/extension/decision` (the authority).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionDecision {
    pub approve: bool,
}

/// `POST /v1/applications` (art. 20). Every field is checked at once; an
/// incomplete application is refused with every problem and not forwarded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    pub title: Option<String>,
    pub reason: Option<String>,
    /// "dataset" or "api".
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Conditional datasets of one provider.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// Usage period, `YYYY-MM-DD`, inclusive.
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    /// The form the results will take (e.g. "DP aggregates in a report").
    pub result_form: Option<String>,
    /// The application scenario.
    pub scenario: Option<String>,
    /// The applicant's pledge that the application is true, lawful and
    /// safe, and that the data will be used only as stated.
    #[serde(default)]
    pub pledge: bool,
}

/// Terms of a data-use agreement (art. 21), set by the provider on approval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementTerms {
    /// A job's manifest `purpose` must equal this.
    pub purpose: String,
    pub scope: String,
    pub manner: String,
    pub prohibitions: String,
    pub credit_commitment: String,
    pub liability: String,
    pub dispute_resolution: String,
    /// Privacy budget the provider intends for the agreement, recorded.
    pub epsilon: f64,
    /// The least ε one job under the agreement spends (default 0.001): it
    /// bounds how many jobs the budget buys, and with them what any side
    /// channel such as timing can reveal (docs/threat-model.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_epsilon_per_job: Option<f64>,
}

/// `POST /v1/applications/{id}/decision`: approve with the agreement's
/// terms, or refuse with reasons and the legal basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationDecision {
    pub approve: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<AgreementTerms>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplicationView {
    pub id: String,
    pub applicant: String,
    pub provider: String,
    pub application: ApplicationRequest,
    /// "submitted", "approved" or "refused".
    pub state: String,
    pub created_at: String,
    /// The provider's deadline: 10 working days after submission.
    pub due_at: String,
    pub overdue: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApplicationDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgreementView {
    pub id: String,
    /// SHA-256 of the agreement's canonical JSON (`content`).
    pub content_hash: String,
    pub content: serde_json::Value,
    pub user: String,
    pub provider: String,
    pub datasets: Vec<String>,
    pub period_start: String,
    pub period_end: String,
    /// Whether today lies within the period.
    pub active: bool,
    /// The agreement's privacy budget (its terms' epsilon), what jobs under
    /// it have been charged, and what is left.
    pub epsilon: String,
    pub epsilon_spent: String,
    pub epsilon_remaining: String,
    /// The least ε one job under the agreement spends.
    pub min_epsilon_per_job: String,
}

#[cfg(test)]
mod tests {
    /// The example files the guides use parse as what the CLI sends.
    #[test]
    fn example_application_and_terms_parse() {
        let app: super::ApplicationRequest =
            toml::from_str(include_str!("../../../examples/access/application.toml")).unwrap();
        assert_eq!(app.kind.as_deref(), Some("dataset"));
        assert!(app.pledge);
        let terms: super::AgreementTerms =
            toml::from_str(include_str!("../../../examples/access/terms.toml")).unwrap();
        assert_eq!(terms.epsilon, 5.0);
    }
}
