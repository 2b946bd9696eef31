//! The web console's routes (docs/console.md): sign-in and sessions, CSRF,
//! security headers, and pages rendered by `sluice-console`.
//!
//! A page never reads the store for what a user may see: it asks the API,
//! in process, as the session's user ([`ConsoleCaller`]), and renders the
//! answer. Role rules, object rules (another user's job is 404), rate
//! limits and the audit of refusals are therefore the API's own. The
//! console's own decisions are only who the session is and whether a
//! form carries the session's CSRF token.

// A page's refusal is the response it sends, once per request: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sluice_console as ui;
use sluice_store::Session;
use sluice_types::api as body;
use sluice_types::error::{ApiErrorBody, ErrorCode};
use tower::ServiceExt;

use crate::SharedState;
use crate::access::ConsoleCaller;

/// How long a console session lasts after signing in.
pub const SESSION_SECONDS: i64 = 8 * 3600;
const COOKIE: &str = "sluice_session";
/// The newest audit entries the audit page lists (it verifies them all).
const AUDIT_PAGE_ENTRIES: usize = 200;
/// Largest API answer a page reads (releases and audit logs included).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The console's pages with the API router they call.
pub(crate) fn router(state: SharedState, api: Router) -> Router {
    let console = Console { state, api };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home))
        .route("/console/sign-in", get(sign_in_form).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/assets/{name}", get(asset))
        .route("/console/datasets", get(catalog))
        .route("/console/datasets/{name}", get(dataset))
        .route("/console/datasets/{name}/{action}", post(dataset_control))
        .route("/console/datasets/{name}/versions", post(upload))
        .route("/console/jobs", get(jobs).post(submit))
        .route("/console/jobs/new", get(compose))
        .route("/console/jobs/estimate", post(estimate))
        .route("/console/jobs/{id}", get(job))
        .route("/console/jobs/{id}/events", get(job_events))
        .route("/console/jobs/{id}/release", get(release))
        .route("/console/jobs/{id}/release.json", get(release_json))
        .route("/console/jobs/{id}/release.csv", get(release_csv))
        .route("/console/reviews", get(reviews))
        .route("/console/reviews/{id}", get(review).post(decide))
        .route("/console/audit", get(audit))
        .route("/console/applications", get(applications).post(apply))
        .route("/console/applications/new", get(apply_form))
        .route("/console/applications/{id}", get(application))
        .route(
            "/console/applications/{id}/decision",
            post(decide_application),
        )
        .route("/console/agreements", get(agreements))
        .route("/console/stats", get(stats))
        .route("/console/users", get(users).post(create_user))
        .route("/console/feedback", get(feedback))
        .route("/console/feedback/{id}/{action}", post(feedback_action))
        .route("/console/users/{name}/close", post(close_user))
        .route("/console/revocations", get(revocations))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

/// Unwraps a page's result: the page, or the answer that replaced it.
macro_rules! page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}

#[derive(Clone)]
struct Console {
    state: SharedState,
    api: Router,
}

/// Headers on every console response: a strict Content-Security-Policy
/// (scripts and styles from this origin only, no inline script, no
/// framing), and no caching of pages (assets set their own).
async fn security_headers(request: Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

// ---------------------------------------------------------------- sessions

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The signed-in session of a request, or the answer that sends the
/// browser to sign in.
async fn signed_in(c: &Console, headers: &HeaderMap) -> Result<Session, Response> {
    let to_sign_in = || Redirect::to("/console/sign-in").into_response();
    let Some(cookie) = session_cookie(headers) else {
        return Err(to_sign_in());
    };
    match c.state.store.session(cookie).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(to_sign_in()),
        Err(e) => {
            tracing::error!(error = %e, "reading a console session");
            Err(error_page(
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                None,
            ))
        }
    }
}

fn layout(session: &Session) -> ui::Layout {
    ui::Layout::signed_in(ui::Nav::new(
        &session.user.name,
        session.user.role,
        &session.csrf_token,
    ))
}

