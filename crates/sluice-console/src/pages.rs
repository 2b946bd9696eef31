//! One struct per page (or fragment), built from the API's own answers.

use askama::Template;
use sluice_types::api::{
    AgreementView, ApplicationView, BudgetView, EstimateView, FeedbackView, JobView, PreviewView,
    ReviewView, RevocationView, UsageRow, UsageStats,
};
use sluice_types::release::{Cell, ColumnKind, Release};
use sluice_types::{CatalogEntry, JobState, QualityReport, Role};

use crate::assets::{LINKS, Links};
use crate::chart::Chart;
use crate::format::number;

/// The signed-in user, for the header and every form's CSRF field.
pub struct Nav {
    pub user: String,
    pub role: &'static str,
    pub csrf: String,
    pub is_admin: bool,
    pub is_provider: bool,
    pub is_reviewer: bool,
    /// May submit jobs (users, providers, admins).
    pub can_submit: bool,
}

impl Nav {
    pub fn new(user: &str, role: Role, csrf: &str) -> Nav {
        Nav {
            user: user.to_owned(),
            role: role.as_str(),
            csrf: csrf.to_owned(),
            is_admin: role == Role::Admin,
            is_provider: role == Role::Provider,
            is_reviewer: role == Role::Reviewer,
            can_submit: matches!(role, Role::User | Role::Provider | Role::Admin),
        }
    }
}

/// What every full page's layout needs.
pub struct Layout {
    pub nav: Option<Nav>,
    pub links: &'static Links,
}

