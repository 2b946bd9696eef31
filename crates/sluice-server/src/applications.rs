//! Conditional access (art. 20-21): a user applies with every field the
//! rules name; an incomplete application is refused with every problem at
//! once and forwarded to nobody; the provider decides within 10 working days
//! (overdue ones are listed); an approval creates a content-hashed data-use
//! agreement, a refusal gives reasons and the legal basis. A job that names
//! an agreement runs only within its datasets, purpose and period.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sluice_store::{Agreement, NamedAgreement, NamedApplication, NewAgreement, UserRecord};
use sluice_types::OpenCategory;
use sluice_types::api::{
    AgreementTerms, AgreementView, ApplicationDecision, ApplicationRequest, ApplicationView,
};
use sluice_types::manifest::Manifest;
use sluice_types::privacy::Epsilon;
use sluice_types::time::now_rfc3339;

use crate::SharedState;
use crate::access::{Caller, OverdueQuery, party_scope, party_to};
use crate::error::{ApiError, ApiJson};

/// Longest free-text field of an application or agreement.
const MAX_TEXT: usize = 8192;

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s.chars()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && matches!(s[5..7].parse::<u32>(), Ok(1..=12))
        && matches!(s[8..10].parse::<u32>(), Ok(1..=31))
}

fn today() -> String {
    now_rfc3339()[..10].to_owned()
}

fn text_problem(field: &str, value: &Option<String>, problems: &mut Vec<String>) {
    match value.as_deref().map(str::trim) {
        None | Some("") => problems.push(format!("{field} is missing")),
        Some(v) if v.len() > MAX_TEXT => {
            problems.push(format!("{field} is longer than {MAX_TEXT} bytes"))
        }
        Some(_) => {}
    }
}

pub async fn apply(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    ApiJson(req): ApiJson<ApplicationRequest>,
) -> Result<(StatusCode, Json<ApplicationView>), ApiError> {
    let mut problems = Vec::new();
    // The title is printed in listings and the console: one name rule.
    match req.title.as_deref() {
        None => problems.push("title is missing".into()),
        Some(t) => {
            if let Err(e) = sluice_types::text::check_name(t, sluice_types::text::MAX_TITLE_BYTES) {
                problems.push(format!("title {e}"));
            }
        }
    }
    text_problem("reason", &req.reason, &mut problems);
    text_problem("result_form", &req.result_form, &mut problems);
    text_problem("scenario", &req.scenario, &mut problems);
    match req.kind.as_deref() {
        Some("dataset" | "api") => {}
        None => problems.push("type is missing (dataset or api)".into()),
        Some(other) => problems.push(format!("type must be dataset or api, not {other:?}")),
    }
    for (field, value) in [
        ("period_start", &req.period_start),
        ("period_end", &req.period_end),
    ] {
        match value {
            None => problems.push(format!("{field} is missing (YYYY-MM-DD)")),
            Some(v) if !is_date(v) => {
                problems.push(format!("{field} {v:?} is not a date YYYY-MM-DD"))
            }
            Some(_) => {}
        }
    }
    if let (Some(s), Some(e)) = (&req.period_start, &req.period_end)
        && is_date(s)
        && is_date(e)
        && e < s
    {
        problems.push("period_end is before period_start".into());
    }
    if !req.pledge {
        problems.push("pledge must be true: the applicant promises the application is true, lawful and safe, and the data used only as stated".into());
    }
    let mut provider: Option<String> = None;
    if req.datasets.is_empty() {
        problems.push("datasets is empty".into());
    }
    for name in &req.datasets {
        let record = state.store.dataset(name).await?;
        match record.filter(|d| d.entry.open_category != OpenCategory::NotOpen) {
            None => problems.push(format!("dataset {name} does not exist")),
            Some(d) if d.entry.open_category != OpenCategory::Conditional => problems.push(
                format!("dataset {name} is unconditional: it needs no application"),
            ),
            Some(d) => match &provider {
                Some(p) if *p != d.owner_id => problems.push(format!(
                    "dataset {name} has another provider: apply to each provider separately"
                )),
                _ => provider = Some(d.owner_id.clone()),
            },
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::bad_request(format!(
            "application incomplete, not forwarded: {}",
            problems.join("; ")
        )));
    }
    let body = serde_json::to_string(&req).expect("application serialises");
    let app = state
        .store
        .create_application(&caller.id, &provider.expect("checked above"), &body)
        .await?;
    let app = visible(&state, &caller, &app.id).await?;
    Ok((StatusCode::CREATED, Json(view(app)?)))
}

