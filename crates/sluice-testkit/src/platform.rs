//! A server in the test process, as the black-box tests and the service
//! benchmark run it: a fresh data dir and key dir, the real `sluice` binary
//! as the sandbox, users and data-use agreements made through the API.

use std::path::Path;
use std::time::Duration;

use sluice_client::Client;
use sluice_server::{RateLimit, TimingConfig};
use sluice_types::Role;
use sluice_types::api::{AgreementTerms, ApplicationDecision, ApplicationRequest};

/// A running server and its first admin.
pub struct Server {
    /// Holds `data` and `keys`; removed when dropped.
    pub dir: tempfile::TempDir,
    /// The base URL, for the `sluice` binary as a client.
    pub url: String,
    pub admin: Client,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts a server on a free loopback port whose sandbox is `sandbox_exe`.
pub async fn start(
    sandbox_exe: &Path,
    sandbox_timeout: Duration,
    rate_limit: RateLimit,
    timing: TimingConfig,
) -> Server {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = sluice_server::Config {
        data_dir: dir.path().join("data"),
        key_dir: dir.path().join("keys"),
        bind: "127.0.0.1:0".parse().expect("loopback address"),
        sandbox_exe: sandbox_exe.to_path_buf(),
        sandbox_timeout,
        rate_limit,
        timing,
        secure_cookies: false,
    };
    let started = sluice_server::start(config)
        .await
        .expect("starting the server");
    let url = format!("http://{}", started.addr);
    let admin = Client::new(url.clone(), started.admin_token);
    Server {
        dir,
        url,
        admin,
        handle: started.handle,
    }
}

/// A new user's client, created by `admin`.
pub async fn user(admin: &Client, name: &str, role: Role) -> Client {
    let created = admin
        .create_user(name, role)
        .await
        .unwrap_or_else(|e| panic!("creating user {name}: {e}"));
    admin.with_token(created.token)
}

/// `user` applies for `datasets` (all of `provider`'s) for the period
/// `(start, end)`, and `provider` approves with a budget of `epsilon` and
/// `purpose`: the data-use agreement a job on conditional data names.
/// Returns its id.
pub async fn agreement(
    user: &Client,
    provider: &Client,
    datasets: &[&str],
    epsilon: f64,
    (start, end): (&str, &str),
    purpose: &str,
) -> String {
    let text = |s: &str| Some(s.to_owned());
    let filed = user
        .apply(&ApplicationRequest {
            title: text("tests"),
            reason: text("tests"),
            kind: text("dataset"),
            datasets: datasets.iter().map(|d| d.to_string()).collect(),
            period_start: text(start),
            period_end: text(end),
            result_form: text("DP aggregates"),
            scenario: text("tests"),
            pledge: true,
        })
        .await
        .expect("applying");
    let all = "as the tests need".to_owned();
    provider
        .decide_application(
            &filed.id,
            &ApplicationDecision {
                approve: true,
                terms: Some(AgreementTerms {
                    purpose: purpose.into(),
                    scope: all.clone(),
                    manner: all.clone(),
                    prohibitions: all.clone(),
                    credit_commitment: all.clone(),
                    liability: all.clone(),
                    dispute_resolution: all,
                    epsilon,
                    min_epsilon_per_job: None,
                }),
                reasons: None,
                legal_basis: None,
            },
        )
        .await
        .expect("approving")
        .agreement
        .expect("an approval creates an agreement")
}
