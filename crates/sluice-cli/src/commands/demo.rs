//! `sluice demo`: the whole path on the embedded default. Starts a server on
//! a temporary data dir, publishes the PUMS sample as a provider (through
//! the ingest sandbox), a researcher applies for access and the provider
//! approves with a data-use agreement, runs DP SQL jobs, a WASM
//! job and a model trained across two providers through the job sandbox,
//! and verifies the signed releases offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sluice_client::Client;
use sluice_types::Role;
use sluice_types::api::{
    AgreementTerms, ApplicationDecision, ApplicationRequest, DatasetDescriptor,
};

use crate::files::{embed_module, name_agreements, verify_release_text};
use crate::print;

const PUMS_CSV: &[u8] = include_bytes!("../../../../examples/data/PUMS_pid.csv");
const PUMS_DESCRIPTOR: &str = include_str!("../../../../examples/data/pums.toml");
const JOBS: [&str; 2] = [
    include_str!("../../../../examples/jobs/income_by_sex.toml"),
    include_str!("../../../../examples/jobs/income_by_educ.toml"),
];
/// A WASM job: its manifest names the module file, embedded here and put
/// into the manifest as `sluice job submit` does.
const WASM_JOB: &str = include_str!("../../../../examples/jobs/older_share.toml");
const WASM_MODULE: &[u8] = include_bytes!("../../../../examples/jobs/older_share.wasm");
/// A second provider's dataset and a model trained across both.
const HOUSEHOLD_CSV: &[u8] = include_bytes!("../../../../examples/data/household.csv");
const HOUSEHOLD_DESCRIPTOR: &str = include_str!("../../../../examples/data/household.toml");
const TRAIN_JOB: &str = include_str!("../../../../examples/jobs/married_model.toml");
/// The application alice files and the terms the providers approve with.
const APPLICATION: &str = include_str!("../../../../examples/access/application.toml");
const TERMS: &str = include_str!("../../../../examples/access/terms.toml");

/// `user` applies for `dataset` with the example application; `provider`
/// approves with the example terms. Returns the agreement's id.
async fn agreement_for(user: &Client, provider: &Client, dataset: &str) -> Result<String> {
    let mut application: ApplicationRequest =
        toml::from_str(APPLICATION).context("parsing the example application")?;
    application.datasets = vec![dataset.to_owned()];
    let filed = user.apply(&application).await?;
    let mut terms: AgreementTerms = toml::from_str(TERMS).context("parsing the example terms")?;
    terms.scope = format!("{dataset}; differentially private outputs only");
    let decided = provider
        .decide_application(
            &filed.id,
            &ApplicationDecision {
                approve: true,
                terms: Some(terms),
                reasons: None,
                legal_basis: None,
            },
        )
        .await?;
    decided
        .agreement
        .context("an approval returns the agreement it created")
}

/// Where `--serve` listens unless `--bind` says otherwise: the URL the
/// README's tour and the Python example use.
const SERVE_BIND: &str = "127.0.0.1:7878";

