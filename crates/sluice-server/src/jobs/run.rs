//! Job submission and execution. Order matters and is the privacy argument:
//! 1. the manifest is parsed and checked, datasets resolved, open categories
//!    and access enforced (no data touched);
//! 2. a sandbox analyses the query against schemas only — a rejection here
//!    costs nothing;
//! 3. the exact ε is reserved durably in the ledger;
//! 4. a sandbox executes; its noised outputs are signed and stored together
//!    with the committed spend in one transaction. A failure after data was
//!    touched keeps the spend; only a failure before it refunds.

use std::sync::Arc;

use sluice_store::{
    ActiveJob, DatasetRecord, DatasetStatus, HoldForReview, JobState, NewJob, Shortfall, UserRecord,
};
use sluice_types::OpenCategory;
use sluice_types::api::EstimateView;
use sluice_types::error::ErrorCode;
use sluice_types::manifest::{JobKind, Manifest, split_dataset_ref};
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::release::{ReleaseBody, ReleasedDataset};
use sluice_types::sandbox::{
    QueryTask, SandboxResponse, SandboxTable, SandboxTask, TrainTask, WasmTask,
};

use crate::error::ApiError;
use crate::sandbox::{self, SpawnError};
use crate::schedule::{self, Schedule, Workload};
use crate::{AppState, SharedState};

/// A dataset of a job, resolved to one stored version.
struct Resolved {
    record: DatasetRecord,
    version: String,
    file_name: String,
    /// Ingest found no unit over the dataset's row bound in this version.
    bound_verified: bool,
    /// Columns ingest found entirely within their declared bounds and domain.
    in_bounds: Vec<String>,
    /// The dataset's bound, or the job's lower one.
    max_rows_per_unit: u32,
    /// Rows of the version (public metadata), for the job's schedule.
    rows: u64,
}

/// What a job runs in the sandbox: a DP SQL query or a WASM job.
#[derive(Debug, Clone)]
pub enum JobTask {
    Sql(QueryTask),
    Wasm(WasmTask),
    Train(TrainTask),
}

impl JobTask {
    pub fn epsilon(&self) -> Epsilon {
        match self {
            JobTask::Sql(q) => q.epsilon,
            JobTask::Wasm(w) => w.epsilon,
            JobTask::Train(t) => t.epsilon,
        }
    }

    pub fn delta(&self) -> Delta {
        match self {
            JobTask::Sql(q) => q.delta,
            JobTask::Wasm(_) => Delta::ZERO,
            JobTask::Train(t) => t.delta,
        }
    }

    /// The schema-and-module-only check (no data).
    fn analyze(&self) -> SandboxTask {
        match self {
            JobTask::Sql(q) => SandboxTask::Analyze(q.clone()),
            JobTask::Wasm(w) => SandboxTask::AnalyzeWasm(w.clone()),
            JobTask::Train(t) => SandboxTask::AnalyzeTrain(t.clone()),
        }
    }

    fn execute(self) -> SandboxTask {
        match self {
            JobTask::Sql(q) => SandboxTask::Execute(q),
            JobTask::Wasm(w) => SandboxTask::ExecuteWasm(w),
            JobTask::Train(t) => SandboxTask::ExecuteTrain(t),
        }
    }
}

/// Checks whether `caller` may run jobs on `record` (art. 7).
pub async fn check_job_access(
    state: &AppState,
    caller: &UserRecord,
    record: &DatasetRecord,
) -> Result<(), ApiError> {
    let name = &record.entry.name;
    if let Some(why) = barred(state, &caller.id, record).await? {
        return Err(ApiError::forbidden(why));
    }
    let owns = crate::access::owns(caller, record);
    match record.entry.open_category {
        OpenCategory::NotOpen => Err(ApiError::new(
            ErrorCode::DatasetNotOpen,
            format!("dataset {name} is not open: no job may reference it"),
        )),
        OpenCategory::Conditional if !owns && !state.store.has_access(&record.entry.id, &caller.id).await? => {
            Err(ApiError::forbidden(format!(
                "dataset {name} is conditional: you need the provider's approval before running jobs on it"
            ))
            .hint("apply for access (sluice application apply); the provider's approval creates a data-use agreement your manifest names"))
        }
        _ => Ok(()),
    }
}