/// Whether a form's CSRF token is the session's (compared in constant time).
fn csrf_matches(session: &Session, sent: &str) -> bool {
    let expected = session.csrf_token.as_bytes();
    let sent = sent.as_bytes();
    expected.len() == sent.len()
        && expected
            .iter()
            .zip(sent)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether a browser says the request comes from a page of this server:
/// its `Origin`, when it sends one, names the `Host` it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

/// A state-changing form's session, refused (403, audited) unless it
/// carries the session's CSRF token and, when the browser names one, comes
/// from this server's origin.
async fn form_session(
    c: &Console,
    headers: &HeaderMap,
    route: &str,
    csrf: &str,
) -> Result<Session, Response> {
    let session = signed_in(c, headers).await?;
    if csrf_matches(&session, csrf) && same_origin(headers) {
        return Ok(session);
    }
    c.state
        .record_denial(sluice_store::Denial {
            actor: session.user.id.clone(),
            route: route.to_owned(),
            code: ErrorCode::Forbidden.as_str().to_owned(),
            status: 403,
        })
        .await;
    Err(error_page(
        Some(layout(&session)),
        StatusCode::FORBIDDEN,
        "this form did not come from this session of the console (missing or wrong CSRF token)",
        Some("reload the page and submit it again"),
    ))
}

fn set_cookie(c: &Console, value: &str, max_age: i64) -> HeaderValue {
    let secure = if c.state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a cookie of token characters")
}

async fn sign_in_form() -> Response {
    render(
        StatusCode::OK,
        &ui::SignInPage {
            layout: ui::Layout::anonymous(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    // Another site's form must not sign a visitor in as someone else.
    if !same_origin(&headers) {
        return error_page(
            None,
            StatusCode::FORBIDDEN,
            "sign in from this server's own sign-in page",
            None,
        );
    }
    let token = form.token.trim();
    let user = match c.state.store.user_by_token(token).await {
        Ok(user) => user,
        Err(e) => {
            tracing::error!(error = %e, "console sign-in");
            return error_page(
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                None,
            );
        }
    };
    let Some(user) = user else {
        let actor = if token.is_empty() {
            "anonymous".to_owned()
        } else {
            sluice_crypto::token_hash(token)[..12].to_owned()
        };
        c.state
            .record_denial(sluice_store::Denial {
                actor,
                route: "POST /console/sign-in".to_owned(),
                code: ErrorCode::Unauthenticated.as_str().to_owned(),
                status: 401,
            })
            .await;
        return render(
            StatusCode::UNAUTHORIZED,
            &ui::SignInPage {
                layout: ui::Layout::anonymous(),
                error: Some("That token is not valid. Check it with your administrator.".into()),
            },
        );
    };
    match c.state.store.create_session(&user, SESSION_SECONDS).await {
        Ok((cookie, _)) => {
            let mut response = Redirect::to("/console/").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, set_cookie(&c, &cookie, SESSION_SECONDS));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "creating a console session");
            error_page(
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                None,
            )
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(refused) = form_session(&c, &headers, "POST /console/sign-out", &form.csrf).await {
        return refused;
    }
    if let Some(cookie) = session_cookie(&headers)
        && let Err(e) = c.state.store.end_session(cookie).await
    {
        tracing::error!(error = %e, "ending a console session");
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&c, "", 0));
    response
}

// ------------------------------------------------------ the API, in process

/// The API's answer to one in-process request.
struct Answer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    bytes: axum::body::Bytes,
}

impl Answer {
    /// The body as `T`, or the page that says why there is none.
    fn json<T: serde::de::DeserializeOwned>(&self, session: &Session) -> Result<T, Response> {
        if !self.status.is_success() {
            return Err(self.error(session));
        }
        serde_json::from_slice(&self.bytes).map_err(|e| {
            tracing::error!(error = %e, "the console could not read an API answer");
            error_page(
                Some(layout(session)),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                None,
            )
        })
    }

    /// The API's refusal as a page with its status, message and hint.
    fn error(&self, session: &Session) -> Response {
        match serde_json::from_slice::<ApiErrorBody>(&self.bytes) {
            Ok(e) => error_page(
                Some(layout(session)),
                self.status,
                &e.message,
                e.hint.as_deref(),
            ),
            Err(_) => error_page(Some(layout(session)), self.status, "request failed", None),
        }
    }
}

impl Console {
    /// Sends a request to the API as the session's user.
    async fn call(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        body: Option<(&'static str, Body)>,
    ) -> Response {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        let body = match body {
            Some((content_type, body)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                body
            }
            None => Body::empty(),
        };
        let mut request = request
            .body(body)
            .expect("a request built from a valid path");
        request
            .extensions_mut()
            .insert(ConsoleCaller(session.user.clone()));
        match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    async fn ask(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Answer, Response> {
        let body = body.map(|(content_type, bytes)| (content_type, Body::from(bytes)));
        let response = self.call(session, method, uri, body).await;
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading an API answer in the console");
                error_page(
                    Some(layout(session)),
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    None,
                )
            })?;
        Ok(Answer {
            status,
            content_type,
            bytes,
        })
    }

    /// Sends `request` as JSON to the API as the session's user; on success
    /// the browser goes on to `then`, otherwise the API's refusal is the
    /// page.
    async fn act(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        request: Vec<u8>,
        then: &str,
    ) -> Response {
        let answer = page!(
            self.ask(session, method, uri, Some(("application/json", request)))
                .await
        );
        if !answer.status.is_success() {
            return answer.error(session);
        }
        Redirect::to(then).into_response()
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        session: &Session,
        uri: &str,
    ) -> Result<T, Response> {
        self.ask(session, Method::GET, uri, None)
            .await?
            .json(session)
    }
}

/// Percent-encodes one path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ------------------------------------------------------------------ render

fn render<T: askama::Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn error_page(
    layout: Option<ui::Layout>,
    status: StatusCode,
    message: &str,
    hint: Option<&str>,
) -> Response {
    render(
        status,
        &ui::ErrorPage {
            layout: layout.unwrap_or_else(ui::Layout::anonymous),
            status: status.as_u16(),
            message: message.to_owned(),
            hint: hint.map(str::to_owned),
        },
    )
}

// ------------------------------------------------------------------- pages

async fn asset(Path(name): Path<String>) -> Response {
    match ui::assets::by_name(&name) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            a.bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    render(
        StatusCode::OK,
        &ui::HomePage {
            layout: layout(&session),
        },
    )
}

#[derive(Deserialize, Default)]
struct CatalogQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    format: String,
}

async fn catalog(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(query): Query<CatalogQuery>,
) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let params: Vec<String> = [
        ("q", &query.q),
        ("provider", &query.provider),
        ("open_category", &query.category),
        ("format", &query.format),
    ]
    .into_iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(k, v)| format!("{k}={}", encode(v.trim())))
    .collect();
    let uri = if params.is_empty() {
        "/v1/datasets".to_owned()
    } else {
        format!("/v1/datasets?{}", params.join("&"))
    };
    let entries: Vec<sluice_types::CatalogEntry> = page!(c.get(&session, &uri).await);
    let filters = ui::CatalogFilters {
        q: query.q,
        provider: query.provider,
        category: query.category,
        format: query.format,
    };
    render(
        StatusCode::OK,
        &ui::CatalogPage::new(layout(&session), filters, &entries),
    )
}

