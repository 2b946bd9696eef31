//! The web console's pages through HTTP: server time per page (request to
//! last byte on loopback, which is what the server spends: each page asks
//! the API in process and renders) and transfer size, against the API's
//! own smallest authenticated answer (`GET /v1/me`) in the same run.
//!
//! Run: `cargo bench -p sluice-cli --bench console`. SLUICE_BENCH_ROUNDS
//! (default 200) requests per page, pages interleaved round by round.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_testkit::bench::{env_or, ms, percentile};
use sluice_testkit::{platform, repo_file};
use sluice_types::Role;

#[tokio::main]
async fn main() {
    let rounds: usize = env_or("SLUICE_BENCH_ROUNDS", 200);
    let server = platform::start(
        Path::new(env!("CARGO_BIN_EXE_sluice")),
        Duration::from_secs(120),
        sluice_server::RateLimit {
            per_second: 1e6,
            burst: 1e6,
        },
        sluice_server::TimingConfig {
            mitigate: false,
            ..Default::default()
        },
    )
    .await;
    let provider = platform::user(&server.admin, "provider", Role::Provider).await;
    let created = server.admin.create_user("alice", Role::User).await.unwrap();
    let alice = server.admin.with_token(created.token.clone());
    let text = std::fs::read_to_string(repo_file("examples/data/pums.toml")).unwrap();
    let d: sluice_types::api::DatasetDescriptor = toml::from_str(&text).unwrap();
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
        100.0,
        ("2020-01-01", "2999-12-31"),
        "bench",
    )
    .await;
    let manifest = std::fs::read_to_string(repo_file("examples/jobs/income_by_educ.toml"))
        .unwrap()
        .replace(
            "datasets = [",
            &format!("agreement = [\"{agreement}\"]\ndatasets = ["),
        );
    let job = alice.submit_job(&manifest).await.unwrap();
    let job = alice
        .wait_job(&job.id, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(job.state, "released", "{job:?}");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = http
        .post(format!("{}/console/sign-in", server.url))
        .form(&[("token", created.token.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let pages = [
        "/console/".to_owned(),
        "/console/datasets".to_owned(),
        "/console/datasets/pums".to_owned(),
        "/console/jobs".to_owned(),
        "/console/jobs/new".to_owned(),
        format!("/console/jobs/{}", job.id),
        format!("/console/jobs/{}/release", job.id),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); pages.len()];
    let mut sizes = vec![0usize; pages.len()];
    let mut api = Vec::new();
    for _ in 0..rounds {
        for (i, page) in pages.iter().enumerate() {
            let t = Instant::now();
            let r = http
                .get(format!("{}{page}", server.url))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{page}");
            sizes[i] = r.bytes().await.unwrap().len();
            times[i].push(t.elapsed());
        }
        let t = Instant::now();
        alice.me().await.unwrap();
        api.push(t.elapsed());
    }
    api.sort();
    let base = ms(percentile(&api, 0.5));
    println!("console pages over loopback HTTP ({rounds} requests each, interleaved):");
    println!("| page | p50 | p99 | p50 / GET /v1/me | bytes |");
    println!("|---|---|---|---|---|");
    for (i, page) in pages.iter().enumerate() {
        times[i].sort();
        let p50 = ms(percentile(&times[i], 0.5));
        println!(
            "| {} | {p50:.2} ms | {:.2} ms | {:.1}× | {} |",
            page.replace(&job.id, "{id}"),
            ms(percentile(&times[i], 0.99)),
            p50 / base,
            sizes[i]
        );
    }
    println!(
        "| baseline: GET /v1/me (JSON API) | {base:.2} ms | {:.2} ms | 1.0× | |",
        ms(percentile(&api, 0.99))
    );
}