/// Why `user_id` may not run a job on `record` now, whatever the grants: the
/// dataset is suspended or withdrawn (art. 38), or the user's access was
/// revoked (art. 34). Checked at submission and again when a job starts.
pub async fn barred(
    state: &AppState,
    user_id: &str,
    record: &DatasetRecord,
) -> Result<Option<String>, ApiError> {
    let name = &record.entry.name;
    let reason = record.status_reason.as_deref().unwrap_or("no reason given");
    match record.status {
        DatasetStatus::Active => {}
        DatasetStatus::Suspended => {
            return Ok(Some(format!(
                "dataset {name} is suspended ({reason}): no job may run on it"
            )));
        }
        DatasetStatus::Withdrawn => {
            return Ok(Some(format!("dataset {name} was withdrawn ({reason})")));
        }
    }
    Ok(state
        .store
        .revocation_of(user_id, &record.entry.id)
        .await?
        .map(|r| {
            format!(
                "your access to {name} was revoked on {}: {}",
                r.created_at, r.reason
            )
        }))
}

/// A manifest checked against the catalog and the caller's access, with
/// the sandbox task it becomes. Nothing is written and no data is read.
pub struct Prepared {
    pub manifest: Manifest,
    resolved: Vec<Resolved>,
    pub task: JobTask,
    pub digest: String,
    pub versions: Vec<(String, String)>,
}

pub async fn prepare(
    state: &AppState,
    caller: &UserRecord,
    manifest_text: &str,
) -> Result<Prepared, ApiError> {
    let manifest: Manifest = toml::from_str(manifest_text).map_err(|e| {
        ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("manifest invalid: {}", e.message()),
        )
    })?;
    if let Err(problems) = manifest.validate() {
        return Err(ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("manifest invalid: {}", problems.join("; ")),
        ));
    }
    let epsilon = Epsilon::from_f64(manifest.privacy.epsilon).expect("validated");
    let delta = manifest
        .privacy
        .delta
        .map(|d| Delta::from_f64(d).expect("validated"))
        .unwrap_or_default();
    // δ is only for selecting group keys from the data; the analysis
    // rejects a δ the query does not use, so what is charged is what it needs.

    let mut resolved = Vec::new();
    for r in &manifest.datasets {
        let (name, version) = split_dataset_ref(r);
        let record = state
            .store
            .dataset(name)
            .await?
            .filter(|d| crate::access::visible(caller, d))
            .ok_or_else(|| ApiError::not_found(&format!("dataset {name}")))?;
        check_job_access(state, caller, &record).await?;
        let version = match version {
            Some(v) => v.to_owned(),
            None => record
                .entry
                .latest_version()
                .map(|v| v.version.clone())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("dataset {name} has no published version"))
                })?,
        };
        let file_name = state
            .store
            .version_file(&record.entry.id, &version)
            .await?
            .ok_or_else(|| ApiError::not_found(&format!("version {version} of dataset {name}")))?;
        let quality = state
            .store
            .quality_report(&record.entry.id, &version)
            .await?;
        let in_bounds = quality
            .iter()
            .flat_map(|q| &q.columns)
            .filter(|c| c.out_of_bounds == 0 && c.out_of_domain == 0 && c.type_errors == 0)
            .map(|c| c.name.clone())
            .collect();
        let declared_k = record.entry.schema.max_rows_per_unit;
        let job_k = manifest.privacy.max_rows_per_unit.get(name).copied();
        if let Some(k) = job_k
            && k > declared_k
        {
            return Err(ApiError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "manifest invalid: privacy.max_rows_per_unit.{name} = {k} is above the dataset's bound of {declared_k}; a job may only lower it"
                ),
            ));
        }
        let lowered = job_k.is_some_and(|k| k < declared_k);
        let bound_verified = !lowered
            && quality.as_ref().is_some_and(|q| {
                // The bound holds and every row has a unit: nothing to bound.
                let unit = record.entry.schema.privacy_unit().map(|u| u.name.clone());
                q.units_over_max_rows == 0
                    && q.columns
                        .iter()
                        .filter(|c| Some(&c.name) == unit.as_ref())
                        .all(|c| c.nulls == 0)
            });
        resolved.push(Resolved {
            rows: quality.as_ref().map_or(0, |q| q.rows),
            record,
            version,
            file_name,
            bound_verified,
            in_bounds,
            max_rows_per_unit: job_k.unwrap_or(declared_k),
        });
    }
    // Conditional data runs only under an agreement the manifest names, and
    // within that agreement's datasets, purpose and period (art. 20-21).
    let records: Vec<&DatasetRecord> = resolved.iter().map(|r| &r.record).collect();
    if let Some(why) = uncovered(state, caller, &manifest, &records).await? {
        return Err(ApiError::forbidden(why));
    }

    let tables: Vec<SandboxTable> = resolved
        .iter()
        .map(|r| SandboxTable {
            name: r.record.entry.name.clone(),
            path: state
                .config
                .data_dir
                .join("datasets")
                .join(&r.record.entry.id)
                .join(&r.file_name)
                .to_string_lossy()
                .into_owned(),
            schema: sluice_types::schema::DatasetSchema {
                max_rows_per_unit: r.max_rows_per_unit,
                ..r.record.entry.schema.clone()
            },
            bound_verified: r.bound_verified,
            public: r.record.entry.open_category == OpenCategory::Unconditional,
            in_bounds: r.in_bounds.clone(),
        })
        .collect();
    let task = match &manifest.job {
        JobKind::Sql { query } => JobTask::Sql(QueryTask {
            query: query.clone(),
            tables,
            epsilon,
            delta,
            split: manifest.privacy.split.clone(),
        }),
        JobKind::Wasm {
            module,
            mode,
            columns,
            outputs,
            blocks,
            ..
        } => JobTask::Wasm(WasmTask {
            module: module.clone(),
            mode: *mode,
            table: tables.into_iter().next().expect("validated: one dataset"),
            columns: columns.clone(),
            outputs: outputs.clone(),
            blocks: *blocks,
            epsilon,
            limits: manifest.job.wasm_limits(),
        }),
        JobKind::Train {
            model,
            query,
            label,
            hyper,
            module,
        } => JobTask::Train(TrainTask {
            model: *model,
            query: query.clone(),
            label: label.clone(),
            hyper: hyper.clone(),
            module: module.clone(),
            tables,
            epsilon,
            delta,
        }),
    };
    let digest = sluice_crypto::digest_of(&manifest);
    let versions: Vec<(String, String)> = resolved
        .iter()
        .map(|r| (r.record.entry.id.clone(), r.version.clone()))
        .collect();
    Ok(Prepared {
        manifest,
        resolved,
        task,
        digest,
        versions,
    })
}