async fn dataset(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let base = format!("/v1/datasets/{}", encode(&name));
    let entry: sluice_types::CatalogEntry = page!(c.get(&session, &base).await);
    // The budget and the preview are parts of the page that some callers
    // may not have (no grant, not open for preview): the page shows what
    // the API gives this caller.
    let budget = c
        .get::<body::BudgetView>(&session, &format!("{base}/budget"))
        .await
        .ok();
    let preview = c
        .get::<body::PreviewView>(&session, &format!("{base}/preview"))
        .await
        .ok();
    // The quality report answers only the dataset's provider and the
    // authority.
    let quality = match entry.latest_version() {
        Some(v) => c
            .get::<sluice_types::QualityReport>(
                &session,
                &format!("{base}/versions/{}/quality", encode(&v.version)),
            )
            .await
            .ok(),
        None => None,
    };
    // Controls for whoever the quality report answered; before a first
    // version, for providers and the authority (the API refuses others
    // with its reason).
    let controls = quality.is_some()
        || (entry.versions.is_empty()
            && matches!(
                session.user.role,
                sluice_types::Role::Provider | sluice_types::Role::Admin
            ));
    render(
        StatusCode::OK,
        &ui::DatasetPage::new(layout(&session), &entry, budget, preview, controls, quality),
    )
}

