//! `sluice serve`: the API server in this process; sandboxes are this
//! executable's hidden `sandbox` command.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Data directory (SQLite metadata, Parquet store).
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: PathBuf,
    /// Key directory; default: a sibling of the data dir named <data-dir>.keys.
    #[arg(long, env = "SLUICE_KEY_DIR")]
    key_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:7878")]
    bind: std::net::SocketAddr,
    /// Wall-clock deadline of one sandbox task, in seconds.
    #[arg(long, default_value_t = 600)]
    sandbox_timeout: u64,
    /// Requests per second each token may make on average (bursts up
    /// to ten times that).
    #[arg(long, default_value_t = 100.0)]
    rate_limit: f64,
    /// Browsers reach this server over HTTPS through a proxy that
    /// terminates TLS: mark the console's session cookie Secure.
    #[arg(long, env = "SLUICE_BEHIND_HTTPS")]
    behind_https: bool,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let ServeArgs {
        data_dir,
        key_dir,
        bind,
        sandbox_timeout,
        rate_limit,
        behind_https,
    } = args;
    let key_dir = key_dir.unwrap_or_else(|| sluice_server::Config::default_key_dir(&data_dir));
    let config = sluice_server::Config {
        data_dir,
        key_dir,
        bind,
        sandbox_exe: std::env::current_exe().context("locating the sluice executable")?,
        sandbox_timeout: Duration::from_secs(sandbox_timeout),
        rate_limit: sluice_server::RateLimit {
            per_second: rate_limit,
            burst: rate_limit * 10.0,
        },
        timing: Default::default(),
        secure_cookies: behind_https,
    };
    let started = sluice_server::start(config).await?;
    if let Some(token) = &started.admin_token {
        println!("created the first admin; its token is shown once:\n{token}");
    }
    println!("listening on http://{}", started.addr);
    println!("web console: http://{}/console/", started.addr);
    started.handle.await?.context("server failed")?;
    Ok(())
}