/// Why the job is not covered by data-use agreements now, if it is not:
/// every conditional dataset the user neither provides nor administers
/// must be covered by an agreement the manifest names (art. 20-21).
/// Checked at submission and again when a held job starts, which may be
/// days later.
async fn uncovered(
    state: &AppState,
    user: &UserRecord,
    manifest: &Manifest,
    records: &[&DatasetRecord],
) -> Result<Option<String>, ApiError> {
    let conditional: Vec<(String, String)> = records
        .iter()
        .filter(|r| {
            r.entry.open_category == OpenCategory::Conditional && !crate::access::owns(user, r)
        })
        .map(|r| (r.entry.id.clone(), r.entry.name.clone()))
        .collect();
    let ids: Vec<String> = records.iter().map(|r| r.entry.id.clone()).collect();
    let problems =
        crate::applications::agreement_problems(state, user, manifest, &ids, &conditional).await?;
    Ok((!problems.is_empty()).then(|| {
        format!(
            "the job is not covered by a data-use agreement: {}",
            problems.join("; ")
        )
    }))
}

/// Estimates a manifest: accepted or rejected with every reason, the exact
/// cost and the expected error; reads no data and spends nothing.
pub async fn estimate(
    state: &AppState,
    caller: &UserRecord,
    manifest_text: &str,
) -> Result<EstimateView, ApiError> {
    let p = prepare(state, caller, manifest_text).await?;
    match sandbox::run(state, &p.task.analyze(), &[]).await {
        Ok(SandboxResponse::Accepted { plan, estimate }) => {
            // What the ledger would refuse now, said before submitting.
            let reasons = budget_shortfalls(state, caller, &p).await?;
            let (minimum, _) = state
                .store
                .minimum_epsilon(&caller.id, &p.manifest.agreement)
                .await?;
            // The schedule the job would get if it started now.
            let rows: Vec<u64> = p.resolved.iter().map(|r| r.rows).collect();
            let task = p.task.clone().execute();
            let work = workload(&task, &rows, estimate_size(&estimate));
            let level = state
                .store
                .timing_level(&caller.id, &schedule::principal_of(&p.manifest.agreement))
                .await?;
            let calibration = *state.calibration.read().expect("calibration");
            let plan_time = Schedule::new(
                schedule::predict(&work, &calibration, &state.config.timing),
                level,
                state.config.sandbox_timeout,
            );
            Ok(EstimateView {
                accepted: reasons.is_empty(),
                reasons,
                manifest_digest: p.digest,
                plan: Some(plan),
                estimate: Some(estimate),
                minimum_epsilon: Some(minimum.to_string()),
                expected_seconds: Some(plan_time.offset().as_secs_f64()),
            })
        }
        Ok(SandboxResponse::Rejected { reasons }) => Ok(EstimateView {
            accepted: false,
            reasons,
            manifest_digest: p.digest,
            plan: None,
            estimate: None,
            minimum_epsilon: None,
            expected_seconds: None,
        }),
        other => {
            tracing::error!(ok = other.is_ok(), "estimate sandbox failed");
            Err(ApiError::internal())
        }
    }
}