/// A provider's action on a dataset, from the dataset page's forms: each
/// is the API's own route, which decides who may.
async fn dataset_control(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Response {
    let reason = field(&fields, "reason");
    let (method, body) = match action.as_str() {
        "suspend" | "resume" | "withdraw" => {
            (Method::POST, serde_json::to_vec(&body::Reason { reason }))
        }
        "revoke" => (
            Method::POST,
            serde_json::to_vec(&body::RevokeRequest {
                user: field(&fields, "user"),
                reason,
            }),
        ),
        "review-policy" => (
            Method::PUT,
            serde_json::to_vec(&body::ReviewPolicy {
                // Not a number: the API refuses 255 as out of range.
                reviewers: field(&fields, "reviewers").parse().unwrap_or(u8::MAX),
            }),
        ),
        "feedback" => (
            Method::POST,
            serde_json::to_vec(&body::FeedbackRequest {
                kind: field(&fields, "kind"),
                description: field(&fields, "description"),
            }),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let route = format!("POST /console/datasets/{{name}}/{action}");
    let session = page!(form_session(&c, &headers, &route, &field(&fields, "csrf")).await);
    let uri = format!("/v1/datasets/{}/{action}", encode(&name));
    let then = format!("/console/datasets/{}", encode(&name));
    let request = body.expect("a form serialises");
    c.act(&session, method, &uri, request, &then).await
}

async fn jobs(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let views: Vec<body::JobView> = page!(c.get(&session, "/v1/jobs").await);
    render(
        StatusCode::OK,
        &ui::JobsPage {
            layout: layout(&session),
            jobs: views.iter().rev().map(ui::JobStatus::from).collect(),
        },
    )
}

/// A manifest to start from: the shape of a DP SQL job (docs/manifest.md).
const MANIFEST_TEMPLATE: &str = r#"version = 1
title = "My analysis"
purpose = "What the results are for (recorded and shown to the provider)"
datasets = ["pums"]
# agreement = ["agr_..."]   # conditional data: your data-use agreement

[job]
kind = "sql"
query = "SELECT sex, COUNT(*) AS people FROM pums GROUP BY sex"

[privacy]
epsilon = 1.0
"#;

async fn compose(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    render(
        StatusCode::OK,
        &ui::ComposePage {
            layout: layout(&session),
            manifest: MANIFEST_TEMPLATE.to_owned(),
            estimate: None,
            error: None,
        },
    )
}

#[derive(Deserialize)]
struct ManifestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    manifest: String,
}

async fn estimate(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<ManifestForm>,
) -> Response {
    let session =
        page!(form_session(&c, &headers, "POST /console/jobs/estimate", &form.csrf).await);
    let answer = page!(
        c.ask(
            &session,
            Method::POST,
            "/v1/jobs/estimate",
            Some(("application/toml", form.manifest.clone().into_bytes())),
        )
        .await
    );
    let (estimate, error) = if answer.status.is_success() {
        match serde_json::from_slice::<body::EstimateView>(&answer.bytes) {
            Ok(view) => (Some(ui::EstimatePanel::from(&view)), None),
            Err(_) => (None, Some("internal error".to_owned())),
        }
    } else {
        (None, Some(api_message(&answer)))
    };
    if headers.contains_key("hx-request") {
        return render(StatusCode::OK, &ui::EstimateFragment { estimate, error });
    }
    render(
        StatusCode::OK,
        &ui::ComposePage {
            layout: layout(&session),
            manifest: form.manifest,
            estimate,
            error,
        },
    )
}

/// The API's refusal in one line: message, then hint.
fn api_message(answer: &Answer) -> String {
    match serde_json::from_slice::<ApiErrorBody>(&answer.bytes) {
        Ok(e) => match e.hint {
            Some(hint) => format!("{} ({hint})", e.message),
            None => e.message,
        },
        Err(_) => format!("request failed ({})", answer.status),
    }
}

async fn submit(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<ManifestForm>,
) -> Response {
    let session = page!(form_session(&c, &headers, "POST /console/jobs", &form.csrf).await);
    let answer = page!(
        c.ask(
            &session,
            Method::POST,
            "/v1/jobs",
            Some(("application/toml", form.manifest.clone().into_bytes())),
        )
        .await
    );
    if !answer.status.is_success() {
        return render(
            answer.status,
            &ui::ComposePage {
                layout: layout(&session),
                manifest: form.manifest,
                estimate: None,
                error: Some(api_message(&answer)),
            },
        );
    }
    let job: body::JobView = page!(answer.json(&session));
    Redirect::to(&format!("/console/jobs/{}", encode(&job.id))).into_response()
}

async fn job(State(c): State<Console>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let view: body::JobView = page!(c.get(&session, &format!("/v1/jobs/{}", encode(&id))).await);
    render(
        StatusCode::OK,
        &ui::JobPage {
            layout: layout(&session),
            status: ui::JobStatus::from(&view),
        },
    )
}

/// The job's status fragment on every change: the API's own event stream
/// for the job (the same visibility rules), each event rendered as HTML
/// for the page's `sse-swap`; a last `end` event closes it.
async fn job_events(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    let session = page!(signed_in(&c, &headers).await);
    let upstream = c
        .call(
            &session,
            Method::GET,
            &format!("/v1/jobs/{}/events", encode(&id)),
            None,
        )
        .await;
    if !upstream.status().is_success() {
        return upstream.status().into_response();
    }
    struct Reader {
        chunks: axum::body::BodyDataStream,
        buffer: Vec<u8>,
        ended: bool,
    }
    let reader = Reader {
        chunks: upstream.into_body().into_data_stream(),
        buffer: Vec::new(),
        ended: false,
    };
    let events = futures_util::stream::unfold(reader, |mut r| async move {
        loop {
            if r.ended {
                return None;
            }
            if let Some(end) = r.buffer.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = r.buffer.drain(..end + 2).collect();
                let data: String = String::from_utf8_lossy(&frame)
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                let Ok(view) = serde_json::from_str::<body::JobView>(&data) else {
                    continue;
                };
                let status = ui::JobStatus::from(&view);
                let done = status.done;
                let html =
                    askama::Template::render(&ui::JobStatusFragment { status }).unwrap_or_default();
                // SSE data cannot hold blank lines' meaning: one line.
                let event = Event::default()
                    .event("status")
                    .data(html.replace('\n', " "));
                if done {
                    r.ended = true;
                    let events = futures_util::stream::iter([
                        Ok::<_, std::convert::Infallible>(event),
                        Ok(Event::default().event("end").data("")),
                    ]);
                    return Some((events.boxed(), r));
                }
                return Some((futures_util::stream::iter([Ok(event)]).boxed(), r));
            }
            match r.chunks.next().await {
                Some(Ok(bytes)) => r.buffer.extend_from_slice(&bytes),
                _ => return None,
            }
        }
    })
    .flatten();
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn release(State(c): State<Console>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let release: sluice_types::release::Release = page!(
        c.get(&session, &format!("/v1/jobs/{}/release", encode(&id)))
            .await
    );
    let keys = &c.state.keys;
    let verification = sluice_crypto::verify_release(&release.envelope, keys.public_key())
        .map(|_| keys.key_id())
        .map_err(|e| e.to_string());
    render(
        StatusCode::OK,
        &ui::ReleasePage::new(layout(&session), &release, verification),
    )
}

/// A download of what the API serves at `/v1/jobs/{id}/{file}`, named for
/// the job.
async fn download(c: &Console, headers: &HeaderMap, id: &str, file: &str) -> Response {
    let session = page!(signed_in(c, headers).await);
    let answer = page!(
        c.ask(
            &session,
            Method::GET,
            &format!("/v1/jobs/{}/{file}", encode(id)),
            None,
        )
        .await
    );
    if !answer.status.is_success() {
        return answer.error(&session);
    }
    let ext = if file.ends_with(".csv") {
        "csv"
    } else {
        "json"
    };
    let mut response = answer.bytes.into_response();
    let h = response.headers_mut();
    if let Some(ct) = answer.content_type {
        h.insert(header::CONTENT_TYPE, ct);
    }
    let name: String = id
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_' || *ch == '-')
        .collect();
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"release-{name}.{ext}\""))
            .expect("an ASCII file name"),
    );
    response
}