impl Layout {
    pub fn signed_in(nav: Nav) -> Layout {
        Layout {
            nav: Some(nav),
            links: &LINKS,
        }
    }
    pub fn anonymous() -> Layout {
        Layout {
            nav: None,
            links: &LINKS,
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub layout: Layout,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub layout: Layout,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub message: String,
    pub hint: Option<String>,
}

pub struct CatalogRow {
    pub name: String,
    pub title: String,
    pub provider: String,
    pub category: &'static str,
    pub format: &'static str,
    pub versions: usize,
    pub updated: String,
}

impl From<&CatalogEntry> for CatalogRow {
    fn from(e: &CatalogEntry) -> Self {
        CatalogRow {
            name: e.name.clone(),
            title: e.title.clone(),
            provider: e.provider.clone(),
            category: e.open_category.as_str(),
            format: e.format.as_str(),
            versions: e.versions.len(),
            updated: e
                .latest_version()
                .map_or_else(String::new, |v| v.created_at.clone()),
        }
    }
}

/// The art. 14 search form's values, echoed back into it.
#[derive(Default)]
pub struct CatalogFilters {
    pub q: String,
    pub provider: String,
    pub category: String,
    pub format: String,
}

#[derive(Template)]
#[template(path = "catalog.html")]
pub struct CatalogPage {
    pub layout: Layout,
    pub filters: CatalogFilters,
    pub categories: Vec<(&'static str, bool)>,
    pub formats: Vec<(&'static str, bool)>,
    pub rows: Vec<CatalogRow>,
}

impl CatalogPage {
    pub fn new(layout: Layout, filters: CatalogFilters, entries: &[CatalogEntry]) -> CatalogPage {
        let categories = ["unconditional", "conditional", "not_open"]
            .into_iter()
            .map(|c| (c, filters.category == c))
            .collect();
        let formats = ["csv", "json", "xml", "xlsx", "parquet"]
            .into_iter()
            .map(|f| (f, filters.format == f))
            .collect();
        CatalogPage {
            layout,
            rows: entries.iter().map(CatalogRow::from).collect(),
            filters,
            categories,
            formats,
        }
    }
}

pub struct ColumnRow {
    pub name: String,
    pub role: String,
    pub ty: &'static str,
    pub bounds: String,
    pub domain: String,
    pub description: String,
}

pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

#[derive(Template)]
#[template(path = "dataset.html")]
pub struct DatasetPage {
    pub layout: Layout,
    pub name: String,
    pub title: String,
    pub description: String,
    pub provider: String,
    pub category: &'static str,
    pub format: &'static str,
    pub data_type: String,
    pub update_frequency: String,
    pub max_rows_per_unit: u32,
    pub columns: Vec<ColumnRow>,
    pub versions: Vec<(String, String)>,
    pub citation: String,
    pub budget: Option<BudgetView>,
    pub preview: Option<(bool, Table)>,
    /// The caller provides this dataset (or is the authority): show the
    /// provider's controls.
    pub controls: bool,
    /// The latest version's quality report, for its provider.
    pub quality: Option<QualityReport>,
}

impl DatasetPage {
    pub fn new(
        layout: Layout,
        entry: &CatalogEntry,
        budget: Option<BudgetView>,
        preview: Option<PreviewView>,
        controls: bool,
        quality: Option<QualityReport>,
    ) -> DatasetPage {
        let columns = entry
            .schema
            .columns
            .iter()
            .map(|c| ColumnRow {
                name: c.name.clone(),
                role: serde_json::to_value(c.role)
                    .ok()
                    .and_then(|v| v.as_str().map(|r| r.replace('_', " ")))
                    .unwrap_or_default(),
                ty: c.ty.as_str(),
                bounds: match (c.lower, c.upper) {
                    (Some(l), Some(u)) => format!("{} to {}", number(l), number(u)),
                    _ => String::new(),
                },
                domain: c.domain.as_ref().map_or_else(String::new, |d| {
                    d.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
                description: c.description.clone().unwrap_or_default(),
            })
            .collect();
        let preview = preview.map(|p| {
            let headers: Vec<String> = p
                .rows
                .first()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default();
            let rows = p
                .rows
                .iter()
                .map(|r| {
                    headers
                        .iter()
                        .map(|h| match r.get(h) {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(serde_json::Value::Null) | None => String::new(),
                            Some(v) => v.to_string(),
                        })
                        .collect()
                })
                .collect();
            (p.synthetic, Table { headers, rows })
        });
        DatasetPage {
            layout,
            name: entry.name.clone(),
            title: entry.title.clone(),
            description: entry.description.clone(),
            provider: entry.provider.clone(),
            category: entry.open_category.as_str(),
            format: entry.format.as_str(),
            data_type: entry.data_type.clone(),
            update_frequency: entry.update_frequency.clone(),
            max_rows_per_unit: entry.schema.max_rows_per_unit,
            columns,
            versions: entry
                .versions
                .iter()
                .rev()
                .map(|v| (v.version.clone(), v.created_at.clone()))
                .collect(),
            citation: entry
                .latest_version()
                .map_or_else(String::new, |v| entry.citation(&v.version)),
            budget,
            preview,
            controls,
            quality,
        }
    }
}

/// A job's state as a badge and a sentence.
pub struct JobStatus {
    pub id: String,
    pub state: &'static str,
    pub explanation: &'static str,
    pub message: Option<String>,
    pub due_at: Option<String>,
    pub epsilon: String,
    pub created_at: String,
    pub updated_at: String,
    pub released: bool,
    pub done: bool,
}

impl From<&JobView> for JobStatus {
    fn from(j: &JobView) -> Self {
        JobStatus {
            id: j.id.clone(),
            state: j.state.as_str(),
            explanation: explain(j.state),
            message: j.message.clone(),
            due_at: j.due_at.clone(),
            epsilon: j.epsilon.clone(),
            created_at: j.created_at.clone(),
            updated_at: j.updated_at.clone(),
            released: j.state == JobState::Released,
            done: j.state.is_final(),
        }
    }
}

fn explain(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "Accepted and being checked; nothing reserved, nothing read.",
        JobState::AwaitingReview => "Held until enough reviewers approve its manifest.",
        JobState::Running => "Its budget is reserved; its outcome becomes visible at its due time.",
        JobState::Released => "Its signed release is ready.",
        JobState::Rejected => "Refused before reading data; nothing was spent.",
        JobState::Failed => "It failed while running; its spend stays; nothing was released.",
        JobState::Cancelled => "Stopped by a suspension or revocation; nothing was released.",
    }
}

/// The job page's live part, alone: what the event stream sends.
#[derive(Template)]
#[template(path = "job_status.html")]
pub struct JobStatusFragment {
    pub status: JobStatus,
}

#[derive(Template)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    pub layout: Layout,
    pub jobs: Vec<JobStatus>,
}

#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    pub layout: Layout,
    pub status: JobStatus,
}

pub struct EstimateColumn {
    pub name: String,
    pub aggregate: String,
    pub epsilon: String,
    pub std_dev: String,
    pub ci95: String,
}

/// The composer's live estimate.
pub struct EstimatePanel {
    pub accepted: bool,
    pub reasons: Vec<String>,
    pub epsilon: String,
    pub delta: String,
    pub rows: String,
    pub key_threshold: Option<u64>,
    pub columns: Vec<EstimateColumn>,
    pub expected_seconds: Option<String>,
    pub minimum_epsilon: Option<String>,
    pub plan: Option<String>,
    pub digest: String,
}

impl From<&EstimateView> for EstimatePanel {
    fn from(e: &EstimateView) -> Self {
        let estimate = e.estimate.as_ref();
        EstimatePanel {
            accepted: e.accepted,
            reasons: e.reasons.clone(),
            epsilon: estimate.map_or_else(String::new, |x| x.epsilon.to_string()),
            delta: estimate.map_or_else(String::new, |x| x.delta.to_string()),
            rows: estimate.map_or_else(String::new, |x| {
                if x.rows == 0 {
                    "chosen from the data (thresholded)".to_owned()
                } else {
                    x.rows.to_string()
                }
            }),
            key_threshold: estimate.and_then(|x| x.key_threshold),
            columns: estimate.map_or_else(Vec::new, |x| {
                x.columns
                    .iter()
                    .map(|c| EstimateColumn {
                        name: c.name.clone(),
                        aggregate: c.aggregate.clone().unwrap_or_else(|| "key".to_owned()),
                        epsilon: c.epsilon.map_or_else(String::new, |e| e.to_string()),
                        std_dev: c.std_dev.map_or_else(String::new, number),
                        ci95: match (c.ci95_halfwidth, c.rank_error95) {
                            (Some(h), _) => format!("± {}", number(h)),
                            (None, Some(r)) => format!("± {} rows (rank)", number(r)),
                            _ => String::new(),
                        },
                    })
                    .collect()
            }),
            expected_seconds: e.expected_seconds.map(number),
            minimum_epsilon: e.minimum_epsilon.clone(),
            plan: e.plan.clone(),
            digest: e.manifest_digest.clone(),
        }
    }
}

/// The estimate alone: what the composer's "Estimate" button swaps in.
#[derive(Template)]
#[template(path = "estimate.html")]
pub struct EstimateFragment {
    pub estimate: Option<EstimatePanel>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "compose.html")]
pub struct ComposePage {
    pub layout: Layout,
    pub manifest: String,
    pub estimate: Option<EstimatePanel>,
    pub error: Option<String>,
}

pub struct CellText {
    pub value: String,
    /// "low to high", a rank error, or empty.
    pub error: String,
}

pub struct Citation {
    pub name: String,
    pub version: String,
    pub citation: String,
}

#[derive(Template)]
#[template(path = "release.html")]
pub struct ReleasePage {
    pub layout: Layout,
    pub job_id: String,
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<CellText>>,
    pub chart: Option<Chart>,
    pub datasets: Vec<Citation>,
    /// Whether the envelope's signature verified against the platform key.
    pub verified: bool,
    pub signature: String,
    pub epsilon: String,
    pub delta: String,
    pub mechanism: String,
    pub created_at: String,
    pub confidence: String,
}

impl ReleasePage {
    /// `verification` is the outcome of checking the envelope's signature
    /// with the platform's public key (done by the caller).
    pub fn new(layout: Layout, release: &Release, verification: Result<String, String>) -> Self {
        let body = &release.body;
        let outputs = &body.outputs;
        let headers = outputs.columns.iter().map(|c| c.name.clone()).collect();
        let rows = outputs
            .rows
            .iter()
            .map(|row| row.iter().map(cell_text).collect())
            .collect();
        let chart = chart_of(release);
        let (verified, signature) = match verification {
            Ok(key) => (true, format!("verified with the platform key {key}")),
            Err(why) => (false, format!("NOT verified: {why}")),
        };
        ReleasePage {
            layout,
            job_id: body.job_id.clone(),
            title: body.title.clone(),
            headers,
            rows,
            chart,
            datasets: body
                .datasets
                .iter()
                .map(|d| Citation {
                    name: d.name.clone(),
                    version: d.version.clone(),
                    citation: d.citation.clone(),
                })
                .collect(),
            verified,
            signature,
            epsilon: body.epsilon_spent.to_string(),
            delta: body.delta_spent.to_string(),
            mechanism: outputs.mechanism.clone(),
            created_at: body.created_at.clone(),
            confidence: format!("{} %", number(body.confidence_level * 100.0)),
        }
    }
}

fn cell_text(cell: &Cell) -> CellText {
    match cell {
        Cell::Noisy { value, ci95 } => CellText {
            value: number(*value),
            error: format!("{} to {}", number(ci95[0]), number(ci95[1])),
        },
        Cell::Quantile {
            value,
            rank_error95,
        } => CellText {
            value: number(*value),
            error: format!("rank ± {}", number(*rank_error95)),
        },
        Cell::Derived { value } => CellText {
            value: number(*value),
            error: String::new(),
        },
        Cell::Key(v) => CellText {
            value: match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "null".to_owned(),
                other => other.to_string(),
            },
            error: String::new(),
        },
    }
}

/// The first aggregate column with intervals, one bar per row labelled by
/// the row's group keys.
fn chart_of(release: &Release) -> Option<Chart> {
    let outputs = &release.body.outputs;
    let keys: Vec<usize> = outputs
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == ColumnKind::GroupKey)
        .map(|(i, _)| i)
        .collect();
    let (column, name) = outputs
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == ColumnKind::Aggregate)
        .map(|(i, c)| (i, &c.name))
        .find(|(i, _)| {
            outputs
                .rows
                .iter()
                .all(|r| matches!(r.get(*i), Some(Cell::Noisy { .. })))
        })?;
    let points: Vec<(String, f64, [f64; 2])> = outputs
        .rows
        .iter()
        .filter_map(|r| match r.get(column) {
            Some(Cell::Noisy { value, ci95 }) => {
                let label = keys
                    .iter()
                    .map(|k| r.get(*k).map_or_else(String::new, |c| cell_text(c).value))
                    .collect::<Vec<_>>()
                    .join(" · ");
                Some((label, *value, *ci95))
            }
            _ => None,
        })
        .collect();
    Chart::bars(name, &points)
}