/// Every budget the job's ε would exceed if submitted now: the caller's
/// grant on a dataset, a dataset's cap, or a named agreement's budget.
async fn budget_shortfalls(
    state: &AppState,
    caller: &UserRecord,
    p: &Prepared,
) -> Result<Vec<String>, ApiError> {
    // The same manifest on the same versions returns its stored release.
    if state
        .store
        .cached_release(&caller.id, &p.digest, &p.versions)
        .await?
        .is_some()
    {
        return Ok(Vec::new());
    }
    let (epsilon, delta) = (p.task.epsilon(), p.task.delta());
    let dataset_ids: Vec<String> = p.versions.iter().map(|(id, _)| id.clone()).collect();
    let shortfalls = state
        .store
        .shortfalls(
            &caller.id,
            &dataset_ids,
            &p.manifest.agreement,
            epsilon,
            delta,
        )
        .await?;
    Ok(shortfalls
        .into_iter()
        .map(|short| match short {
            Shortfall::UserGrant(name) => {
                format!("epsilon {epsilon} exceeds your remaining budget on dataset {name}")
            }
            Shortfall::DatasetCap(name) => {
                format!("epsilon {epsilon} exceeds what remains of dataset {name}'s cap")
            }
            Shortfall::Agreement(id) => {
                format!("epsilon {epsilon} exceeds what remains of agreement {id}'s budget")
            }
            Shortfall::BelowMinimum { minimum, set_by } => format!(
                "epsilon {epsilon} is below the least a job may spend, {minimum} ({set_by}): every job costs at least this, which bounds how many jobs a budget allows"
            ),
        })
        .collect())
}

pub async fn submit(
    state: SharedState,
    caller: UserRecord,
    manifest_text: &str,
) -> Result<String, ApiError> {
    let Prepared {
        manifest,
        resolved,
        task,
        digest,
        versions,
    } = prepare(&state, &caller, manifest_text).await?;
    let epsilon = task.epsilon();
    let delta = task.delta();
    // The same manifest on the same versions: return the stored release, spend nothing.
    if let Some(existing) = state
        .store
        .cached_release(&caller.id, &digest, &versions)
        .await?
    {
        state
            .store
            .audit(
                &caller.id,
                "job.cached",
                &existing,
                &serde_json::json!({"manifest_digest": digest}),
            )
            .await?;
        return Ok(existing);
    }
    let job_id = state
        .store
        .create_job(
            &caller.id,
            NewJob {
                user_id: caller.id.clone(),
                manifest_json: sluice_crypto::canonical_json_string(&manifest),
                manifest_digest: digest.clone(),
                dataset_versions: versions,
                epsilon,
                delta,
            },
        )
        .await?;

    // Analysis on schemas only: a rejection costs no budget.
    let (plan, estimate) = match sandbox::run(&state, &task.analyze(), &[]).await {
        Ok(SandboxResponse::Accepted { plan, estimate }) => (plan, estimate),
        Ok(SandboxResponse::Rejected { reasons }) => {
            let message = format!("job rejected: {}", reasons.join("; "));
            state
                .store
                .set_job_state(&caller.id, &job_id, JobState::Rejected, Some(&message))
                .await?;
            return Err(ApiError::new(ErrorCode::QueryRejected, message));
        }
        other => {
            match &other {
                Ok(r) => {
                    tracing::error!(job = %job_id, response = ?std::mem::discriminant(r), "unexpected analysis response")
                }
                Err(e) => tracing::error!(job = %job_id, error = %e, "analysis sandbox failed"),
            }
            state
                .store
                .set_job_state(
                    &caller.id,
                    &job_id,
                    JobState::Failed,
                    Some("analysis failed"),
                )
                .await?;
            return Err(ApiError::internal());
        }
    };

    let dataset_ids: Vec<String> = resolved.iter().map(|r| r.record.entry.id.clone()).collect();
    let datasets: Vec<ReleasedDataset> = resolved
        .iter()
        .map(|r| ReleasedDataset {
            name: r.record.entry.name.clone(),
            id: r.record.entry.id.clone(),
            version: r.version.clone(),
            provider: r.record.entry.provider.clone(),
            citation: r.record.entry.citation(&r.version),
        })
        .collect();
    // A provider may require human review: the job waits, nothing reserved.
    let required = resolved
        .iter()
        .map(|r| r.record.reviewers_required)
        .max()
        .unwrap_or(0);
    let rows: Vec<u64> = resolved.iter().map(|r| r.rows).collect();
    let task = task.execute();
    let runnable = Runnable {
        user_id: caller.id.clone(),
        job_id: job_id.clone(),
        title: manifest.title.clone(),
        digest,
        workload: workload(&task, &rows, estimate_size(&estimate)),
        task,
        epsilon,
        delta,
        dataset_ids,
        agreement_ids: manifest.agreement.clone(),
        datasets,
    };
    if required > 0 {
        state
            .store
            .hold_for_review(
                &caller.id,
                &job_id,
                HoldForReview {
                    required,
                    plan: &plan,
                    estimate_json: &serde_json::to_string(&estimate).expect("estimate serialises"),
                    task_json: &serde_json::to_string(&runnable.task).expect("task serialises"),
                    datasets_json: &serde_json::to_string(&runnable.datasets)
                        .expect("datasets serialise"),
                },
            )
            .await?;
        return Ok(job_id);
    }
    start(state, runnable).await?;
    Ok(job_id)
}

