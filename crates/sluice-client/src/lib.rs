//! Typed HTTP client for the Sluice API, used by the CLI and the end-to-end
//! tests. It knows the wire types and nothing about storage or engines.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use sluice_types::api::{
    BudgetView, CreateUser, CreatedUser, DatasetDescriptor, JobView, PreviewView, PublicKey,
    UserView, VersionAdded,
};
use sluice_types::error::ApiErrorBody;
use sluice_types::{CatalogEntry, QualityReport, Release, Role};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}{}", .body.message, .body.hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Api {
        status: StatusCode,
        body: ApiErrorBody,
    },
    #[error("server answered {status} without an error body")]
    Status { status: StatusCode },
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
}

impl ClientError {
    /// The API error code, when the server gave one.
    pub fn code(&self) -> Option<sluice_types::ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::Status { status } => Some(*status),
            ClientError::Transport(e) => e.status(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub text: Option<String>,
    pub provider: Option<String>,
    pub open_category: Option<String>,
    pub format: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: impl Into<String>, token: Option<String>) -> Self {
        Client {
            base: base.into().trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Sends any request and returns the HTTP status and the body as text,
    /// whatever the status: for scripts and for authorization tests.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, String), ClientError> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| ClientError::Status {
            status: reqwest::StatusCode::BAD_REQUEST,
        })?;
        let mut r = self.request(method, path);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    /// The same server without a token.
    pub fn anonymous(&self) -> Self {
        Client {
            base: self.base.clone(),
            token: None,
            http: self.http.clone(),
        }
    }

    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Client {
            base: self.base.clone(),
            token: Some(token.into()),
            http: self.http.clone(),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(&self, r: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = r.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await?;
        match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(body) => Err(ClientError::Api { status, body }),
            Err(_) => Err(ClientError::Status { status }),
        }
    }

    async fn json<T: DeserializeOwned>(&self, r: RequestBuilder) -> Result<T, ClientError> {
        Ok(self.send(r).await?.json().await?)
    }