pub struct ReviewRow {
    pub job_id: String,
    pub title: String,
    pub submitted_by: String,
    pub datasets: String,
    pub progress: String,
}

impl From<&ReviewView> for ReviewRow {
    fn from(r: &ReviewView) -> Self {
        ReviewRow {
            job_id: r.job_id.clone(),
            title: r.title.clone(),
            submitted_by: r.submitted_by.clone(),
            datasets: r.datasets.join(", "),
            progress: format!(
                "{} of {} approvals",
                r.decisions
                    .iter()
                    .filter(|d| d.decision == "approve")
                    .count(),
                r.required
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "reviews.html")]
pub struct ReviewsPage {
    pub layout: Layout,
    pub rows: Vec<ReviewRow>,
}

/// One row of the side-by-side diff: the earlier manifest's line (left)
/// and the submitted one's (right); a side is empty where a line was only
/// added or only removed.
pub struct DiffRow {
    pub left: String,
    pub right: String,
    /// "same", or "changed" where the sides differ.
    pub kind: &'static str,
}

/// Side-by-side rows from a line diff whose lines start with "+ ", "- " or
/// "  ": unchanged lines on both sides, a run of removals paired with the
/// run of additions that follows it.
pub fn side_by_side(diff: &[String]) -> Vec<DiffRow> {
    let mut rows = Vec::new();
    let (mut removed, mut added): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let flush = |rows: &mut Vec<DiffRow>, removed: &mut Vec<String>, added: &mut Vec<String>| {
        for i in 0..removed.len().max(added.len()) {
            rows.push(DiffRow {
                left: removed.get(i).cloned().unwrap_or_default(),
                right: added.get(i).cloned().unwrap_or_default(),
                kind: "changed",
            });
        }
        removed.clear();
        added.clear();
    };
    for line in diff {
        if let Some(text) = line.strip_prefix("- ") {
            if !added.is_empty() {
                flush(&mut rows, &mut removed, &mut added);
            }
            removed.push(text.to_owned());
        } else if let Some(text) = line.strip_prefix("+ ") {
            added.push(text.to_owned());
        } else {
            flush(&mut rows, &mut removed, &mut added);
            let text = line.strip_prefix("  ").unwrap_or(line);
            rows.push(DiffRow {
                left: text.to_owned(),
                right: text.to_owned(),
                kind: "same",
            });
        }
    }
    flush(&mut rows, &mut removed, &mut added);
    rows
}

#[derive(Template)]
#[template(path = "review.html")]
pub struct ReviewPage {
    pub layout: Layout,
    pub row: ReviewRow,
    pub digest: String,
    pub manifest: String,
    pub plan: String,
    pub estimate: String,
    pub previous: Option<String>,
    pub diff: Vec<DiffRow>,
    pub decisions: Vec<String>,
    /// A WASM module's digest, size, imports and exports, from the plan
    /// the sandbox made (the server never parses a module).
    pub module: Option<String>,
}

/// The module clause of a WASM or custom-gradient job's plan.
fn module_of(plan: &str) -> Option<String> {
    let start = plan.find("WASM module sha256")?;
    let rest = &plan[start..];
    let exports = rest.find("exports [")?;
    let end = exports + rest[exports..].find(']')? + 1;
    Some(rest[..end].to_owned())
}

impl ReviewPage {
    pub fn new(layout: Layout, r: &ReviewView) -> ReviewPage {
        ReviewPage {
            layout,
            row: ReviewRow::from(r),
            digest: r.manifest_digest.clone(),
            manifest: r.manifest.clone(),
            plan: r.plan.clone(),
            module: module_of(&r.plan),
            estimate: format!(
                "ε {} · δ {} · {} rows",
                r.estimate.epsilon, r.estimate.delta, r.estimate.rows
            ),
            previous: r.previous_approved_digest.clone(),
            diff: side_by_side(&r.diff),
            decisions: r
                .decisions
                .iter()
                .map(|d| format!("{}: {} ({})", d.reviewer, d.decision, d.reason))
                .collect(),
        }
    }
}

pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    /// Whether the chain verified and matched the signed checkpoint.
    pub verified: bool,
    pub verification: String,
    /// The newest `shown` of `total` entries.
    pub entries: Vec<AuditRow>,
    pub shown: usize,
    pub total: usize,
}

/// A refusal's message as its head and its reasons, for messages of the
/// form "what failed: reason; reason; reason".
pub fn reasons_of(message: &str) -> (String, Vec<String>) {
    match message.split_once(": ") {
        Some((head, rest)) if rest.contains("; ") => (
            head.to_owned(),
            rest.split("; ").map(str::to_owned).collect(),
        ),
        _ => (message.to_owned(), Vec::new()),
    }
}

/// A deadline as people count it: working days left, or overdue.
pub fn countdown(due_at: &str, now: i64) -> String {
    use sluice_types::time::{parse_rfc3339, working_days_until};
    let Some(due) = parse_rfc3339(due_at) else {
        return due_at.to_owned();
    };
    let date = due_at.get(..10).unwrap_or(due_at);
    match working_days_until(now, due) {
        _ if due < now => {
            let late = -working_days_until(now, due);
            format!("overdue since {date} ({late} working days)")
        }
        0 => format!("due {date} (less than a working day left)"),
        1 => format!("due {date} (1 working day left)"),
        n => format!("due {date} ({n} working days left)"),
    }
}

pub struct ApplicationRow {
    pub id: String,
    pub title: String,
    pub applicant: String,
    pub provider: String,
    pub datasets: String,
    pub state: String,
    pub deadline: String,
    pub agreement: Option<String>,
}

impl ApplicationRow {
    pub fn new(a: &ApplicationView, now: i64) -> ApplicationRow {
        ApplicationRow {
            id: a.id.clone(),
            title: a.application.title.clone().unwrap_or_default(),
            applicant: a.applicant.clone(),
            provider: a.provider.clone(),
            datasets: a.application.datasets.join(", "),
            state: a.state.clone(),
            deadline: if a.state == "submitted" {
                countdown(&a.due_at, now)
            } else {
                String::new()
            },
            agreement: a.agreement.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "applications.html")]
pub struct ApplicationsPage {
    pub layout: Layout,
    pub rows: Vec<ApplicationRow>,
    pub can_apply: bool,
}

/// The art. 20 form's values, echoed back when it is refused.
#[derive(Default)]
pub struct ApplyValues {
    pub title: String,
    pub reason: String,
    pub kind: String,
    pub datasets: Vec<String>,
    pub period_start: String,
    pub period_end: String,
    pub result_form: String,
    pub scenario: String,
    pub pledge: bool,
}

#[derive(Template)]
#[template(path = "apply.html")]
pub struct ApplyPage {
    pub layout: Layout,
    pub values: ApplyValues,
    /// Conditional datasets: (name, title, chosen).
    pub choices: Vec<(String, String, bool)>,
    pub error: Option<String>,
    pub reasons: Vec<String>,
}

impl ApplyPage {
    pub fn new(
        layout: Layout,
        values: ApplyValues,
        conditional: &[CatalogEntry],
        error: Option<&str>,
    ) -> ApplyPage {
        let choices = conditional
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.title.clone(),
                    values.datasets.contains(&e.name),
                )
            })
            .collect();
        let (error, reasons) = match error.map(reasons_of) {
            Some((head, reasons)) => (Some(head), reasons),
            None => (None, Vec::new()),
        };
        ApplyPage {
            layout,
            values,
            choices,
            error,
            reasons,
        }
    }
}