async fn release_json(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    download(&c, &headers, &id, "release").await
}

async fn release_csv(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    download(&c, &headers, &id, "release.csv").await
}

async fn reviews(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let views: Vec<body::ReviewView> = page!(c.get(&session, "/v1/reviews").await);
    render(
        StatusCode::OK,
        &ui::ReviewsPage {
            layout: layout(&session),
            rows: views.iter().map(ui::ReviewRow::from).collect(),
        },
    )
}

async fn review(State(c): State<Console>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let view: body::ReviewView = page!(
        c.get(&session, &format!("/v1/reviews/{}", encode(&id)))
            .await
    );
    render(
        StatusCode::OK,
        &ui::ReviewPage::new(layout(&session), &view),
    )
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    manifest_digest: String,
}

async fn decide(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let session = page!(form_session(&c, &headers, "POST /console/reviews/{id}", &form.csrf).await);
    let request = serde_json::to_vec(&body::ReviewRequest {
        decision: form.decision,
        reason: form.reason,
        manifest_digest: form.manifest_digest,
    })
    .expect("a decision serialises");
    let uri = format!("/v1/reviews/{}", encode(&id));
    c.act(&session, Method::POST, &uri, request, "/console/reviews")
        .await
}

async fn audit(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    // The checkpoint first: the entries read after it cover at least it.
    let checkpoint: sluice_types::audit::SignedCheckpoint =
        page!(c.get(&session, "/v1/audit/checkpoint").await);
    let entries: Vec<sluice_store::AuditEntry> = page!(c.get(&session, "/v1/audit").await);
    let (verified, verification) = verify_audit(&c, &entries, &checkpoint);
    let shown = entries.len().min(AUDIT_PAGE_ENTRIES);
    render(
        StatusCode::OK,
        &ui::AuditPage {
            layout: layout(&session),
            verified,
            verification,
            shown,
            total: entries.len(),
            entries: entries
                .iter()
                .rev()
                .take(AUDIT_PAGE_ENTRIES)
                .map(|e| ui::AuditRow {
                    seq: e.seq,
                    at: e.at.clone(),
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    object: e.object.clone(),
                    details: e.details.clone(),
                })
                .collect(),
        },
    )
}