fn view(named: NamedApplication) -> Result<ApplicationView, ApiError> {
    let a = named.application;
    let overdue = a.state == "submitted" && a.due_at < now_rfc3339();
    Ok(ApplicationView {
        applicant: named.applicant_name,
        provider: named.provider_name,
        application: serde_json::from_str(&a.body_json).map_err(|_| ApiError::internal())?,
        state: a.state,
        created_at: a.created_at,
        due_at: a.due_at,
        overdue,
        decision: a
            .decision_json
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok()),
        agreement: a.agreement_id,
        id: a.id,
    })
}

pub async fn list(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Query(q): Query<OverdueQuery>,
) -> Result<Json<Vec<ApplicationView>>, ApiError> {
    let now = now_rfc3339();
    let apps = state
        .store
        .named_applications(party_scope(&caller), q.overdue.then_some(now.as_str()))
        .await?;
    Ok(Json(apps.into_iter().map(view).collect::<Result<_, _>>()?))
}

/// An application the caller is a party to (or any, for the authority);
/// otherwise "not found".
async fn visible(
    state: &SharedState,
    caller: &UserRecord,
    id: &str,
) -> Result<NamedApplication, ApiError> {
    state
        .store
        .named_application(id)
        .await?
        .filter(|n| {
            let a = &n.application;
            party_to(caller, &[&a.applicant_id, &a.provider_id])
        })
        .ok_or_else(|| ApiError::not_found(&format!("application {id}")))
}

pub async fn show(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<ApplicationView>, ApiError> {
    let a = visible(&state, &caller, &id).await?;
    Ok(Json(view(a)?))
}

fn terms_problems(t: &AgreementTerms) -> Vec<String> {
    let mut problems = Vec::new();
    for (field, value) in [
        ("purpose", &t.purpose),
        ("scope", &t.scope),
        ("manner", &t.manner),
        ("prohibitions", &t.prohibitions),
        ("credit_commitment", &t.credit_commitment),
        ("liability", &t.liability),
        ("dispute_resolution", &t.dispute_resolution),
    ] {
        if value.trim().is_empty() {
            problems.push(format!("terms.{field} is missing"));
        } else if value.len() > MAX_TEXT {
            problems.push(format!("terms.{field} is longer than {MAX_TEXT} bytes"));
        }
    }
    if !(t.epsilon > 0.0 && t.epsilon <= 1000.0) {
        problems.push("terms.epsilon must be in (0, 1000]".into());
    }
    problems
}

pub async fn decide(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(d): ApiJson<ApplicationDecision>,
) -> Result<Json<ApplicationView>, ApiError> {
    let app = visible(&state, &caller, &id).await?.application;
    // The provider decides, or the authority; never the applicant.
    if app.applicant_id == caller.id || !party_to(&caller, &[&app.provider_id]) {
        return Err(ApiError::forbidden(
            "only the dataset's provider (or the authority) decides an application, never its applicant",
        ));
    }
    let request: ApplicationRequest =
        serde_json::from_str(&app.body_json).map_err(|_| ApiError::internal())?;
    let agreement = if d.approve {
        let Some(terms) = &d.terms else {
            return Err(ApiError::bad_request(
                "an approval sets the agreement's terms (purpose, scope, manner, prohibitions, credit_commitment, liability, dispute_resolution, epsilon)",
            ));
        };
        let problems = terms_problems(terms);
        if !problems.is_empty() {
            return Err(ApiError::bad_request(format!(
                "agreement terms incomplete: {}",
                problems.join("; ")
            )));
        }
        let mut dataset_ids = Vec::new();
        for name in &request.datasets {
            let record = state
                .store
                .dataset(name)
                .await?
                .ok_or_else(ApiError::internal)?;
            dataset_ids.push(record.entry.id);
        }
        let content = serde_json::json!({
            "application": app.id,
            "user": app.applicant_id,
            "provider": app.provider_id,
            "datasets": request.datasets,
            "dataset_ids": dataset_ids,
            "period_start": request.period_start,
            "period_end": request.period_end,
            "result_form": request.result_form,
            "terms": terms,
        });
        let terms_json = sluice_crypto::canonical_json_string(&content);
        let hash = sluice_crypto::sha256_hex(terms_json.as_bytes());
        let budget = Epsilon::grant_from_f64(terms.epsilon)
            .map_err(|e| ApiError::bad_request(format!("terms.epsilon: {e}")))?;
        let min = match terms.min_epsilon_per_job {
            None => sluice_store::DEFAULT_MIN_EPSILON,
            Some(m) => Epsilon::from_f64(m)
                .ok()
                .filter(|m| *m >= sluice_store::DEFAULT_MIN_EPSILON && *m <= budget)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "terms.min_epsilon_per_job must be between the platform's least, {}, and the agreement's budget, {budget}",
                        sluice_store::DEFAULT_MIN_EPSILON
                    ))
                })?,
        };
        Some((terms_json, hash, dataset_ids, (budget, min)))
    } else {
        let mut problems = Vec::new();
        if d.reasons.as_deref().is_none_or(|r| r.trim().is_empty()) {
            problems.push("reasons are missing");
        }
        if d.legal_basis.as_deref().is_none_or(|r| r.trim().is_empty()) {
            problems.push("legal_basis is missing");
        }
        if !problems.is_empty() {
            return Err(ApiError::bad_request(format!(
                "a refusal gives its reasons and legal basis: {}",
                problems.join("; ")
            )));
        }
        None
    };
    let decision_json = serde_json::to_string(&d).expect("decision serialises");
    let (start, end) = (
        request.period_start.clone().unwrap_or_default(),
        request.period_end.clone().unwrap_or_default(),
    );
    state
        .store
        .decide_application(
            &caller.id,
            &id,
            &decision_json,
            agreement
                .as_ref()
                .map(|(terms_json, hash, ids, (budget, min))| NewAgreement {
                    terms_json,
                    content_hash: hash,
                    period_start: &start,
                    period_end: &end,
                    dataset_ids: ids,
                    epsilon: *budget,
                    min_epsilon: *min,
                }),
        )
        .await?;
    let a = visible(&state, &caller, &id).await?;
    Ok(Json(view(a)?))
}