#[derive(Template)]
#[template(path = "application.html")]
pub struct ApplicationPage {
    pub layout: Layout,
    pub row: ApplicationRow,
    pub fields: Vec<(&'static str, String)>,
    pub decision: Vec<(&'static str, String)>,
    /// The caller is a provider and the application awaits a decision.
    pub can_decide: bool,
    pub error: Option<String>,
    pub reasons: Vec<String>,
}

impl ApplicationPage {
    pub fn new(
        layout: Layout,
        a: &ApplicationView,
        now: i64,
        can_decide: bool,
        error: Option<&str>,
    ) -> ApplicationPage {
        let r = &a.application;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let fields = vec![
            ("Title", text(&r.title)),
            ("Reason", text(&r.reason)),
            ("Type", text(&r.kind)),
            ("Datasets", r.datasets.join(", ")),
            (
                "Period",
                format!("{} to {}", text(&r.period_start), text(&r.period_end)),
            ),
            ("Form of the results", text(&r.result_form)),
            ("Scenario", text(&r.scenario)),
            (
                "Pledge",
                if r.pledge { "given" } else { "not given" }.to_owned(),
            ),
        ];
        let decision = match &a.decision {
            None => Vec::new(),
            Some(d) => {
                let mut out = vec![(
                    "Decision",
                    if d.approve { "approved" } else { "refused" }.to_owned(),
                )];
                if let Some(t) = &d.terms {
                    out.extend([
                        ("Purpose", t.purpose.clone()),
                        ("Scope", t.scope.clone()),
                        ("Manner", t.manner.clone()),
                        ("Prohibitions", t.prohibitions.clone()),
                        ("Credit", t.credit_commitment.clone()),
                        ("Liability", t.liability.clone()),
                        ("Disputes", t.dispute_resolution.clone()),
                        ("Budget ε", number(t.epsilon)),
                    ]);
                }
                if let Some(reasons) = &d.reasons {
                    out.push(("Reasons", reasons.clone()));
                }
                if let Some(basis) = &d.legal_basis {
                    out.push(("Legal basis", basis.clone()));
                }
                out
            }
        };
        let (error, reasons) = match error.map(reasons_of) {
            Some((head, reasons)) => (Some(head), reasons),
            None => (None, Vec::new()),
        };
        ApplicationPage {
            layout,
            row: ApplicationRow::new(a, now),
            fields,
            decision,
            can_decide: can_decide && a.state == "submitted",
            error,
            reasons,
        }
    }
}

pub struct AgreementRow {
    pub id: String,
    pub provider: String,
    pub datasets: String,
    pub period: String,
    pub active: bool,
    pub epsilon: String,
    pub spent: String,
    pub remaining: String,
    pub min_per_job: String,
    pub purpose: String,
}

impl From<&AgreementView> for AgreementRow {
    fn from(a: &AgreementView) -> Self {
        AgreementRow {
            id: a.id.clone(),
            provider: a.provider.clone(),
            datasets: a.datasets.join(", "),
            period: format!("{} to {}", a.period_start, a.period_end),
            active: a.active,
            epsilon: a.epsilon.clone(),
            spent: a.epsilon_spent.clone(),
            remaining: a.epsilon_remaining.clone(),
            min_per_job: a.min_epsilon_per_job.clone(),
            purpose: a
                .content
                .pointer("/terms/purpose")
                .and_then(|p| p.as_str())
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

#[derive(Template)]
#[template(path = "agreements.html")]
pub struct AgreementsPage {
    pub layout: Layout,
    pub rows: Vec<AgreementRow>,
}

pub struct UsageLine {
    pub group: String,
    pub datasets: u64,
    pub versions: u64,
    pub released: u64,
    pub failed: u64,
    pub rejected: u64,
    pub pending: u64,
    pub applications: u64,
    pub epsilon_spent: String,
}

impl From<&UsageRow> for UsageLine {
    fn from(r: &UsageRow) -> Self {
        UsageLine {
            group: r.group.clone(),
            datasets: r.datasets,
            versions: r.versions,
            released: r.jobs_released,
            failed: r.jobs_failed,
            rejected: r.jobs_rejected,
            pending: r.jobs_pending,
            applications: r.applications,
            epsilon_spent: r.epsilon_spent.clone(),
        }
    }
}

/// Usage statistics (art. 9) with a chart of released jobs per group.
#[derive(Template)]
#[template(path = "stats.html")]
pub struct StatsPage {
    pub layout: Layout,
    pub users: u64,
    pub releases: u64,
    pub revocations: u64,
    pub sections: Vec<StatsSection>,
}

pub struct StatsSection {
    pub title: &'static str,
    pub rows: Vec<UsageLine>,
    pub chart: Option<Chart>,
}

impl StatsPage {
    pub fn new(layout: Layout, s: &UsageStats) -> StatsPage {
        // Counts are exact (no noise): whiskers of zero length.
        let section = |title: &'static str, rows: &[UsageRow]| {
            let points: Vec<(String, f64, [f64; 2])> = rows
                .iter()
                .map(|r| {
                    let v = r.jobs_released as f64;
                    (r.group.clone(), v, [v, v])
                })
                .collect();
            StatsSection {
                title,
                rows: rows.iter().map(UsageLine::from).collect(),
                chart: Chart::bars("jobs released", &points),
            }
        };
        StatsPage {
            layout,
            users: s.users,
            releases: s.releases,
            revocations: s.revocations,
            sections: vec![
                section("By provider", &s.by_provider),
                section("By open category", &s.by_category),
            ],
        }
    }
}

pub struct RevocationRow {
    pub user: String,
    pub dataset: String,
    pub decided_by: String,
    pub reason: String,
    pub at: String,
}

impl From<&RevocationView> for RevocationRow {
    fn from(r: &RevocationView) -> Self {
        RevocationRow {
            user: r.user.clone(),
            dataset: r
                .dataset
                .clone()
                .unwrap_or_else(|| "every dataset (access closed)".to_owned()),
            decided_by: r.decided_by.clone(),
            reason: r.reason.clone(),
            at: r.at.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "revocations.html")]
pub struct RevocationsPage {
    pub layout: Layout,
    pub rows: Vec<RevocationRow>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_diff_reads_side_by_side() {
        let diff: Vec<String> = ["  a", "- b", "- c", "+ B", "  d", "+ e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows: Vec<(String, String, &str)> = super::side_by_side(&diff)
            .into_iter()
            .map(|r| (r.left, r.right, r.kind))
            .collect();
        let row = |l: &str, r: &str, k| (l.to_owned(), r.to_owned(), k);
        assert_eq!(
            rows,
            [
                row("a", "a", "same"),
                row("b", "B", "changed"),
                row("c", "", "changed"),
                row("d", "d", "same"),
                row("", "e", "changed"),
            ]
        );
    }

    #[test]
    fn the_module_clause_is_found_in_a_wasm_plan() {
        let plan = "WASM module sha256 ab12, 345 bytes, imports [], exports [map, memory]; a fresh instance per unit; ...";
        assert_eq!(
            super::module_of(plan).as_deref(),
            Some("WASM module sha256 ab12, 345 bytes, imports [], exports [map, memory]")
        );
        assert_eq!(super::module_of("dataset(s) pums; 2 cell(s)"), None);
    }

    #[test]
    fn reasons_and_deadlines_read_as_lists_and_working_days() {
        let (head, reasons) = super::reasons_of(
            "application incomplete, not forwarded: title is missing; pledge must be true",
        );
        assert_eq!(head, "application incomplete, not forwarded");
        assert_eq!(reasons, ["title is missing", "pledge must be true"]);
        assert_eq!(super::reasons_of("dataset x not found").1.len(), 0);
        let monday = sluice_types::time::parse_rfc3339("2026-12-07T09:00:00Z").unwrap();
        assert_eq!(
            super::countdown("2026-12-21T09:00:00Z", monday),
            "due 2026-12-21 (10 working days left)"
        );
        assert!(
            super::countdown("2026-12-01T09:00:00Z", monday)
                .starts_with("overdue since 2026-12-01")
        );
    }
}

pub struct FeedbackRow {
    pub id: String,
    pub dataset: String,
    pub reported_by: String,
    pub kind: String,
    pub description: String,
    pub state: String,
    pub answer: String,
    pub deadline: String,
    pub extension: String,
}

impl FeedbackRow {
    pub fn new(f: &FeedbackView, now: i64) -> FeedbackRow {
        FeedbackRow {
            id: f.id.clone(),
            dataset: f.dataset.clone(),
            reported_by: f.reported_by.clone(),
            kind: f.kind.clone(),
            description: f.description.clone(),
            state: f.state.clone(),
            answer: f.answer.clone().unwrap_or_default(),
            deadline: if f.state == "open" {
                countdown(&f.due_at, now)
            } else {
                String::new()
            },
            extension: f.extension.clone().unwrap_or_default(),
        }
    }
}

/// Feedback and rectification items with their deadlines (art. 10, 16).
#[derive(Template)]
#[template(path = "feedback.html")]
pub struct FeedbackPage {
    pub layout: Layout,
    pub rows: Vec<FeedbackRow>,
    /// The caller is a provider: open items get an answer form and an
    /// extension request.
    pub answers: bool,
    /// The caller is the authority: requested extensions get a decision.
    pub decides_extensions: bool,
}

/// The authority's list of users, with the form that creates one; a new
/// user's token is shown once, on the page that created it.
#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub users: Vec<(String, String, &'static str)>,
    pub created: Option<(String, String)>,
    pub error: Option<String>,
}

impl UsersPage {
    pub fn new(
        layout: Layout,
        users: &[sluice_types::api::UserView],
        created: Option<(String, String)>,
        error: Option<String>,
    ) -> UsersPage {
        UsersPage {
            layout,
            users: users
                .iter()
                .map(|u| (u.id.clone(), u.name.clone(), u.role.as_str()))
                .collect(),
            created,
            error,
        }
    }
}