/// Everything needed to run an accepted (and, where required, approved) job.
pub struct Runnable {
    pub user_id: String,
    pub job_id: String,
    pub title: String,
    pub digest: String,
    pub task: SandboxTask,
    pub epsilon: Epsilon,
    pub delta: Delta,
    pub dataset_ids: Vec<String>,
    /// Data-use agreements the job runs under; each is charged its ε.
    pub agreement_ids: Vec<String>,
    pub datasets: Vec<ReleasedDataset>,
    /// What the job will do, for its schedule (known before data is read).
    pub workload: Workload,
}

/// What `task` will do, from data-independent inputs only: the row counts
/// of the versions it reads (public metadata, rounded up to powers of
/// two), its plan's released cells and the manifest's declared limits.
pub fn workload(task: &SandboxTask, rows: &[u64], cells: u64) -> Workload {
    let rows_sum = rows
        .iter()
        .map(|r| schedule::rounded_rows(*r))
        .fold(0u64, u64::saturating_add);
    match task {
        SandboxTask::ExecuteWasm(w) => Workload::Wasm {
            rows: rows_sum,
            // A unit or a block per run: units are at most the rows.
            runs: w.blocks.map_or(rows_sum, u64::from),
            fuel_per_run: expected_fuel(w),
        },
        SandboxTask::ExecuteTrain(t) => Workload::Train {
            rows: rows_sum,
            features: cells,
            epochs: u64::from(t.hyper.epochs),
            fuel_per_unit: if t.module.is_some() {
                TRAIN_GRADIENT_FUEL
            } else {
                0
            },
        },
        _ => Workload::Sql {
            rows: rows_sum,
            tables: rows.len() as u64,
            cells,
        },
    }
}

/// Rows of each version a job reads (0 where no report exists).
async fn version_rows(
    state: &AppState,
    versions: &[(String, String)],
) -> Result<Vec<u64>, ApiError> {
    let mut rows = Vec::with_capacity(versions.len());
    for (id, version) in versions {
        let q = state.store.quality_report(id, version).await?;
        rows.push(q.map_or(0, |q| q.rows));
    }
    Ok(rows)
}