pub async fn run(data_dir: Option<PathBuf>, serve: bool, bind: Option<SocketAddr>) -> Result<()> {
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let data_dir = data_dir.unwrap_or_else(|| temp.path().join("data"));
    let key_dir = sluice_server::Config::default_key_dir(&data_dir);
    let config = sluice_server::Config {
        data_dir: data_dir.clone(),
        key_dir,
        bind: bind.unwrap_or_else(|| {
            if serve { SERVE_BIND } else { "127.0.0.1:0" }
                .parse()
                .expect("loopback address")
        }),
        sandbox_exe: std::env::current_exe().context("locating the sluice executable")?,
        sandbox_timeout: Duration::from_secs(300),
        rate_limit: Default::default(),
        timing: Default::default(),
        secure_cookies: false,
    };
    let started = sluice_server::start(config).await?;
    let url = format!("http://{}", started.addr);
    println!(
        "== Sluice demo: server at {url}, data dir {}",
        data_dir.display()
    );
    let admin_token = started
        .admin_token
        .clone()
        .context("the demo needs a fresh data dir")?;
    let admin = Client::new(&url, Some(admin_token.clone()));

    println!("\n== admin creates a data provider and a researcher");
    let provider = admin.create_user("census-bureau", Role::Provider).await?;
    let researcher = admin.create_user("alice", Role::User).await?;
    let provider_token = provider.token.clone();
    let alice_token = researcher.token.clone();
    let provider = admin.with_token(provider.token);
    let alice = admin.with_token(researcher.token);
    println!("provider census-bureau, researcher alice");

    println!(
        "\n== provider publishes the PUMS sample (conditional); pid is pseudonymised at ingest"
    );
    let desc: DatasetDescriptor =
        toml::from_str(PUMS_DESCRIPTOR).context("parsing the PUMS descriptor")?;
    provider.create_dataset(&desc).await?;
    let added = provider.upload_version("pums", PUMS_CSV.to_vec()).await?;
    print::version_added(&added);

    println!(
        "\n== alice searches the catalog and previews the data (synthetic rows: the data is conditional)"
    );
    let found = alice
        .search(&sluice_client::SearchFilter {
            text: Some("income".into()),
            ..Default::default()
        })
        .await?;
    print::catalog(&found);
    let preview = alice.preview("pums", 3).await?;
    for row in preview.rows {
        println!("  synthetic: {}", serde_json::Value::Object(row));
    }

    println!("\n== alice cannot run jobs before she holds a data-use agreement");
    match alice.submit_job(JOBS[0]).await {
        Err(e) => println!("refused: {e}"),
        Ok(j) => bail!("job {} was accepted without access", j.id),
    }
    println!("\n== alice applies (art. 20); the provider approves with an agreement (art. 21)");
    let pums_agreement = agreement_for(&alice, &provider, "pums").await?;
    println!("agreement {pums_agreement} covers pums; alice's jobs name it");
    let under_pums = |m: &str| name_agreements(m, std::slice::from_ref(&pums_agreement));

    println!("\n== a query that would release rows is rejected before any data is read");
    let bad = JOBS[0].replace(
        "SELECT sex, COUNT(*) AS people, SUM(income) AS total_income, AVG(income) AS mean_income FROM pums GROUP BY sex",
        "SELECT * FROM pums",
    );
    match alice.submit_job(&under_pums(&bad)?).await {
        Err(e) => println!("rejected: {e}"),
        Ok(j) => bail!("job {} releasing rows was accepted", j.id),
    }

    println!(
        "\n== a second provider (civil registry) publishes marital status, keyed by the same pseudonymised person"
    );
    let registry = admin.create_user("civil-registry", Role::Provider).await?;
    let registry = admin.with_token(registry.token);
    let desc: DatasetDescriptor =
        toml::from_str(HOUSEHOLD_DESCRIPTOR).context("parsing the household descriptor")?;
    registry.create_dataset(&desc).await?;
    let added = registry
        .upload_version("household", HOUSEHOLD_CSV.to_vec())
        .await?;
    print::version_added(&added);
    let household_agreement = agreement_for(&alice, &registry, "household").await?;
    println!("agreement {household_agreement} with civil-registry covers household");

    let key = alice.public_key().await?;
    let wasm_job = embed_module(WASM_JOB, |file| match file {
        "older_share.wasm" => Ok(WASM_MODULE.to_vec()),
        other => bail!("the demo embeds no module {other}"),
    })?;
    let mut jobs = Vec::new();
    for m in JOBS.iter().copied().chain([wasm_job.as_str()]) {
        jobs.push(under_pums(m)?);
    }
    jobs.push(name_agreements(
        TRAIN_JOB,
        &[pums_agreement.clone(), household_agreement.clone()],
    )?);
    for manifest in jobs {
        println!();
        let headline = if manifest.contains("kind = \"wasm\"") {
            Some("a WASM job: per-person logic in an untrusted module; the host clamps and noises")
        } else if manifest.contains("kind = \"train\"") {
            Some(
                "joint modeling: DP logistic regression on census features and the registry's label, joined inside the sandbox",
            )
        } else {
            None
        };
        if let Some(headline) = headline {
            println!("== {headline}");
            let e = alice.estimate_job(&manifest).await?;
            if let Some(plan) = &e.plan {
                println!("  reviewers see: {plan}");
            }
        }
        let manifest = manifest.as_str();
        let job = alice.submit_job(manifest).await?;
        let job = alice.wait_job(&job.id, Duration::from_secs(300)).await?;
        if job.state != "released" {
            bail!(
                "job {} ended {}: {}",
                job.id,
                job.state,
                job.message.unwrap_or_default()
            );
        }
        let release = alice.release(&job.id).await?;
        print::release(&release.body);
        let text = serde_json::to_string(&release)?;
        let verified = verify_release_text(&text, &key.public_key_hex)?;
        println!("  signature verified offline with key {}", key.key_id);
        if verified != release.body {
            bail!("verified body differs from the returned body");
        }
    }

    for dataset in ["pums", "household"] {
        let budget = alice.budget(dataset).await?;
        println!(
            "\n== alice's budget on {dataset}: granted {}, spent {}, remaining {}",
            budget.user_granted, budget.user_spent, budget.user_remaining
        );
    }
    for id in [&pums_agreement, &household_agreement] {
        let a = alice.agreement(id).await?;
        println!(
            "== agreement {id} ({}): budget {}, spent {}, remaining {}",
            a.datasets.join(", "),
            a.epsilon,
            a.epsilon_spent,
            a.epsilon_remaining
        );
    }
    if !serve {
        started.handle.abort();
        println!("\ndemo finished");
        return Ok(());
    }
    // A researcher with no agreement yet, so that a client can walk the
    // whole path (apply, the provider approves, submit) on this server.
    let bob = admin.create_user("bob", Role::User).await?;
    let key_file = sluice_server::Config::default_key_dir(&data_dir).join("signing.ed25519.pub");
    println!(
        "\n== web console: {url}/console/ ; sign in with one of these tokens:\n\
         researcher alice (the demo's jobs and releases): {alice_token}\n\
         provider census-bureau: {provider_token}\n\
         admin (users, audit log): {admin_token}"
    );
    // The export lines come last: scripts read up to SLUICE_KEY_FILE and
    // may then close the pipe, after which nothing more can be printed.
    println!(
        "\n== demo finished; the server keeps running until Ctrl-C. To try the CLI or the Python client on it \
         (examples/python/researcher.py), as researcher bob with census-bureau as the provider:"
    );
    println!("export SLUICE_URL={url}");
    println!("export SLUICE_TOKEN={}", bob.token);
    println!("export SLUICE_PROVIDER_TOKEN={provider_token}");
    println!("export SLUICE_KEY_FILE={}", key_file.display());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        served = started.handle => {
            served.context("the server task")?.context("serving")?;
        }
    }
    println!("stopped");
    Ok(())
}