/// Verifies the chain of `entries` and that it extends the signed
/// checkpoint (its signature, and its head at its length).
fn verify_audit(
    c: &Console,
    entries: &[sluice_store::AuditEntry],
    checkpoint: &sluice_types::audit::SignedCheckpoint,
) -> (bool, String) {
    let keys = &c.state.keys;
    if let Err(e) = sluice_crypto::verify_checkpoint(checkpoint, keys.public_key()) {
        return (false, format!("the checkpoint's signature: {e}"));
    }
    let length = match sluice_store::verify_audit_chain(entries) {
        Ok(n) => n,
        Err(e) => return (false, e.to_string()),
    };
    let at = checkpoint.checkpoint.length;
    let head = if at == 0 {
        sluice_store::GENESIS.to_owned()
    } else {
        match entries.get(at as usize - 1) {
            Some(e) => e.hash.clone(),
            None => {
                return (
                    false,
                    format!("the checkpoint covers {at} entries but the log has {length}"),
                );
            }
        }
    };
    if head != checkpoint.checkpoint.head {
        return (
            false,
            format!("entry {at} does not match the signed checkpoint's head"),
        );
    }
    (
        true,
        format!(
            "{length} entries chain correctly and extend the checkpoint signed at {} over the first {at} (key {})",
            checkpoint.checkpoint.created_at, checkpoint.key_id
        ),
    )
}

// ------------------------------------------------------------ applications

async fn applications(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let views: Vec<body::ApplicationView> = page!(c.get(&session, "/v1/applications").await);
    let now = sluice_types::time::now_unix();
    render(
        StatusCode::OK,
        &ui::ApplicationsPage {
            layout: layout(&session),
            rows: views
                .iter()
                .rev()
                .map(|a| ui::ApplicationRow::new(a, now))
                .collect(),
            can_apply: session.user.role == sluice_types::Role::User,
        },
    )
}

/// The conditional datasets an application may name.
async fn conditional(
    c: &Console,
    session: &Session,
) -> Result<Vec<sluice_types::CatalogEntry>, Response> {
    c.get(session, "/v1/datasets?open_category=conditional")
        .await
}

async fn apply_form(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let choices = page!(conditional(&c, &session).await);
    let values = ui::ApplyValues {
        kind: "dataset".to_owned(),
        ..Default::default()
    };
    render(
        StatusCode::OK,
        &ui::ApplyPage::new(layout(&session), values, &choices, None),
    )
}

/// A form's fields in order; repeated names (checkboxes) repeat.
type Fields = Vec<(String, String)>;

