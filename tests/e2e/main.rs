//! End-to-end tests through HTTP and the real `sluice` binary: the server
//! runs in the test process and starts `sluice sandbox` children exactly as
//! in production.

mod authz;
mod canaries;
mod catalog;
mod console;
mod control;
mod crash;
mod dependencies;
mod exports;
mod ingest;
mod isolation;
mod jobs;
mod ledger;
mod modules;
mod outcomes;
mod python;
mod review;
mod timing;
mod train;
mod wasm;
mod workflow;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_client::Client;
use sluice_testkit::platform;
use sluice_types::Role;
use sluice_types::api::DatasetDescriptor;

/// The deadline of the tests' sandboxes (and jobs).
pub const SANDBOX_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Platform {
    pub dir: tempfile::TempDir,
    /// The server's base URL, for the `sluice` binary as a client.
    pub url: String,
    pub admin: Client,
    pub provider: Client,
    pub alice: Client,
    pub bob: Client,
    /// alice's data-use agreements (with_pums: hers on pums); her test
    /// manifests name them all.
    pub agreements: Vec<String>,
    _server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Platform {
    pub async fn start() -> Platform {
        Self::start_with(Default::default()).await
    }

    pub async fn start_with(rate_limit: sluice_server::RateLimit) -> Platform {
        Self::start_configured(rate_limit, Default::default()).await
    }

    /// A platform whose jobs are scheduled by `timing`.
    pub async fn start_with_timing(timing: sluice_server::TimingConfig) -> Platform {
        Self::start_configured(Default::default(), timing).await
    }

    async fn start_configured(
        rate_limit: sluice_server::RateLimit,
        timing: sluice_server::TimingConfig,
    ) -> Platform {
        let server = platform::start(
            Path::new(env!("CARGO_BIN_EXE_sluice")),
            SANDBOX_TIMEOUT,
            rate_limit,
            timing,
        )
        .await;
        let admin = server.admin;
        let provider = platform::user(&admin, "provider", Role::Provider).await;
        let alice = platform::user(&admin, "alice", Role::User).await;
        let bob = platform::user(&admin, "bob", Role::User).await;
        Platform {
            dir: server.dir,
            url: server.url,
            admin,
            provider,
            alice,
            bob,
            agreements: Vec::new(),
            _server: server.handle,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// Submits a manifest and waits (at most three minutes: a job's outcome
/// is visible on its schedule, up to twice its duration) for it to finish.
pub async fn run_job(client: &Client, manifest_toml: &str) -> sluice_types::api::JobView {
    let job = client.submit_job(manifest_toml).await.unwrap();
    client
        .wait_job(&job.id, Duration::from_secs(180))
        .await
        .unwrap()
}

pub fn descriptor(toml_text: &str) -> DatasetDescriptor {
    toml::from_str(toml_text).unwrap()
}

pub use sluice_testkit::repo_file;

pub fn pums_descriptor(name: &str, category: &str) -> DatasetDescriptor {
    let text = std::fs::read_to_string(repo_file("examples/data/pums.toml")).unwrap();
    let mut d = descriptor(&text);
    d.dataset.name = name.into();
    d.dataset.open_category = sluice_types::OpenCategory::parse(category).unwrap();
    d
}

/// A platform with PUMS published as conditional data and alice holding a
/// data-use agreement on it (`p.agreement`).
pub async fn with_pums() -> Platform {
    let mut p = Platform::start().await;
    p.provider
        .create_dataset(&pums_descriptor("pums", "conditional"))
        .await
        .unwrap();
    p.provider.upload_version("pums", pums_csv()).await.unwrap();
    p.agreements = vec![agreement(&p.alice, &p.provider, &["pums"], 1000.0).await];
    p
}

/// The purpose every test agreement states.
pub const PURPOSE: &str = "test";

/// `user` applies for `datasets` (all of `provider`'s) and `provider`
/// approves with a budget of `epsilon`: the data-use agreement a job on
/// conditional data names. Returns its id.
pub async fn agreement(
    user: &Client,
    provider: &Client,
    datasets: &[&str],
    epsilon: f64,
) -> String {
    agreement_for_period(
        user,
        provider,
        datasets,
        epsilon,
        ("2020-01-01", "2999-12-31"),
    )
    .await
}

/// [`agreement`] for the period `(start, end)`.
pub async fn agreement_for_period(
    user: &Client,
    provider: &Client,
    datasets: &[&str],
    epsilon: f64,
    period: (&str, &str),
) -> String {
    platform::agreement(user, provider, datasets, epsilon, period, PURPOSE).await
}

pub fn pums_csv() -> Vec<u8> {
    std::fs::read(repo_file("examples/data/PUMS_pid.csv")).unwrap()
}

/// A SQL manifest naming no agreement: for unconditional data, data the
/// caller provides, or a job that is to be refused.
pub fn manifest(dataset: &str, query: &str, epsilon: f64) -> String {
    sql_manifest(&format!("purpose = \"{PURPOSE}\""), dataset, query, epsilon)
}

/// A SQL manifest with `header` (purpose, agreement) at its top level.
pub fn sql_manifest(header: &str, dataset: &str, query: &str, epsilon: f64) -> String {
    format!(
        "version = 1\ntitle = \"t\"\n{header}\ndatasets = [\"{dataset}\"]\n\n[job]\nkind = \"sql\"\nquery = \"{query}\"\n\n[privacy]\nepsilon = {epsilon:?}\n"
    )
}

/// The purpose and agreement lines of a manifest under `agreements`.
pub fn under<S: AsRef<str>>(agreements: &[S]) -> String {
    let list: Vec<String> = agreements
        .iter()
        .map(|a| format!("\"{}\"", a.as_ref()))
        .collect();
    format!("purpose = \"{PURPOSE}\"\nagreement = [{}]", list.join(", "))
}

impl Platform {
    /// alice's manifest header: the test purpose and her agreements.
    pub fn header(&self) -> String {
        assert!(!self.agreements.is_empty(), "alice holds no agreement");
        under(&self.agreements)
    }

    /// An example manifest (its own purpose) run under alice's agreement.
    pub fn adopt(&self, example: &str) -> String {
        let purpose = example
            .lines()
            .find(|l| l.starts_with("purpose = "))
            .expect("a manifest states its purpose");
        example.replacen(purpose, &self.header(), 1)
    }

    /// A SQL manifest under alice's pums agreement.
    pub fn manifest(&self, dataset: &str, query: &str, epsilon: f64) -> String {
        sql_manifest(&self.header(), dataset, query, epsilon)
    }
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A WASM job on pums whose every unit loops until its fuel runs out: it
/// runs for tens of seconds, long enough to be cancelled while running.
/// `header` goes into the manifest's top level (purpose, agreement).
pub fn slow_job(header: &str) -> String {
    let module = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "map") (loop $forever (br $forever))))"#,
    )
    .unwrap();
    format!(
        "version = 1\ntitle = \"slow\"\n{header}\ndatasets = [\"pums\"]\n\n[job]\nkind = \"wasm\"\nmode = \"map\"\nmodule = \"{}\"\ncolumns = [\"income\"]\noutputs = [{{ name = \"x\", lower = 0.0, upper = 1.0, default = 0.0 }}]\n\n[privacy]\nepsilon = 0.5\n",
        sluice_types::b64_encode(&module)
    )
}

/// Polls a job until it is in `state` (30 s at most).
pub async fn wait_for_state(client: &Client, id: &str, state: &str) {
    let start = std::time::Instant::now();
    loop {
        let job = client.job(id).await.unwrap();
        if job.state == state {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job stayed {} ({:?}), never {state}",
            job.state,
            job.message
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Platform {
    /// A new reviewer account's client.
    pub async fn reviewer(&self, name: &str) -> Client {
        self.admin.with_token(
            self.admin
                .create_user(name, Role::Reviewer)
                .await
                .unwrap()
                .token,
        )
    }
}
