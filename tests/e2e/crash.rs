//! Crash safety: the server is killed with SIGKILL at random points while
//! jobs run; after every restart no release exists without its committed
//! spend, no committed spend is lost, and the audit log verifies.
//!
//! The kill points come from a seed the test prints (`crash test seed N`);
//! `SLUICE_CRASH_SEED=N cargo test -p sluice-cli --test e2e crash` replays
//! them. The server's own timing varies, so a replay lands each kill at
//! the same delay, not always at the same line of code.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use sluice_client::Client;
use sluice_testkit::process::Serve;
use sluice_testkit::{Lcg, seed_from_env};
use sluice_types::Role;

use crate::{pums_csv, pums_descriptor};

const RUNS: usize = 100;

/// Starts `sluice serve` on the test's data and key dirs.
fn serve(data: &Path, keys: &Path) -> Serve {
    Serve::start(
        Path::new(env!("CARGO_BIN_EXE_sluice")),
        &[
            OsStr::new("--data-dir"),
            data.as_os_str(),
            OsStr::new("--key-dir"),
            keys.as_os_str(),
        ],
        "warn",
    )
}

async fn check_invariants(data: &Path, last_committed: &mut u64) {
    let store = sluice_store::Store::open(data).await.unwrap();
    assert_eq!(
        store.releases_without_committed_spend().await.unwrap(),
        0,
        "a release without its committed spend"
    );
    let committed = store.committed_epsilon_units().await.unwrap();
    assert!(
        committed >= *last_committed,
        "committed spend was lost: {committed} < {last_committed}"
    );
    *last_committed = committed;
    let entries = store.audit_entries().await.unwrap();
    sluice_store::verify_audit_chain(&entries).unwrap();
}

#[tokio::test]
async fn sigkill_at_random_points_never_breaks_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let (data, keys) = (dir.path().join("data"), dir.path().join("keys"));
    let seed = seed_from_env("SLUICE_CRASH_SEED");
    println!("crash test seed {seed} (replay: SLUICE_CRASH_SEED={seed})");
    let mut rng = Lcg::new(seed);

    let server = serve(&data, &keys);
    let admin = Client::new(&server.url, server.admin_token.clone());
    let provider_token = admin
        .create_user("provider", Role::Provider)
        .await
        .unwrap()
        .token;
    let alice_token = admin.create_user("alice", Role::User).await.unwrap().token;
    let provider = admin.with_token(provider_token);
    let mut d = pums_descriptor("pums", "conditional");
    d.dataset.user_epsilon = 1000.0;
    d.dataset.epsilon_cap = 1000.0;
    provider.create_dataset(&d).await.unwrap();
    provider.upload_version("pums", pums_csv()).await.unwrap();
    let alice_now = admin.with_token(alice_token.clone());
    let agreement = crate::agreement(&alice_now, &provider, &["pums"], 1000.0).await;
    let header = crate::under(&[&agreement]);
    let mut server = server;

    let mut last_committed = 0;
    let mut released = 0;
    for run in 0..RUNS {
        let alice = Client::new(&server.url, Some(alice_token.clone()));
        let m = crate::sql_manifest(
            &header,
            "pums",
            "SELECT sex, COUNT(*), SUM(income) FROM pums GROUP BY sex",
            1.0,
        )
        .replace("title = \"t\"", &format!("title = \"run {run}\""));
        let submit = tokio::spawn(async move { alice.submit_job(&m).await });
        // Kill somewhere between before the request lands and after the
        // release, which its schedule places a second or two after
        // admission on a debug build: a square spreads the kills over the
        // whole span while keeping most runs short.
        let u = rng.below(1000) as f64 / 1000.0;
        tokio::time::sleep(Duration::from_millis((3000.0 * u * u) as u64)).await;
        server.kill();
        if let Ok(Ok(job)) = submit.await
            && job.state == "released"
        {
            released += 1;
        }
        check_invariants(&data, &mut last_committed).await;
        server = serve(&data, &keys);
    }
    // After the last restart, recovery has settled every interrupted job.
    let alice = Client::new(&server.url, Some(alice_token.clone()));
    for job in alice.jobs().await.unwrap() {
        assert!(
            matches!(job.state.as_str(), "released" | "failed" | "rejected"),
            "{} is {}",
            job.id,
            job.state
        );
        if job.state == "released" {
            released += 1;
            alice.release(&job.id).await.unwrap();
        }
    }
    server.kill();
    check_invariants(&data, &mut last_committed).await;
    assert!(
        released > 0,
        "no run got as far as a release: the kill window is too short to test anything"
    );
}
