//! `sluice`: the command-line tool. `serve` runs the API server, `demo` runs
//! the whole path on a temporary data dir, the other commands are clients
//! of a running server, and the hidden `sandbox` command is the isolated
//! executor the server starts for every task that reads rows.

mod audit;
mod demo;
mod print;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sluice_client::{Client, SearchFilter};
use sluice_types::Role;
use sluice_types::api::DatasetDescriptor;

use print::safe;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Privacy-preserving computation on sensitive public data"
)]
struct Cli {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:7878"
    )]
    url: String,
    /// Bearer token.
    #[arg(long, global = true, env = "SLUICE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Serve {
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
    },
    /// Run the end-to-end demo on a temporary data dir.
    Demo {
        /// Keep the data in this directory instead of a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Users (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Catalog and datasets.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Review jobs held for human review (reviewers).
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Feedback on datasets and rectification tasks, with deadlines.
    #[command(subcommand)]
    Feedback(FeedbackCommand),
    /// Applications for conditional data and their decisions (art. 20).
    #[command(subcommand)]
    Application(ApplicationCommand),
    /// Data-use agreements (art. 21).
    #[command(subcommand)]
    Agreement(AgreementCommand),
    /// Usage statistics by provider and open category.
    Stats,
    /// Check manifests offline.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Export, checkpoint and verify the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Verify a release's signature offline.
    Verify {
        /// The release JSON (as returned by `sluice job result`).
        release: PathBuf,
        /// The platform's public key, hex (from GET /v1/public-key or the key dir's signing.ed25519.pub).
        #[arg(long)]
        public_key: String,
    },
    #[command(hide = true)]
    Sandbox,
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Parse and check a manifest (TOML) without a server; lists every problem.
    Check { manifest: PathBuf },
    /// Print the SHA-256 digest of a manifest's canonical form (what approvals bind to).
    Digest { manifest: PathBuf },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and print its token (shown once).
    Create {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Show who the token belongs to.
    Me,
    /// Close a user's access to every dataset (admin); their jobs stop.
    Close {
        name: String,
        #[arg(long)]
        reason: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
        .ok_or_else(|| format!("role must be admin, provider, user or reviewer, not \"{s}\""))
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Create a catalog entry from a descriptor (TOML) and upload its first version.
    Publish { descriptor: PathBuf, file: PathBuf },
    /// Upload a new version of a dataset.
    Upload { name: String, file: PathBuf },
    /// Search the catalog.
    Search {
        text: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        format: Option<String>,
    },
    /// Show a catalog entry.
    Show { name: String },
    /// Preview rows (synthetic for conditional data).
    Preview {
        name: String,
        #[arg(long, default_value_t = 5)]
        limit: usize,
    },
    /// Download an unconditional dataset: Parquet, or spreadsheet-safe CSV
    /// with --csv or an output file ending in .csv.
    Download {
        name: String,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        csv: bool,
    },
    /// Show a version's quality report (provider).
    Quality { name: String, version: String },
    /// Show your privacy budget on a dataset.
    Budget { name: String },
    /// Suspend a dataset (provider or admin): new jobs refused, running ones
    /// cancelled, nothing more released, budget frozen.
    Suspend {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Resume a suspended dataset (after publishing a processed version, say).
    Resume {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Withdraw a dataset for good.
    Withdraw {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Revoke one user's access to a dataset (provider); their jobs on it stop.
    Revoke {
        name: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        reason: String,
    },
    /// The public list of revocations.
    Revocations,
    /// Require human review of every job on a dataset (provider): 0 (none),
    /// 1, or 2 distinct reviewers.
    ReviewPolicy {
        name: String,
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
        reviewers: u8,
    },
}

#[derive(Subcommand)]
enum ApplicationCommand {
    /// Apply: a TOML file with title, reason, type, datasets, period_start,
    /// period_end, result_form, scenario and pledge = true. Every missing
    /// field is listed at once.
    Apply {
        file: PathBuf,
    },
    /// Your applications (users), those to decide (providers), or all.
    List {
        #[arg(long)]
        overdue: bool,
    },
    Show {
        id: String,
    },
    /// Approve (provider): a TOML file with the agreement's terms (purpose,
    /// scope, manner, prohibitions, credit_commitment, liability,
    /// dispute_resolution, epsilon).
    Approve {
        id: String,
        #[arg(long)]
        terms: PathBuf,
    },
    /// Refuse (provider), with reasons and the legal basis.
    Refuse {
        id: String,
        #[arg(long)]
        reasons: String,
        #[arg(long)]
        legal_basis: String,
    },
}

#[derive(Subcommand)]
enum AgreementCommand {
    List,
    Show { id: String },
}

#[derive(Subcommand)]
enum FeedbackCommand {
    /// Report an error or omission (kind: error, omission, other; the
    /// authority also: rectification).
    Report {
        dataset: String,
        #[arg(long, default_value = "error")]
        kind: String,
        #[arg(long)]
        description: String,
    },
    /// Feedback you reported, on your datasets (providers), or all (admin).
    List {
        /// Only open items past their deadline.
        #[arg(long)]
        overdue: bool,
    },
    /// Answer feedback on your dataset (provider).
    Answer {
        id: String,
        #[arg(long)]
        answer: String,
    },
    /// Ask for a longer deadline, in working days in all (6 to 30).
    Extend {
        id: String,
        #[arg(long)]
        working_days: u32,
        #[arg(long)]
        reason: String,
    },
    /// Approve or refuse an extension (admin).
    DecideExtension {
        id: String,
        #[arg(long)]
        approve: bool,
    },
}

#[derive(Subcommand)]
enum ReviewCommand {
    /// Jobs awaiting your decision.
    List,
    /// A held job: manifest, plan, exact cost and the diff against the
    /// submitter's last approved manifest.
    Show { job: String },
    /// Approve the manifest with this digest (from `review show`).
    Approve {
        job: String,
        #[arg(long)]
        digest: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reject, with the reason the submitter will read.
    Reject {
        job: String,
        #[arg(long)]
        digest: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Submit a manifest and wait for its release.
    Submit {
        manifest: PathBuf,
        /// Run under this data-use agreement (repeat for one per provider);
        /// conditional data needs it unless the manifest names it.
        #[arg(long, value_name = "ID")]
        agreement: Vec<String>,
        /// Return at once instead of waiting.
        #[arg(long)]
        no_wait: bool,
        /// Write the signed release here.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Say whether a manifest would be accepted, what it would cost exactly
    /// and how accurate each output would be; reads no data, spends nothing.
    Estimate {
        manifest: PathBuf,
        /// As for `job submit`.
        #[arg(long, value_name = "ID")]
        agreement: Vec<String>,
    },
    /// Show a job's state.
    Status { id: String },
    /// List your jobs.
    List,
    /// Print a job's release, or write it (-o): the signed JSON, or
    /// spreadsheet-safe CSV (unsigned) with --csv or a file ending in .csv.
    #[command(alias = "release")]
    Result {
        id: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        csv: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Sandbox = cli.command {
        return std::process::ExitCode::from(sluice_sandbox::main_entry() as u8);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", safe(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let client = Client::new(&cli.url, cli.token.clone());
    match cli.command {
        Command::Sandbox => unreachable!("handled before the runtime starts"),
        Command::Serve {
            data_dir,
            key_dir,
            bind,
            sandbox_timeout,
            rate_limit,
        } => {
            let key_dir =
                key_dir.unwrap_or_else(|| sluice_server::Config::default_key_dir(&data_dir));
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
            };
            let started = sluice_server::start(config).await?;
            if let Some(token) = &started.admin_token {
                println!("created the first admin; its token is shown once:\n{token}");
            }
            println!("listening on http://{}", started.addr);
            started.handle.await?.context("server failed")?;
        }
        Command::Demo { data_dir } => demo::run(data_dir).await?,
        Command::User(UserCommand::Create { name, role }) => {
            let created = client.create_user(&name, role).await?;
            println!(
                "created {} ({}) with id {}",
                safe(&created.user.name),
                created.user.role.as_str(),
                safe(&created.user.id)
            );
            println!("token (shown once): {}", safe(&created.token));
        }
        Command::User(UserCommand::Close { name, reason }) => {
            let r = client.close_user(&name, &reason).await?;
            println!(
                "closed {}'s access; {} job(s) cancelled",
                safe(&name),
                r.jobs_cancelled
            );
        }
        Command::User(UserCommand::Me) => {
            let me = client.me().await?;
            println!(
                "{} ({}), id {}",
                safe(&me.name),
                me.role.as_str(),
                safe(&me.id)
            );
        }
        Command::Dataset(cmd) => dataset(&client, cmd).await?,
        Command::Manifest(cmd) => manifest(cmd)?,
        Command::Audit(cmd) => audit::run(&client, cmd).await?,
        Command::Job(cmd) => job(&client, cmd).await?,
        Command::Review(cmd) => review(&client, cmd).await?,
        Command::Feedback(cmd) => feedback(&client, cmd).await?,
        Command::Application(cmd) => application(&client, cmd).await?,
        Command::Agreement(AgreementCommand::List) => {
            for a in client.agreements().await? {
                println!(
                    "{}  {} -> {}  {}  {} to {}  epsilon {} of {} left{}",
                    safe(&a.id),
                    safe(&a.provider),
                    safe(&a.user),
                    safe(&a.datasets.join(", ")),
                    safe(&a.period_start),
                    safe(&a.period_end),
                    safe(&a.epsilon_remaining),
                    safe(&a.epsilon),
                    if a.active { "  active" } else { "" }
                );
            }
        }
        Command::Agreement(AgreementCommand::Show { id }) => {
            print::json(&client.agreement(&id).await?)?
        }
        Command::Stats => print::json(&client.stats().await?)?,
        Command::Verify {
            release,
            public_key,
        } => {
            let text = std::fs::read_to_string(&release)
                .with_context(|| format!("reading {}", release.display()))?;
            let body = verify_release_text(&text, &public_key)?;
            println!(
                "release signature verifies: job {}, {} dataset(s), epsilon {}",
                safe(&body.job_id),
                body.datasets.len(),
                body.epsilon_spent
            );
        }
    }
    Ok(())
}

/// Reads a manifest file; a WASM job's `module = "file:<path>"` (relative to
/// the manifest) is replaced by that file's bytes in base64, which is what
/// the server stores, digests and runs.
fn read_manifest_text(path: &std::path::Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("manifest invalid: {}", e.message()))?;
    let module_file = doc
        .get("job")
        .and_then(|j| j.get("module"))
        .and_then(|m| m.as_str())
        .and_then(|m| m.strip_prefix("file:"))
        .map(str::to_owned);
    let Some(module_file) = module_file else {
        return Ok(text);
    };
    let module_path = path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(&module_file);
    let bytes = std::fs::read(&module_path)
        .with_context(|| format!("reading the module {}", module_path.display()))?;
    if let Some(job) = doc.get_mut("job").and_then(|j| j.as_table_mut()) {
        job.insert(
            "module".into(),
            toml::Value::String(sluice_types::b64_encode(&bytes)),
        );
    }
    Ok(toml::to_string(&doc)?)
}

/// The manifest text with `agreement` set to `ids` (from `--agreement`):
/// one manifest file then serves every agreement it may run under. A
/// manifest that already names agreements is left alone, and asking for
/// both is an error rather than a silent choice.
pub fn name_agreements(text: &str, ids: &[String]) -> Result<String> {
    if ids.is_empty() {
        return Ok(text.to_owned());
    }
    let mut doc: toml::Table =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("manifest invalid: {}", e.message()))?;
    if doc.contains_key("agreement") {
        bail!("the manifest already names its agreement; drop --agreement or the manifest's field");
    }
    let value = match ids {
        [one] => toml::Value::String(one.clone()),
        many => toml::Value::Array(many.iter().cloned().map(toml::Value::String).collect()),
    };
    doc.insert("agreement".into(), value);
    Ok(toml::to_string(&doc)?)
}

fn load_manifest(path: &std::path::Path) -> Result<sluice_types::Manifest> {
    let text = read_manifest_text(path)?;
    let manifest: sluice_types::Manifest =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("manifest invalid: {}", e.message()))?;
    if let Err(problems) = manifest.validate() {
        bail!("manifest invalid: {}", problems.join("; "));
    }
    Ok(manifest)
}

fn manifest(cmd: ManifestCommand) -> Result<()> {
    match cmd {
        ManifestCommand::Check { manifest } => {
            let m = load_manifest(&manifest)?;
            println!(
                "manifest ok: \"{}\", {} dataset(s), epsilon {}, digest {}",
                safe(&m.title),
                m.datasets.len(),
                m.privacy.epsilon,
                sluice_crypto::digest_of(&m)
            );
        }
        ManifestCommand::Digest { manifest } => {
            println!("{}", sluice_crypto::digest_of(&load_manifest(&manifest)?))
        }
    }
    Ok(())
}

/// Verifies a release JSON (either the API's `{envelope, body}` or a bare envelope).
pub fn verify_release_text(text: &str, public_key_hex: &str) -> Result<sluice_types::ReleaseBody> {
    let key = hex::decode(public_key_hex.trim()).context("public key is not hex")?;
    let value: serde_json::Value = serde_json::from_str(text).context("release is not JSON")?;
    let envelope = value.get("envelope").cloned().unwrap_or(value);
    let envelope: sluice_types::SignedRelease =
        serde_json::from_value(envelope).context("not a release envelope")?;
    sluice_crypto::verify_release(&envelope, &key).context("release does not verify")
}

async fn dataset(client: &Client, cmd: DatasetCommand) -> Result<()> {
    match cmd {
        DatasetCommand::Publish { descriptor, file } => {
            let text = std::fs::read_to_string(&descriptor)
                .with_context(|| format!("reading {}", descriptor.display()))?;
            let desc: DatasetDescriptor = toml::from_str(&text)
                .with_context(|| format!("parsing {}", descriptor.display()))?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let entry = client.create_dataset(&desc).await?;
            println!(
                "created dataset {} ({})",
                safe(&entry.name),
                safe(&entry.id)
            );
            let added = client.upload_version(&entry.name, bytes).await?;
            print::version_added(&added);
        }
        DatasetCommand::Upload { name, file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            print::version_added(&client.upload_version(&name, bytes).await?);
        }
        DatasetCommand::Search {
            text,
            provider,
            category,
            format,
        } => {
            let found = client
                .search(&SearchFilter {
                    text,
                    provider,
                    open_category: category,
                    format,
                })
                .await?;
            print::catalog(&found);
        }
        DatasetCommand::Show { name } => print::json(&client.dataset(&name).await?)?,
        DatasetCommand::Preview { name, limit } => {
            let p = client.preview(&name, limit).await?;
            if p.synthetic {
                println!("(synthetic rows generated from the schema: this dataset is conditional)");
            }
            for row in p.rows {
                println!("{}", safe(&serde_json::Value::Object(row).to_string()));
            }
        }
        DatasetCommand::Download { name, output, csv } => {
            let csv = csv || output.extension().is_some_and(|e| e == "csv");
            let bytes = if csv {
                client.download_csv(&name).await?.into_bytes()
            } else {
                client.download(&name).await?
            };
            std::fs::write(&output, &bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("wrote {} bytes to {}", bytes.len(), output.display());
        }
        DatasetCommand::Suspend { name, reason } => {
            let r = client.suspend_dataset(&name, &reason).await?;
            println!(
                "{} suspended; {} job(s) cancelled",
                safe(&name),
                r.jobs_cancelled
            );
        }
        DatasetCommand::Resume { name, reason } => {
            client.resume_dataset(&name, &reason).await?;
            println!("{} resumed", safe(&name));
        }
        DatasetCommand::Withdraw { name, reason } => {
            let r = client.withdraw_dataset(&name, &reason).await?;
            println!(
                "{} withdrawn; {} job(s) cancelled",
                safe(&name),
                r.jobs_cancelled
            );
        }
        DatasetCommand::Revoke { name, user, reason } => {
            let r = client.revoke_access(&name, &user, &reason).await?;
            println!(
                "{}'s access to {} revoked; {} job(s) cancelled",
                safe(&user),
                safe(&name),
                r.jobs_cancelled
            );
        }
        DatasetCommand::Revocations => {
            for r in client.revocations().await? {
                println!(
                    "{}  {}  {}  by {}: {}",
                    safe(&r.at),
                    safe(&r.user),
                    safe(r.dataset.as_deref().unwrap_or("all datasets")),
                    safe(&r.decided_by),
                    safe(&r.reason)
                );
            }
        }
        DatasetCommand::ReviewPolicy { name, reviewers } => {
            client.set_review_policy(&name, reviewers).await?;
            match reviewers {
                0 => println!("jobs on {} run without human review", safe(&name)),
                n => println!(
                    "jobs on {} now need {n} distinct reviewer approval(s)",
                    safe(&name)
                ),
            }
        }
        DatasetCommand::Quality { name, version } => {
            print::json(&client.quality(&name, &version).await?)?
        }
        DatasetCommand::Budget { name } => {
            let b = client.budget(&name).await?;
            println!(
                "{}: granted {}, spent {}, remaining {}",
                safe(&name),
                safe(&b.user_granted),
                safe(&b.user_spent),
                safe(&b.user_remaining)
            );
        }
    }
    Ok(())
}

async fn job(client: &Client, cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::Submit {
            manifest,
            agreement,
            no_wait,
            output,
        } => {
            let text = name_agreements(&read_manifest_text(&manifest)?, &agreement)?;
            let job = client.submit_job(&text).await?;
            println!("job {} {}", safe(&job.id), safe(&job.state));
            if no_wait {
                return Ok(());
            }
            // Follow the job's events (progress on long jobs); poll if the
            // stream is unavailable.
            let mut shown = job.state.clone();
            let job = match client
                .watch_job(&job.id, |v| {
                    if v.state != shown {
                        println!("job {} {}", safe(&v.id), safe(&v.state));
                        shown = v.state.clone();
                    }
                    // Not final, but nothing happens until a reviewer acts.
                    v.state != "awaiting_review"
                })
                .await
            {
                Ok(j) => j,
                Err(_) => client.wait_job(&job.id, Duration::from_secs(3600)).await?,
            };
            if job.state == "awaiting_review" {
                let id = safe(&job.id);
                println!(
                    "job {id} awaits human review; nothing is spent until it is approved. Follow it with `sluice job status {id}`"
                );
                return Ok(());
            }
            if job.state != "released" {
                bail!(
                    "job {} ended {}: {}",
                    safe(&job.id),
                    safe(&job.state),
                    safe(&job.message.unwrap_or_default())
                );
            }
            let release = client.release(&job.id).await?;
            print::release(&release.body);
            if let Some(out) = output {
                std::fs::write(&out, serde_json::to_vec_pretty(&release)?)?;
                println!("signed release written to {}", out.display());
            }
        }
        JobCommand::Estimate {
            manifest,
            agreement,
        } => {
            let text = name_agreements(&read_manifest_text(&manifest)?, &agreement)?;
            let e = client.estimate_job(&text).await?;
            print::estimate(&e);
            if !e.accepted {
                bail!("the job would be rejected");
            }
        }
        JobCommand::Status { id } => {
            let j = client.job(&id).await?;
            println!(
                "job {} {} {}",
                safe(&j.id),
                safe(&j.state),
                safe(&j.message.unwrap_or_default())
            );
        }
        JobCommand::List => {
            for j in client.jobs().await? {
                println!(
                    "{} {:9} epsilon {} {}",
                    safe(&j.id),
                    safe(&j.state),
                    safe(&j.epsilon),
                    safe(&j.created_at)
                );
            }
        }
        JobCommand::Result { id, output, csv } => {
            let csv = csv
                || output
                    .as_ref()
                    .is_some_and(|o| o.extension().is_some_and(|e| e == "csv"));
            match (output, csv) {
                (Some(out), true) => {
                    std::fs::write(&out, client.release_csv(&id).await?)
                        .with_context(|| format!("writing {}", out.display()))?;
                    println!("release (CSV, unsigned) written to {}", out.display());
                }
                (None, true) => print!("{}", print::safe_lines(&client.release_csv(&id).await?)),
                (Some(out), false) => {
                    let release = client.release(&id).await?;
                    std::fs::write(&out, serde_json::to_vec_pretty(&release)?)?;
                    println!("signed release written to {}", out.display());
                }
                (None, false) => print::release(&client.release(&id).await?.body),
            }
        }
    }
    Ok(())
}

async fn review(client: &Client, cmd: ReviewCommand) -> Result<()> {
    match cmd {
        ReviewCommand::List => {
            let pending = client.reviews().await?;
            for r in &pending {
                println!(
                    "{}  {}  by {}  on {}  epsilon {}  ({} of {} approvals)",
                    safe(&r.job_id),
                    safe(&r.title),
                    safe(&r.submitted_by),
                    safe(&r.datasets.join(", ")),
                    r.estimate.epsilon,
                    r.decisions
                        .iter()
                        .filter(|d| d.decision == "approve")
                        .count(),
                    r.required
                );
            }
            if pending.is_empty() {
                println!("no jobs await your review");
            }
        }
        ReviewCommand::Show { job } => {
            let r = client.review(&job).await?;
            println!(
                "job {} by {}: {}",
                safe(&r.job_id),
                safe(&r.submitted_by),
                safe(&r.title)
            );
            println!("manifest digest {}", safe(&r.manifest_digest));
            println!("plan: {}", safe(&r.plan));
            println!(
                "cost: epsilon {}, delta {}",
                r.estimate.epsilon, r.estimate.delta
            );
            match &r.previous_approved_digest {
                Some(d) => {
                    println!("changes since the last approved manifest ({}):", safe(d));
                    for line in &r.diff {
                        println!("  {}", safe(line));
                    }
                }
                None => {
                    println!("manifest (no earlier approved manifest of this user):");
                    for line in r.manifest.lines() {
                        println!("  {}", safe(line));
                    }
                }
            }
            for d in &r.decisions {
                println!(
                    "{} by {} at {}: {}",
                    safe(&d.decision),
                    safe(&d.reviewer),
                    safe(&d.at),
                    safe(&d.reason)
                );
            }
        }
        ReviewCommand::Approve {
            job,
            digest,
            reason,
        } => {
            let r = client.decide_review(&job, true, &reason, &digest).await?;
            println!(
                "job {}: {} ({} of {} approvals)",
                safe(&job),
                safe(&r.outcome),
                r.approvals,
                r.required
            );
        }
        ReviewCommand::Reject {
            job,
            digest,
            reason,
        } => {
            let r = client.decide_review(&job, false, &reason, &digest).await?;
            println!("job {}: {}", safe(&job), safe(&r.outcome));
        }
    }
    Ok(())
}

fn print_feedback(f: &sluice_types::api::FeedbackView) {
    println!(
        "{}  {}  {} by {}  {}{}  due {}{}",
        safe(&f.id),
        safe(&f.dataset),
        safe(&f.kind),
        safe(&f.reported_by),
        safe(&f.state),
        f.extension
            .as_ref()
            .map(|e| format!(", extension {}", safe(e)))
            .unwrap_or_default(),
        safe(&f.due_at),
        if f.overdue { "  OVERDUE" } else { "" }
    );
    println!("    {}", safe(&f.description));
    if let Some(a) = &f.answer {
        println!("    answer: {}", safe(a));
    }
}

async fn feedback(client: &Client, cmd: FeedbackCommand) -> Result<()> {
    match cmd {
        FeedbackCommand::Report {
            dataset,
            kind,
            description,
        } => print_feedback(
            &client
                .report_feedback(&dataset, &kind, &description)
                .await?,
        ),
        FeedbackCommand::List { overdue } => {
            let items = client.feedback_list(overdue).await?;
            for f in &items {
                print_feedback(f);
            }
            if items.is_empty() {
                println!("no feedback");
            }
        }
        FeedbackCommand::Answer { id, answer } => {
            print_feedback(&client.answer_feedback(&id, &answer).await?)
        }
        FeedbackCommand::Extend {
            id,
            working_days,
            reason,
        } => print_feedback(&client.request_extension(&id, working_days, &reason).await?),
        FeedbackCommand::DecideExtension { id, approve } => {
            print_feedback(&client.decide_extension(&id, approve).await?)
        }
    }
    Ok(())
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}

async fn application(client: &Client, cmd: ApplicationCommand) -> Result<()> {
    let show = |a: &sluice_types::api::ApplicationView| {
        println!(
            "{}  {} -> {}  {}  due {}{}{}",
            safe(&a.id),
            safe(&a.applicant),
            safe(&a.provider),
            safe(&a.state),
            safe(&a.due_at),
            if a.overdue { "  OVERDUE" } else { "" },
            a.agreement
                .as_ref()
                .map(|g| format!("  agreement {}", safe(g)))
                .unwrap_or_default()
        );
    };
    match cmd {
        ApplicationCommand::Apply { file } => show(&client.apply(&read_toml(&file)?).await?),
        ApplicationCommand::List { overdue } => {
            for a in client.applications(overdue).await? {
                show(&a);
            }
        }
        ApplicationCommand::Show { id } => print::json(&client.application(&id).await?)?,
        ApplicationCommand::Approve { id, terms } => {
            let decision = sluice_types::api::ApplicationDecision {
                approve: true,
                terms: Some(read_toml(&terms)?),
                reasons: None,
                legal_basis: None,
            };
            show(&client.decide_application(&id, &decision).await?)
        }
        ApplicationCommand::Refuse {
            id,
            reasons,
            legal_basis,
        } => {
            let decision = sluice_types::api::ApplicationDecision {
                approve: false,
                terms: None,
                reasons: Some(reasons),
                legal_basis: Some(legal_basis),
            };
            show(&client.decide_application(&id, &decision).await?)
        }
    }
    Ok(())
}
