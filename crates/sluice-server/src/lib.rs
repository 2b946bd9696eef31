//! The Sluice HTTP API: authentication, roles, catalog, uploads, jobs and
//! signed releases, on top of `sluice-store`.
//!
//! Architecture invariant: this crate never links an engine (DataFusion,
//! wasmtime, OpenDP) and never reads a row. Every task that reads rows —
//! ingesting an upload, previewing public data, running a job — is handed to
//! a sandbox process (`sluice sandbox`), whose reply is a quality report,
//! public preview rows or noised outputs. The server signs what the sandbox
//! released and records spends and audit entries.

mod access;
pub mod api;
mod applications;
mod audit;
mod console;
mod control;
mod datasets;
mod error;
mod feedback;
mod jobs;
mod openapi;
mod reviews;
mod route_spec;
mod sandbox;
pub mod schedule;
mod synthetic;
mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_crypto::PlatformKeys;
use sluice_store::Store;

pub use access::Access;
pub use api::{route_specs, router};
pub use error::ApiError;
pub use route_spec::{Body, RouteSpec};
pub use schedule::{Calibration, TimingConfig};

/// Largest upload accepted (bytes): the platform's one limit.
pub const MAX_UPLOAD_BYTES: usize = sluice_types::catalog::MAX_UPLOAD_BYTES;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Where the signing and pseudonym keys live; kept apart from the data.
    pub key_dir: PathBuf,
    pub bind: SocketAddr,
    /// The `sluice` executable whose hidden `sandbox` command runs tasks.
    pub sandbox_exe: PathBuf,
    /// Wall-clock deadline of one sandbox task.
    pub sandbox_timeout: Duration,
    /// Requests each token may make: a bucket of `burst` refilled at
    /// `per_second`.
    pub rate_limit: RateLimit,
    /// When jobs' outcomes become visible (docs/threat-model.md, "Timing").
    pub timing: TimingConfig,
    /// Browsers reach the server over HTTPS (through a proxy that
    /// terminates TLS): console cookies are marked `Secure`.
    pub secure_cookies: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    /// Generous for people and scripts polling jobs; stops floods.
    fn default() -> Self {
        RateLimit {
            per_second: 100.0,
            burst: 1000.0,
        }
    }
}

impl Config {
    /// The default key directory: a sibling of the data dir, `<data-dir>.keys`.
    pub fn default_key_dir(data_dir: &std::path::Path) -> PathBuf {
        let mut name = data_dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "sluice-data".into());
        name.push(".keys");
        data_dir.with_file_name(name)
    }
}

pub struct AppState {
    pub store: Store,
    pub keys: PlatformKeys,
    pub config: Config,
    /// Bounds how many sandbox processes run at once; further tasks queue.
    pub sandbox_slots: tokio::sync::Semaphore,
    /// Jobs past their start check, by id: sending a reason cancels the job
    /// (its sandbox is killed, nothing is released).
    pub cancels: std::sync::Mutex<
        std::collections::HashMap<String, tokio::sync::watch::Sender<Option<String>>>,
    >,
    /// Per-user token buckets: (tokens left, when last refilled).
    pub buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
    /// This machine's costs, for job schedules: measured on synthetic
    /// tasks at start-up, defaults until then.
    pub calibration: std::sync::RwLock<Calibration>,
    /// Ids of jobs whose view just changed, for event streams.
    pub job_changes: tokio::sync::broadcast::Sender<String>,
    /// Refused requests of the current minute, for the audit log.
    pub denials: std::sync::Mutex<sluice_store::DenialWindow>,
}

impl AppState {
    /// Tells event streams that `job_id`'s view may have changed.
    pub fn notify(&self, job_id: &str) {
        let _ = self.job_changes.send(job_id.to_owned());
    }

    /// Takes one request from `user_id`'s bucket; false when it is empty.
    pub fn allow(&self, user_id: &str) -> bool {
        let RateLimit { per_second, burst } = self.config.rate_limit;
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().expect("rate buckets");
        let (tokens, at) = buckets.entry(user_id.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl AppState {
    /// Counts a refused request and appends what is due to the audit log:
    /// the first of its kind this minute, and earlier minutes' summaries.
    pub async fn record_denial(&self, denial: sluice_store::Denial) {
        let minute = sluice_types::time::now_unix().div_euclid(60);
        let due = self
            .denials
            .lock()
            .expect("denial window")
            .record(denial, minute);
        self.write_denials(&due).await;
    }

    /// Appends the summaries of minutes that are over.
    pub async fn flush_denials(&self) {
        let minute = sluice_types::time::now_unix().div_euclid(60);
        let due = self.denials.lock().expect("denial window").roll(minute);
        self.write_denials(&due).await;
    }

    async fn write_denials(&self, due: &[sluice_store::DenialEntry]) {
        if let Err(e) = self.store.audit_denials(due).await {
            tracing::error!(error = %e, entries = due.len(), "denied requests could not be audited");
        }
    }
}

/// Sandboxes running at once: one per core, at least two.
fn sandbox_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

pub type SharedState = Arc<AppState>;

/// The whole HTTP surface: the API and the web console, which calls the
/// API in process (`console`).
pub fn app(state: SharedState) -> axum::Router {
    let api = router(state.clone());
    api.clone().merge(console::router(state, api))
}

/// A started server: its address, and the admin token when this start
/// created the first admin (shown once, never stored).
pub struct Started {
    pub addr: SocketAddr,
    pub admin_token: Option<String>,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the store: {0}")]
    Store(#[from] sluice_store::StoreError),
    #[error("loading keys: {0}")]
    Keys(#[from] sluice_crypto::KeyError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Opens the store and keys, creates the first admin if there is none,
/// and serves until the returned task is dropped or fails.
pub async fn start(config: Config) -> Result<Started, StartError> {
    api::openapi_document();
    std::fs::create_dir_all(config.data_dir.join("datasets")).map_err(|e| StartError::Bind {
        addr: config.bind,
        source: e,
    })?;
    let store = Store::open(&config.data_dir).await?;
    let keys = PlatformKeys::load_or_create(&config.key_dir)?;
    let recovered = store.recover_interrupted_jobs("system").await?;
    if recovered > 0 {
        tracing::warn!(
            jobs = recovered,
            "jobs interrupted by a restart were failed; their budget stays spent"
        );
    }
    let admin_token = if store.user_count().await? == 0 {
        let (_, token) = store
            .create_user("system", "admin", sluice_types::Role::Admin)
            .await?;
        Some(token)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let state = Arc::new(AppState {
        store,
        keys,
        config,
        sandbox_slots: tokio::sync::Semaphore::new(sandbox_slots()),
        cancels: Default::default(),
        buckets: Default::default(),
        calibration: Default::default(),
        job_changes: tokio::sync::broadcast::channel(1024).0,
        denials: Default::default(),
    });
    // Writes each minute's denial summaries once it is over, also when no
    // later denial comes; ends with the server's state.
    let weak = Arc::downgrade(&state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            state.flush_denials().await;
        }
    });
    tokio::spawn(schedule::calibrate(state.clone()));
    let app = app(state);
    tracing::info!(%addr, "sluice server listening");
    let handle = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Started {
        addr,
        admin_token,
        handle,
    })
}