/// Registers the job for cancellation, checks again that no suspension or
/// revocation bars it, reserves its budget (before any data is touched) and
/// runs it in the background. A refusal rejects the job.
pub async fn start(state: SharedState, job: Runnable) -> Result<(), ApiError> {
    // Registered first: a suspension or revocation from now on reaches it.
    let (cancel, cancelled) = tokio::sync::watch::channel(None);
    state
        .cancels
        .lock()
        .expect("cancel registry")
        .insert(job.job_id.clone(), cancel);
    let refuse = |state: &SharedState, job: &Runnable, err: ApiError| {
        let state = state.clone();
        let (user, id) = (job.user_id.clone(), job.job_id.clone());
        async move {
            state.cancels.lock().expect("cancel registry").remove(&id);
            // The job may already have been cancelled (failed): keep that.
            let _ = state
                .store
                .set_job_state(&user, &id, JobState::Rejected, Some(&err.message))
                .await;
            Err::<(), ApiError>(err)
        }
    };
    match barred_any(&state, &job.user_id, &job.dataset_ids).await {
        Ok(None) => {}
        Ok(Some(why)) => return refuse(&state, &job, ApiError::forbidden(why)).await,
        Err(e) => return refuse(&state, &job, e).await,
    }
    if let Err(e) = state
        .store
        .reserve_under(
            &job.user_id,
            &job.job_id,
            &job.user_id,
            &job.dataset_ids,
            &job.agreement_ids,
            job.epsilon,
            job.delta,
        )
        .await
    {
        return refuse(&state, &job, ApiError::from(e)).await;
    }
    // The schedule is fixed now, before any data is read.
    let principal = schedule::principal_of(&job.agreement_ids);
    let level = state
        .store
        .timing_level(&job.user_id, &principal)
        .await
        .unwrap_or(0);
    let calibration = *state.calibration.read().expect("calibration");
    let prediction = schedule::predict(&job.workload, &calibration, &state.config.timing);
    let plan = Schedule::new(prediction, level, state.config.sandbox_timeout);
    let admitted = schedule::rfc3339(std::time::SystemTime::now());
    state
        .store
        .set_job_state_at("system", &job.job_id, JobState::Running, None, &admitted)
        .await?;
    state
        .store
        .schedule_job(
            "system",
            &job.job_id,
            &schedule::rfc3339_millis(plan.due_wall()),
            &admitted,
        )
        .await?;
    state.notify(&job.job_id);
    tokio::spawn(async move {
        let id = job.job_id.clone();
        if let Err(e) = execute(&state, job, plan, principal, cancelled).await {
            tracing::error!(job = %id, error = ?e, "job bookkeeping failed");
        }
        state.cancels.lock().expect("cancel registry").remove(&id);
        state.notify(&id);
    });
    Ok(())
}

/// Waits until the job is cancelled; the reason.
async fn cancellation(cancelled: &mut tokio::sync::watch::Receiver<Option<String>>) -> String {
    match cancelled.wait_for(Option::is_some).await {
        Ok(r) => r.clone().unwrap_or_default(),
        Err(_) => "the server is shutting down".to_owned(),
    }
}

/// Released cells (SQL) or columns (training) of an accepted plan.
fn estimate_size(e: &sluice_types::sandbox::Estimate) -> u64 {
    e.rows.max(e.columns.len() as u64)
}

/// The fuel a WASM run is expected to burn: what the job declared, up to
/// a typical guest's use. A job whose runs burn more is late and doubles
/// its principal's predictions (docs/threat-model.md); one unit that spins
/// to its declared limit adds at most that limit's time.
fn expected_fuel(task: &WasmTask) -> u64 {
    let declared = task
        .limits
        .unwrap_or_else(|| sluice_types::manifest::WasmLimits::defaults(task.mode))
        .fuel;
    declared.min(TYPICAL_FUEL_PER_RUN)
}

const TYPICAL_FUEL_PER_RUN: u64 = 50_000;
const TRAIN_GRADIENT_FUEL: u64 = 20_000;

/// Cancels every job not yet ended that `affected` selects: a running job's
/// sandbox is killed and its spend kept (it may have read data); a job not
/// started (queued, awaiting review) fails with nothing spent. Nothing of
/// either is released. Returns how many were cancelled.
pub async fn cancel_jobs(
    state: &AppState,
    affected: impl Fn(&ActiveJob) -> bool,
    reason: &str,
) -> Result<usize, ApiError> {
    let mut n = 0;
    for job in state.store.active_jobs().await? {
        if !affected(&job) {
            continue;
        }
        n += 1;
        let registered = state
            .cancels
            .lock()
            .expect("cancel registry")
            .get(&job.id)
            .map(|tx| tx.send_replace(Some(reason.to_owned())))
            .is_some();
        if !registered {
            // Not started: no reservation exists and no data was read.
            let _ = state
                .store
                .set_job_state(
                    "system",
                    &job.id,
                    JobState::Cancelled,
                    Some(&format!(
                        "cancelled before it ran: {reason}; nothing was spent"
                    )),
                )
                .await;
        }
    }
    Ok(n)
}