fn agreement_view(named: NamedAgreement) -> Result<AgreementView, ApiError> {
    let a = named.agreement;
    Ok(AgreementView {
        active: in_period(&a),
        min_epsilon_per_job: a.min_epsilon.to_string(),
        epsilon: a.epsilon.to_string(),
        epsilon_spent: a.epsilon_spent.to_string(),
        epsilon_remaining: Epsilon::from_units(
            a.epsilon.units().saturating_sub(a.epsilon_spent.units()),
        )
        .to_string(),
        content: serde_json::from_str(&a.terms_json).map_err(|_| ApiError::internal())?,
        user: named.user_name,
        provider: named.provider_name,
        datasets: named.dataset_names,
        period_start: a.period_start,
        period_end: a.period_end,
        content_hash: a.content_hash,
        id: a.id,
    })
}

pub async fn agreements(
    State(state): State<SharedState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<AgreementView>>, ApiError> {
    let all = state.store.named_agreements(party_scope(&caller)).await?;
    Ok(Json(
        all.into_iter()
            .map(agreement_view)
            .collect::<Result<_, _>>()?,
    ))
}

pub async fn agreement(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<AgreementView>, ApiError> {
    let a = state
        .store
        .named_agreement(&id)
        .await?
        .filter(|n| {
            let a = &n.agreement;
            party_to(&caller, &[&a.user_id, &a.provider_id])
        })
        .ok_or_else(|| ApiError::not_found(&format!("agreement {id}")))?;
    Ok(Json(agreement_view(a)?))
}

/// Whether today falls within an agreement's period.
pub fn in_period(a: &Agreement) -> bool {
    let day = today();
    a.period_start <= day && day <= a.period_end
}

/// Every reason a job's manifest does not fit the agreements it names:
/// each named agreement must be the caller's, in its period, for the
/// manifest's purpose and cover at least one of the job's datasets; each
/// conditional dataset the caller does not own (`conditional`: ids and
/// names) must be covered by one of them.
pub async fn agreement_problems(
    state: &crate::AppState,
    caller: &UserRecord,
    manifest: &Manifest,
    job_dataset_ids: &[String],
    conditional: &[(String, String)],
) -> Result<Vec<String>, ApiError> {
    let mut problems = Vec::new();
    let mut covering = Vec::new();
    for id in &manifest.agreement {
        let Some(a) = state
            .store
            .agreement(id)
            .await?
            .filter(|a| a.user_id == caller.id)
        else {
            problems.push(format!("agreement {id} does not exist or is not yours"));
            continue;
        };
        if !in_period(&a) {
            problems.push(format!(
                "agreement {id} covers {} to {}, not today",
                a.period_start, a.period_end
            ));
        }
        let content: serde_json::Value =
            serde_json::from_str(&a.terms_json).map_err(|_| ApiError::internal())?;
        let purpose = content["terms"]["purpose"].as_str().unwrap_or_default();
        if manifest.purpose.trim() != purpose.trim() {
            problems.push(format!(
                "the manifest's purpose differs from agreement {id}'s purpose {purpose:?}"
            ));
        }
        if !a.dataset_ids.iter().any(|d| job_dataset_ids.contains(d)) {
            problems.push(format!("agreement {id} covers none of the job's datasets"));
        }
        covering.push(a);
    }
    for (dataset_id, name) in conditional {
        if !covering.iter().any(|a| a.dataset_ids.contains(dataset_id)) {
            problems.push(if manifest.agreement.is_empty() {
                format!(
                    "dataset {name} is conditional: the manifest must name the data-use agreement that covers it (agreement = \"agr_...\")"
                )
            } else {
                format!("no agreement the manifest names covers dataset {name}")
            });
        }
    }
    Ok(problems)
}