    pub async fn health(&self) -> Result<(), ClientError> {
        self.send(self.request(Method::GET, "/v1/health"))
            .await
            .map(|_| ())
    }
    pub async fn public_key(&self) -> Result<PublicKey, ClientError> {
        self.json(self.request(Method::GET, "/v1/public-key")).await
    }
    pub async fn me(&self) -> Result<UserView, ClientError> {
        self.json(self.request(Method::GET, "/v1/me")).await
    }
    pub async fn create_user(&self, name: &str, role: Role) -> Result<CreatedUser, ClientError> {
        let body = CreateUser {
            name: name.to_owned(),
            role,
        };
        self.json(self.request(Method::POST, "/v1/users").json(&body))
            .await
    }
    pub async fn create_dataset(
        &self,
        desc: &DatasetDescriptor,
    ) -> Result<CatalogEntry, ClientError> {
        self.json(self.request(Method::POST, "/v1/datasets").json(desc))
            .await
    }
    pub async fn upload_version(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<VersionAdded, ClientError> {
        let r = self
            .request(Method::POST, &format!("/v1/datasets/{name}/versions"))
            .header("content-type", "application/octet-stream")
            .body(bytes);
        self.json(r).await
    }
    pub async fn search(&self, f: &SearchFilter) -> Result<Vec<CatalogEntry>, ClientError> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        for (k, v) in [
            ("q", &f.text),
            ("provider", &f.provider),
            ("open_category", &f.open_category),
            ("format", &f.format),
        ] {
            if let Some(v) = v {
                q.push((k, v));
            }
        }
        self.json(self.request(Method::GET, "/v1/datasets").query(&q))
            .await
    }
    pub async fn dataset(&self, name: &str) -> Result<CatalogEntry, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/datasets/{name}")))
            .await
    }
    pub async fn quality(&self, name: &str, version: &str) -> Result<QualityReport, ClientError> {
        self.json(self.request(
            Method::GET,
            &format!("/v1/datasets/{name}/versions/{version}/quality"),
        ))
        .await
    }
    pub async fn preview(&self, name: &str, limit: usize) -> Result<PreviewView, ClientError> {
        let limit = limit.to_string();
        self.json(
            self.request(Method::GET, &format!("/v1/datasets/{name}/preview"))
                .query(&[("limit", limit.as_str())]),
        )
        .await
    }
    pub async fn download(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .send(self.request(Method::GET, &format!("/v1/datasets/{name}/download")))
            .await?;
        Ok(resp.bytes().await?.to_vec())
    }
    /// An unconditional dataset's latest version as spreadsheet-safe CSV.
    pub async fn download_csv(&self, name: &str) -> Result<String, ClientError> {
        let resp = self
            .send(
                self.request(Method::GET, &format!("/v1/datasets/{name}/download"))
                    .query(&[("format", "csv")]),
            )
            .await?;
        Ok(resp.text().await?)
    }
    pub async fn budget(&self, name: &str) -> Result<BudgetView, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/datasets/{name}/budget")))
            .await
    }
    /// Submits a manifest (TOML text).
    pub async fn submit_job(&self, manifest_toml: &str) -> Result<JobView, ClientError> {
        let r = self
            .request(Method::POST, "/v1/jobs")
            .header("content-type", "application/toml")
            .body(manifest_toml.to_owned());
        self.json(r).await
    }
    /// Estimates a manifest without running it or spending budget.
    pub async fn estimate_job(
        &self,
        manifest_toml: &str,
    ) -> Result<sluice_types::api::EstimateView, ClientError> {
        let r = self
            .request(Method::POST, "/v1/jobs/estimate")
            .header("content-type", "application/toml")
            .body(manifest_toml.to_owned());
        self.json(r).await
    }
    pub async fn job(&self, id: &str) -> Result<JobView, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/jobs/{id}")))
            .await
    }
    pub async fn jobs(&self) -> Result<Vec<JobView>, ClientError> {
        self.json(self.request(Method::GET, "/v1/jobs")).await
    }
    pub async fn release(&self, id: &str) -> Result<Release, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/jobs/{id}/release")))
            .await
    }
    /// A job's release as spreadsheet-safe CSV (unsigned).
    pub async fn release_csv(&self, id: &str) -> Result<String, ClientError> {
        let resp = self
            .send(self.request(Method::GET, &format!("/v1/jobs/{id}/release.csv")))
            .await?;
        Ok(resp.text().await?)
    }

    /// Sets how many distinct reviewers must approve jobs on a dataset
    /// (its provider or an admin).
    pub async fn set_review_policy(&self, name: &str, reviewers: u8) -> Result<(), ClientError> {
        let body = sluice_types::api::ReviewPolicy { reviewers };
        self.send(
            self.request(Method::PUT, &format!("/v1/datasets/{name}/review-policy"))
                .json(&body),
        )
        .await
        .map(|_| ())
    }
    /// Jobs awaiting this reviewer's decision.
    pub async fn reviews(&self) -> Result<Vec<sluice_types::api::ReviewView>, ClientError> {
        self.json(self.request(Method::GET, "/v1/reviews")).await
    }
    pub async fn review(&self, job_id: &str) -> Result<sluice_types::api::ReviewView, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/reviews/{job_id}")))
            .await
    }
    /// Approves or rejects a job, bound to the manifest digest reviewed.
    pub async fn decide_review(
        &self,
        job_id: &str,
        approve: bool,
        reason: &str,
        manifest_digest: &str,
    ) -> Result<sluice_types::api::ReviewResult, ClientError> {
        let body = sluice_types::api::ReviewRequest {
            decision: if approve { "approve" } else { "reject" }.into(),
            reason: reason.into(),
            manifest_digest: manifest_digest.into(),
        };
        self.json(
            self.request(Method::POST, &format!("/v1/reviews/{job_id}"))
                .json(&body),
        )
        .await
    }

    async fn control(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<sluice_types::api::ControlResult, ClientError> {
        self.json(self.request(Method::POST, path).json(body)).await
    }
    /// A control action whose only argument is its recorded reason.
    async fn with_reason(
        &self,
        path: &str,
        reason: &str,
    ) -> Result<sluice_types::api::ControlResult, ClientError> {
        let body = sluice_types::api::Reason {
            reason: reason.into(),
        };
        self.control(path, &body).await
    }
    /// Suspends a dataset (its provider or the authority): new jobs are
    /// refused and running ones cancelled.
    pub async fn suspend_dataset(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<sluice_types::api::ControlResult, ClientError> {
        self.with_reason(&format!("/v1/datasets/{name}/suspend"), reason)
            .await
    }
    pub async fn resume_dataset(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<sluice_types::api::ControlResult, ClientError> {
        self.with_reason(&format!("/v1/datasets/{name}/resume"), reason)
            .await
    }
    pub async fn withdraw_dataset(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<sluice_types::api::ControlResult, ClientError> {
        self.with_reason(&format!("/v1/datasets/{name}/withdraw"), reason)
            .await
    }
    /// Restricts one user's access to a dataset (its provider).
    pub async fn revoke_access(
        &self,
        name: &str,
        user: &str,
        reason: &str,
    ) -> Result<sluice_types::api::ControlResult, ClientError> {
        let body = sluice_types::api::RevokeRequest {
            user: user.into(),
            reason: reason.into(),
        };
        self.control(&format!("/v1/datasets/{name}/revoke"), &body)
            .await
    }
    /// Closes a user's access to every dataset (the authority).
    pub async fn close_user(
        &self,
        name: &str,
        reason: &str,
    ) -> Result<sluice_types::api::ControlResult, ClientError> {
        self.with_reason(&format!("/v1/users/{name}/close"), reason)
            .await
    }
    /// The public list of revocations.
    pub async fn revocations(&self) -> Result<Vec<sluice_types::api::RevocationView>, ClientError> {
        self.json(self.request(Method::GET, "/v1/revocations"))
            .await
    }

    /// Usage statistics by provider and open category.
    pub async fn stats(&self) -> Result<sluice_types::api::UsageStats, ClientError> {
        self.json(self.request(Method::GET, "/v1/stats")).await
    }

    /// Reports an error or omission on a dataset (or, for the authority,
    /// opens a rectification task).
    pub async fn report_feedback(
        &self,
        name: &str,
        kind: &str,
        description: &str,
    ) -> Result<sluice_types::api::FeedbackView, ClientError> {
        let body = sluice_types::api::FeedbackRequest {
            kind: kind.into(),
            description: description.into(),
        };
        self.json(
            self.request(Method::POST, &format!("/v1/datasets/{name}/feedback"))
                .json(&body),
        )
        .await
    }
    /// Feedback the caller may see; with `overdue`, only open items past
    /// their deadline.
    pub async fn feedback_list(
        &self,
        overdue: bool,
    ) -> Result<Vec<sluice_types::api::FeedbackView>, ClientError> {
        let q = if overdue { "true" } else { "false" };
        self.json(
            self.request(Method::GET, "/v1/feedback")
                .query(&[("overdue", q)]),
        )
        .await
    }
    pub async fn feedback(&self, id: &str) -> Result<sluice_types::api::FeedbackView, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/feedback/{id}")))
            .await
    }
    pub async fn answer_feedback(
        &self,
        id: &str,
        answer: &str,
    ) -> Result<sluice_types::api::FeedbackView, ClientError> {
        let body = sluice_types::api::FeedbackAnswer {
            answer: answer.into(),
        };
        self.json(
            self.request(Method::POST, &format!("/v1/feedback/{id}/answer"))
                .json(&body),
        )
        .await
    }
    pub async fn request_extension(
        &self,
        id: &str,
        working_days: u32,
        reason: &str,
    ) -> Result<sluice_types::api::FeedbackView, ClientError> {
        let body = sluice_types::api::ExtensionRequest {
            working_days,
            reason: reason.into(),
        };
        self.json(
            self.request(Method::POST, &format!("/v1/feedback/{id}/extension"))
                .json(&body),
        )
        .await
    }
    pub async fn decide_extension(
        &self,
        id: &str,
        approve: bool,
    ) -> Result<sluice_types::api::FeedbackView, ClientError> {
        let body = sluice_types::api::ExtensionDecision { approve };
        self.json(
            self.request(
                Method::POST,
                &format!("/v1/feedback/{id}/extension/decision"),
            )
            .json(&body),
        )
        .await
    }

    /// Applies for conditional data (art. 20).
    pub async fn apply(
        &self,
        application: &sluice_types::api::ApplicationRequest,
    ) -> Result<sluice_types::api::ApplicationView, ClientError> {
        self.json(
            self.request(Method::POST, "/v1/applications")
                .json(application),
        )
        .await
    }
    pub async fn applications(
        &self,
        overdue: bool,
    ) -> Result<Vec<sluice_types::api::ApplicationView>, ClientError> {
        let q = if overdue { "true" } else { "false" };
        self.json(
            self.request(Method::GET, "/v1/applications")
                .query(&[("overdue", q)]),
        )
        .await
    }
    pub async fn application(
        &self,
        id: &str,
    ) -> Result<sluice_types::api::ApplicationView, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/applications/{id}")))
            .await
    }
    /// The provider approves (with the agreement's terms) or refuses (with
    /// reasons and the legal basis).
    pub async fn decide_application(
        &self,
        id: &str,
        decision: &sluice_types::api::ApplicationDecision,
    ) -> Result<sluice_types::api::ApplicationView, ClientError> {
        self.json(
            self.request(Method::POST, &format!("/v1/applications/{id}/decision"))
                .json(decision),
        )
        .await
    }
    pub async fn agreements(&self) -> Result<Vec<sluice_types::api::AgreementView>, ClientError> {
        self.json(self.request(Method::GET, "/v1/agreements")).await
    }
    pub async fn agreement(
        &self,
        id: &str,
    ) -> Result<sluice_types::api::AgreementView, ClientError> {
        self.json(self.request(Method::GET, &format!("/v1/agreements/{id}")))
            .await
    }

    /// The whole audit log (admin).
    pub async fn audit_log(&self) -> Result<serde_json::Value, ClientError> {
        self.json(self.request(Method::GET, "/v1/audit")).await
    }
    /// A signed checkpoint of the audit log's current head.
    pub async fn audit_checkpoint(
        &self,
    ) -> Result<sluice_types::audit::SignedCheckpoint, ClientError> {
        self.json(self.request(Method::GET, "/v1/audit/checkpoint"))
            .await
    }

    /// Follows a job's server-sent events, calling `on_change` with each new
    /// view, until the job ends, the stream closes or `on_change` returns
    /// false; returns the last view.
    pub async fn watch_job(
        &self,
        id: &str,
        mut on_change: impl FnMut(&JobView) -> bool,
    ) -> Result<JobView, ClientError> {
        let mut resp = self
            .send(self.request(Method::GET, &format!("/v1/jobs/{id}/events")))
            .await?;
        let mut buffer = String::new();
        let mut last = None;
        while let Some(chunk) = resp.chunk().await? {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if let Ok(view) = serde_json::from_str::<JobView>(&data) {
                    let go_on = on_change(&view);
                    last = Some(view);
                    if !go_on {
                        return Ok(last.expect("just set"));
                    }
                }
            }
        }
        match last {
            Some(v) => Ok(v),
            None => self.job(id).await,
        }
    }

    /// Polls a job until it leaves queued/running, with a bounded number of polls.
    pub async fn wait_job(
        &self,
        id: &str,
        max_wait: std::time::Duration,
    ) -> Result<JobView, ClientError> {
        let start = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(20);
        loop {
            let job = self.job(id).await?;
            if !matches!(job.state.as_str(), "queued" | "running") || start.elapsed() > max_wait {
                return Ok(job);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(500));
        }
    }
}