/// Why a finished job's outputs must be withheld: a dataset was suspended
/// or withdrawn, or the user's access revoked, while it ran.
async fn withheld(state: &AppState, user_id: &str, dataset_ids: &[String]) -> Option<String> {
    barred_any(state, user_id, dataset_ids)
        .await
        .unwrap_or_else(|_| Some("its access could not be checked".into()))
}

/// [`barred`] for every dataset of a job: the first reason, if any. A
/// dataset that cannot be found is an internal error.
async fn barred_any(
    state: &AppState,
    user_id: &str,
    dataset_ids: &[String],
) -> Result<Option<String>, ApiError> {
    for id in dataset_ids {
        let record = state
            .store
            .dataset(id)
            .await?
            .ok_or_else(ApiError::internal)?;
        if let Some(why) = barred(state, user_id, &record).await? {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// A held job, approved: rebuilt from what was stored when it was held.
pub async fn start_approved(state: SharedState, job_id: &str) -> Result<(), ApiError> {
    let job = state
        .store
        .job(job_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    let held = state
        .store
        .held_job(job_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    let manifest: Manifest =
        serde_json::from_str(&job.manifest_json).map_err(|_| ApiError::internal())?;
    // Days may have passed in review: the agreements must still cover it.
    let user = state
        .store
        .user_by_id(&job.user_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    let mut records = Vec::new();
    for (id, _) in &job.dataset_versions {
        records.push(
            state
                .store
                .dataset(id)
                .await?
                .ok_or_else(ApiError::internal)?,
        );
    }
    let refs: Vec<&DatasetRecord> = records.iter().collect();
    if let Some(why) = uncovered(&state, &user, &manifest, &refs).await? {
        state
            .store
            .set_job_state(&user.id, job_id, JobState::Rejected, Some(&why))
            .await?;
        return Err(ApiError::forbidden(why));
    }
    let task: SandboxTask =
        serde_json::from_str(&held.task_json).map_err(|_| ApiError::internal())?;
    let estimate: sluice_types::sandbox::Estimate =
        serde_json::from_str(&held.estimate_json).map_err(|_| ApiError::internal())?;
    let rows = version_rows(&state, &job.dataset_versions).await?;
    let runnable = Runnable {
        user_id: job.user_id.clone(),
        job_id: job.id.clone(),
        title: manifest.title,
        digest: job.manifest_digest.clone(),
        workload: workload(&task, &rows, estimate_size(&estimate)),
        task,
        epsilon: job.epsilon,
        delta: job.delta,
        dataset_ids: job
            .dataset_versions
            .iter()
            .map(|(id, _)| id.clone())
            .collect(),
        datasets: serde_json::from_str(&held.datasets_json).map_err(|_| ApiError::internal())?,
        agreement_ids: manifest.agreement.clone(),
    };
    start(state, runnable).await
}

/// Runs an admitted job and makes its outcome visible on its schedule:
/// never before its due time, and at a later due time (after raising its
/// principal's level) when it was not done by one. Cancellation by a
/// suspension or revocation is not data-dependent and acts at once.
async fn execute(
    state: &Arc<AppState>,
    job: Runnable,
    mut plan: Schedule,
    principal: String,
    mut cancelled: tokio::sync::watch::Receiver<Option<String>>,
) -> Result<(), sluice_store::StoreError> {
    let store = &state.store;
    let Runnable {
        user_id,
        job_id,
        title,
        digest,
        task,
        epsilon,
        delta,
        datasets,
        dataset_ids,
        agreement_ids: _,
        workload: _,
    } = job;
    let (job_id, digest) = (job_id.as_str(), digest.as_str());
    let mitigate = state.config.timing.mitigate;
    let run = sandbox::run_until(state, &task, &[], plan.deadline());
    tokio::pin!(run);
    // Dropping the sandbox future kills the child (kill_on_drop).
    let outcome: Result<Result<SandboxResponse, SpawnError>, String> = loop {
        tokio::select! {
            r = &mut run => break Ok(r),
            reason = cancellation(&mut cancelled) => break Err(reason),
            _ = tokio::time::sleep_until(plan.due().into()), if mitigate && !plan.at_deadline() => {
                // Not done by its due time: a misprediction, visible now
                // (a scheduled time) as a later due time.
                let at = schedule::rfc3339(plan.due_wall());
                let level = store
                    .raise_timing_level("system", &user_id, &principal, job_id, plan.level() + 1)
                    .await?;
                plan.raise_to(level);
                tracing::info!(job = %job_id, level = plan.level(), "job mispredicted; its principal's predictions double");
                store
                    .schedule_job("system", job_id, &schedule::rfc3339_millis(plan.due_wall()), &at)
                    .await?;
                state.notify(job_id);
            }
        }
    };
    // The outcome exists; it becomes visible at the due time.
    let outcome = match outcome {
        Ok(r) if mitigate => tokio::select! {
            _ = tokio::time::sleep_until(plan.due().into()) => Ok(r),
            reason = cancellation(&mut cancelled) => Err(reason),
        },
        other => other,
    };
    let at = if mitigate {
        schedule::rfc3339(plan.due_wall())
    } else {
        sluice_types::time::now_rfc3339()
    };
    let outcome = match outcome {
        Ok(Ok(SandboxResponse::Released { outputs })) => {
            match withheld(state, &user_id, &dataset_ids).await {
                None => Ok(Ok(SandboxResponse::Released { outputs })),
                Some(why) => Err(format!("outputs withheld: {why}")),
            }
        }
        other => other,
    };
    let outcome = match outcome {
        Ok(r) => r,
        Err(reason) => {
            tracing::info!(job = %job_id, "job cancelled");
            // The sandbox may have read data: the spend stays.
            store.commit_spend("system", job_id).await?;
            store
                .set_job_state(
                    "system",
                    job_id,
                    JobState::Cancelled,
                    Some(&format!(
                        "cancelled: {reason}; nothing was released and its budget stays spent"
                    )),
                )
                .await?;
            return Ok(());
        }
    };
    match outcome {
        Ok(SandboxResponse::Released { outputs }) => {
            let body = ReleaseBody {
                job_id: job_id.to_owned(),
                title,
                manifest_digest: digest.to_owned(),
                datasets,
                outputs,
                epsilon_spent: epsilon,
                delta_spent: delta,
                confidence_level: sluice_types::release::CONFIDENCE_LEVEL,
                created_at: at.clone(),
            };
            let envelope = sluice_crypto::sign_release(&state.keys, &body);
            let json = serde_json::to_string(&sluice_types::Release { envelope, body })
                .expect("release serialises");
            store.release_job_at("system", job_id, &json, &at).await?;
            tracing::info!(job = %job_id, user = %user_id, "job released");
        }
        Ok(SandboxResponse::Rejected { reasons }) => {
            // Rejections derive from schemas, the query and public data only; no noise drawn.
            store.refund("system", job_id).await?;
            let message = format!("job rejected: {}", reasons.join("; "));
            store
                .set_job_state_at("system", job_id, JobState::Rejected, Some(&message), &at)
                .await?;
        }
        Err(SpawnError::Start(e)) => {
            tracing::error!(job = %job_id, error = %e, "sandbox did not start; nothing was read");
            store.refund("system", job_id).await?;
            store
                .set_job_state_at(
                    "system",
                    job_id,
                    JobState::Failed,
                    Some("the job could not be started; no budget was spent"),
                    &at,
                )
                .await?;
        }
        Err(SpawnError::Deadline) => {
            tracing::warn!(job = %job_id, "job reached its deadline");
            store.commit_spend("system", job_id).await?;
            store
                .set_job_state_at(
                    "system",
                    job_id,
                    JobState::Failed,
                    Some(&format!(
                        "the job ran past its deadline of {} s; nothing was released and its budget stays spent",
                        state.config.sandbox_timeout.as_secs()
                    )),
                    &at,
                )
                .await?;
        }
        other => {
            match &other {
                Ok(SandboxResponse::Failed { category }) => {
                    tracing::error!(job = %job_id, category = category.as_str(), "job failed in sandbox")
                }
                Err(e) => tracing::error!(job = %job_id, error = %e, "sandbox failed"),
                Ok(_) => tracing::error!(job = %job_id, "unexpected sandbox response"),
            }
            // Data may have been read: the reservation stays spent.
            store.commit_spend("system", job_id).await?;
            store
                .set_job_state_at(
                    "system",
                    job_id,
                    JobState::Failed,
                    Some("the job failed while running; nothing was released and its budget stays spent"),
                    &at,
                )
                .await?;
        }
    }
    Ok(())
}