fn field(fields: &Fields, name: &str) -> String {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn optional(text: String) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

async fn apply(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let session = page!(
        form_session(
            &c,
            &headers,
            "POST /console/applications",
            &field(&fields, "csrf")
        )
        .await
    );
    let values = ui::ApplyValues {
        title: field(&fields, "title"),
        reason: field(&fields, "reason"),
        kind: field(&fields, "kind"),
        datasets: fields
            .iter()
            .filter(|(k, _)| k == "datasets")
            .map(|(_, v)| v.clone())
            .collect(),
        period_start: field(&fields, "period_start"),
        period_end: field(&fields, "period_end"),
        result_form: field(&fields, "result_form"),
        scenario: field(&fields, "scenario"),
        pledge: field(&fields, "pledge") == "true",
    };
    let request = body::ApplicationRequest {
        title: optional(values.title.clone()),
        reason: optional(values.reason.clone()),
        kind: optional(values.kind.clone()),
        datasets: values.datasets.clone(),
        period_start: optional(values.period_start.clone()),
        period_end: optional(values.period_end.clone()),
        result_form: optional(values.result_form.clone()),
        scenario: optional(values.scenario.clone()),
        pledge: values.pledge,
    };
    let answer = page!(
        c.ask(
            &session,
            Method::POST,
            "/v1/applications",
            Some((
                "application/json",
                serde_json::to_vec(&request).expect("serialises")
            )),
        )
        .await
    );
    if answer.status.is_success() {
        let view: body::ApplicationView = page!(answer.json(&session));
        return Redirect::to(&format!("/console/applications/{}", encode(&view.id)))
            .into_response();
    }
    let choices = page!(conditional(&c, &session).await);
    render(
        answer.status,
        &ui::ApplyPage::new(
            layout(&session),
            values,
            &choices,
            Some(&api_message(&answer)),
        ),
    )
}

async fn application(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let view: body::ApplicationView = page!(
        c.get(&session, &format!("/v1/applications/{}", encode(&id)))
            .await
    );
    let decides = session.user.role == sluice_types::Role::Provider;
    render(
        StatusCode::OK,
        &ui::ApplicationPage::new(
            layout(&session),
            &view,
            sluice_types::time::now_unix(),
            decides,
            None,
        ),
    )
}

async fn decide_application(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let session = page!(
        form_session(
            &c,
            &headers,
            "POST /console/applications/{id}/decision",
            &field(&fields, "csrf")
        )
        .await
    );
    let approve = field(&fields, "approve") == "true";
    let uri = format!("/v1/applications/{}", encode(&id));
    let number = |name: &str| -> Result<Option<f64>, String> {
        match optional(field(&fields, name)) {
            None => Ok(None),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| format!("{name} must be a number, not {text:?}")),
        }
    };
    let decision = if approve {
        match (number("epsilon"), number("min_epsilon_per_job")) {
            (Ok(epsilon), Ok(min_epsilon_per_job)) => Ok(body::ApplicationDecision {
                approve,
                terms: Some(body::AgreementTerms {
                    purpose: field(&fields, "purpose"),
                    scope: field(&fields, "scope"),
                    manner: field(&fields, "manner"),
                    prohibitions: field(&fields, "prohibitions"),
                    credit_commitment: field(&fields, "credit_commitment"),
                    liability: field(&fields, "liability"),
                    dispute_resolution: field(&fields, "dispute_resolution"),
                    // A missing budget is the API's to refuse, as not positive.
                    epsilon: epsilon.unwrap_or(0.0),
                    min_epsilon_per_job,
                }),
                reasons: None,
                legal_basis: None,
            }),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    } else {
        Ok(body::ApplicationDecision {
            approve,
            terms: None,
            reasons: optional(field(&fields, "reasons")),
            legal_basis: optional(field(&fields, "legal_basis")),
        })
    };
    let (status, message) = match decision {
        Err(e) => (StatusCode::BAD_REQUEST, e),
        Ok(decision) => {
            let request = serde_json::to_vec(&decision).expect("serialises");
            let answer = page!(
                c.ask(
                    &session,
                    Method::POST,
                    &format!("{uri}/decision"),
                    Some(("application/json", request)),
                )
                .await
            );
            if answer.status.is_success() {
                return Redirect::to(&format!("/console/applications/{}", encode(&id)))
                    .into_response();
            }
            (answer.status, api_message(&answer))
        }
    };
    let view: body::ApplicationView = page!(c.get(&session, &uri).await);
    render(
        status,
        &ui::ApplicationPage::new(
            layout(&session),
            &view,
            sluice_types::time::now_unix(),
            true,
            Some(&message),
        ),
    )
}

async fn agreements(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let views: Vec<body::AgreementView> = page!(c.get(&session, "/v1/agreements").await);
    render(
        StatusCode::OK,
        &ui::AgreementsPage {
            layout: layout(&session),
            rows: views.iter().map(ui::AgreementRow::from).collect(),
        },
    )
}

// ---------------------------------------------------------- the authority

async fn stats(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let stats: body::UsageStats = page!(c.get(&session, "/v1/stats").await);
    render(
        StatusCode::OK,
        &ui::StatsPage::new(layout(&session), &stats),
    )
}

async fn revocations(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let views: Vec<body::RevocationView> = page!(c.get(&session, "/v1/revocations").await);
    render(
        StatusCode::OK,
        &ui::RevocationsPage {
            layout: layout(&session),
            rows: views.iter().map(ui::RevocationRow::from).collect(),
        },
    )
}

// ------------------------------------------------------------- providers

/// A new version's file, sent by the dataset page's script as the request
/// body with the CSRF token in `X-CSRF-Token`, streamed on to the API's
/// upload route (its size limit and checks apply). Answers in plain text
/// for the script; `Location` names the dataset page on success.
async fn upload(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
    upload: Body,
) -> Response {
    let csrf = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let route = "POST /console/datasets/{name}/versions";
    let session = match form_session(&c, &headers, route, csrf).await {
        Ok(session) => session,
        Err(_) => {
            return (
                StatusCode::FORBIDDEN,
                "refused: not signed in, or the page is stale (missing or wrong CSRF token); reload it",
            )
                .into_response();
        }
    };
    let response = c
        .call(
            &session,
            Method::POST,
            &format!("/v1/datasets/{}/versions", encode(&name)),
            Some(("application/octet-stream", upload)),
        )
        .await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    let answer = Answer {
        status,
        content_type: None,
        bytes,
    };
    if !status.is_success() {
        return (status, api_message(&answer)).into_response();
    }
    let added: body::VersionAdded = match serde_json::from_slice(&answer.bytes) {
        Ok(added) => added,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    };
    let page = format!("/console/datasets/{}", encode(&name));
    (
        StatusCode::CREATED,
        [(header::LOCATION, page)],
        format!("published version {}", added.version),
    )
        .into_response()
}

async fn feedback(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let views: Vec<body::FeedbackView> = page!(c.get(&session, "/v1/feedback").await);
    let now = sluice_types::time::now_unix();
    render(
        StatusCode::OK,
        &ui::FeedbackPage {
            layout: layout(&session),
            rows: views.iter().map(|f| ui::FeedbackRow::new(f, now)).collect(),
            answers: session.user.role == sluice_types::Role::Provider,
            decides_extensions: session.user.role == sluice_types::Role::Admin,
        },
    )
}

/// A provider's answer or extension request, or the authority's decision
/// on an extension: each the API's own route, which decides who may.
async fn feedback_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Response {
    let (api_path, request) = match action.as_str() {
        "answer" => (
            "answer",
            serde_json::to_vec(&body::FeedbackAnswer {
                answer: field(&fields, "answer"),
            }),
        ),
        "extension" => (
            "extension",
            serde_json::to_vec(&body::ExtensionRequest {
                // Not a number: the API refuses 0 working days with its reason.
                working_days: field(&fields, "working_days").trim().parse().unwrap_or(0),
                reason: field(&fields, "reason"),
            }),
        ),
        "extension-decision" => (
            "extension/decision",
            serde_json::to_vec(&body::ExtensionDecision {
                approve: field(&fields, "approve") == "true",
            }),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let route = format!("POST /console/feedback/{{id}}/{action}");
    let session = page!(form_session(&c, &headers, &route, &field(&fields, "csrf")).await);
    let uri = format!("/v1/feedback/{}/{api_path}", encode(&id));
    let request = request.expect("serialises");
    c.act(&session, Method::POST, &uri, request, "/console/feedback")
        .await
}

async fn users(State(c): State<Console>, headers: HeaderMap) -> Response {
    let session = page!(signed_in(&c, &headers).await);
    let users: Vec<body::UserView> = page!(c.get(&session, "/v1/users").await);
    render(
        StatusCode::OK,
        &ui::UsersPage::new(layout(&session), &users, None, None),
    )
}

/// Creates a user and shows its token once, on this answer only (never
/// stored, never in a URL).
async fn create_user(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let session =
        page!(form_session(&c, &headers, "POST /console/users", &field(&fields, "csrf")).await);
    let role = sluice_types::Role::parse(&field(&fields, "role"));
    let (status, created, error) = match role {
        None => (
            StatusCode::BAD_REQUEST,
            None,
            Some("choose a role".to_owned()),
        ),
        Some(role) => {
            let request = serde_json::to_vec(&body::CreateUser {
                name: field(&fields, "name"),
                role,
            })
            .expect("serialises");
            let answer = page!(
                c.ask(
                    &session,
                    Method::POST,
                    "/v1/users",
                    Some(("application/json", request)),
                )
                .await
            );
            if answer.status.is_success() {
                let created: body::CreatedUser = page!(answer.json(&session));
                (
                    StatusCode::CREATED,
                    Some((created.user.name, created.token)),
                    None,
                )
            } else {
                (answer.status, None, Some(api_message(&answer)))
            }
        }
    };
    let users: Vec<body::UserView> = page!(c.get(&session, "/v1/users").await);
    render(
        status,
        &ui::UsersPage::new(layout(&session), &users, created, error),
    )
}

/// The authority closes a user's access to every dataset (art. 34).
async fn close_user(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    let route = "POST /console/users/{name}/close";
    let session = page!(form_session(&c, &headers, route, &field(&fields, "csrf")).await);
    let request = serde_json::to_vec(&body::Reason {
        reason: field(&fields, "reason"),
    })
    .expect("serialises");
    let uri = format!("/v1/users/{}/close", encode(&name));
    c.act(
        &session,
        Method::POST,
        &uri,
        request,
        "/console/revocations",
    )
    .await
}
