//! Small DP COUNT jobs through the whole service (HTTP, manifest checks,
//! the durable ledger, a fresh sandbox per job, signing): latency and
//! throughput with the timing schedule (docs/threat-model.md, "Timing") and
//! without it, in the same run, on the same data.
//!
//! Run: `cargo bench -p sluice-cli --bench service`. SLUICE_BENCH_JOBS
//! (default 60) jobs are timed one after another per configuration (polled
//! every 2 ms), the two configurations alternating; then SLUICE_BENCH_CLIENTS
//! (default 64: with the schedule a job is in flight for its due time, so it
//! takes more clients than without to keep every sandbox slot busy)
//! clients submit for SLUICE_BENCH_SECONDS (default 20) per configuration.
//! Each job is a distinct manifest (an identical one returns its stored
//! release at once). Baselines in the same run: an authenticated HTTP round
//! trip to the same server (`GET /v1/me`), and a bare sandbox process
//! (spawn, confinement, a task that reads nothing, exit).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice_client::Client;
use sluice_testkit::bench::{env_or, ms, percentile};
use sluice_testkit::{platform, repo_file};
use sluice_types::Role;

struct Service {
    _server: platform::Server,
    alice: Client,
    header: String,
}

async fn service(mitigate: bool) -> Service {
    let server = platform::start(
        Path::new(env!("CARGO_BIN_EXE_sluice")),
        Duration::from_secs(120),
        sluice_server::RateLimit {
            per_second: 1e6,
            burst: 1e6,
        },
        sluice_server::TimingConfig {
            mitigate,
            ..Default::default()
        },
    )
    .await;
    let provider = platform::user(&server.admin, "provider", Role::Provider).await;
    let alice = platform::user(&server.admin, "alice", Role::User).await;
    let text = std::fs::read_to_string(repo_file("examples/data/pums.toml")).unwrap();
    let mut d: sluice_types::api::DatasetDescriptor = toml::from_str(&text).unwrap();
    d.dataset.epsilon_cap = 1000.0;
    d.dataset.user_epsilon = 1000.0;
    provider.create_dataset(&d).await.unwrap();
    provider
        .upload_version(
            "pums",
            std::fs::read(repo_file("examples/data/PUMS_pid.csv")).unwrap(),
        )
        .await
        .unwrap();
    let agreement = platform::agreement(
        &alice,
        &provider,
        &["pums"],
        1000.0,
        ("2020-01-01", "2999-12-31"),
        "bench",
    )
    .await;
    // Let the start-up calibration finish before timing anything.
    tokio::time::sleep(Duration::from_secs(5)).await;
    Service {
        _server: server,
        alice,
        header: format!("purpose = \"bench\"\nagreement = [\"{agreement}\"]"),
    }
}

fn manifest(header: &str, n: usize) -> String {
    format!(
        "version = 1\ntitle = \"count {n}\"\n{header}\ndatasets = [\"pums\"]\n\n[job]\nkind = \"sql\"\nquery = \"SELECT COUNT(*) FROM pums\"\n\n[privacy]\nepsilon = 0.01\n"
    )
}

/// Submits one job and polls every 2 ms until it ends: end-to-end latency.
async fn one_job(s: &Service, n: usize) -> Duration {
    let start = Instant::now();
    let job = s.alice.submit_job(&manifest(&s.header, n)).await.unwrap();
    loop {
        let view = s.alice.job(&job.id).await.unwrap();
        if view.state == "released" {
            return start.elapsed();
        }
        assert!(
            matches!(view.state.as_str(), "queued" | "running"),
            "{view:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn throughput(s: Arc<Service>, clients: usize, seconds: u64, offset: usize) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(offset));
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (s, done, next) = (s.clone(), done.clone(), next.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    // Followed on its event stream: polling from every
                    // client would load the server it measures.
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let job = s.alice.submit_job(&manifest(&s.header, n)).await.unwrap();
                    let end = s.alice.watch_job(&job.id, |_| true).await.unwrap();
                    assert_eq!(end.state, "released", "{end:?}");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let jobs: usize = env_or("SLUICE_BENCH_JOBS", 60);
    let clients: usize = env_or("SLUICE_BENCH_CLIENTS", 64);
    let seconds: u64 = env_or("SLUICE_BENCH_SECONDS", 20);
    let mitigated = Arc::new(service(true).await);
    let unmitigated = Arc::new(service(false).await);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for n in 0..jobs {
        with.push(one_job(&mitigated, n).await);
        without.push(one_job(&unmitigated, n).await);
    }
    with.sort();
    without.sort();
    // Baselines: what every job pays at least, HTTP and one process.
    let (mut http, mut spawn) = (Vec::new(), Vec::new());
    let exe = Path::new(env!("CARGO_BIN_EXE_sluice"));
    let probe = serde_json::json!({
        "task": "preview",
        "path": "/nonexistent/sluice-bench.parquet",
        "limit": 1,
    })
    .to_string();
    for _ in 0..jobs {
        let t = Instant::now();
        unmitigated.alice.me().await.unwrap();
        http.push(t.elapsed());
        let t = Instant::now();
        let out = sluice_testkit::process::sandbox(exe, &probe).stdout;
        spawn.push(t.elapsed());
        assert!(out.contains("\"status\":\"failed\""), "{out}");
    }
    http.sort();
    spawn.sort();
    let tput_without = throughput(unmitigated.clone(), clients, seconds, jobs).await;
    let tput_with = throughput(mitigated.clone(), clients, seconds, jobs).await;
    println!(
        "small COUNT job, end to end ({jobs} jobs each, alternating; {clients} clients for {seconds} s each):"
    );
    println!("| configuration | p50 | p99 | jobs/s ({clients} clients) |");
    println!("|---|---|---|---|");
    println!(
        "| no timing schedule | {:.1} ms | {:.1} ms | {tput_without:.1} |",
        ms(percentile(&without, 0.5)),
        ms(percentile(&without, 0.99))
    );
    println!(
        "| timing schedule (default) | {:.1} ms | {:.1} ms | {tput_with:.1} |",
        ms(percentile(&with, 0.5)),
        ms(percentile(&with, 0.99))
    );
    println!(
        "| baseline: authenticated GET /v1/me | {:.2} ms | {:.2} ms | |",
        ms(percentile(&http, 0.5)),
        ms(percentile(&http, 0.99))
    );
    println!(
        "| baseline: bare sandbox process | {:.1} ms | {:.1} ms | |",
        ms(percentile(&spawn, 0.5)),
        ms(percentile(&spawn, 0.99))
    );
}
