//! `sluice`: the command-line tool. `serve` runs the API server, `demo` runs
//! the whole path on a temporary data dir, the other commands are clients
//! of a running server, and the hidden `sandbox` command is the isolated
//! executor the server starts for every task that reads rows.
//!
//! This file holds the command tree's root and the dispatch; each command
//! group is a module in `commands/`, the manifest and release files they
//! and the demo read and write are in `files.rs`, and everything a server
//! sent is printed through `print.rs`.

mod commands;
mod files;
mod print;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use sluice_client::Client;

use commands::{
    agreement, application, audit, dataset, demo, feedback, job, manifest, review, serve, user,
    verify,
};
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
    Serve(serve::ServeArgs),
    /// Run the end-to-end demo on a temporary data dir.
    Demo {
        /// Keep the data in this directory instead of a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// After the demo, keep its server running (until Ctrl-C) and print
        /// the URL and tokens for trying the CLI or the Python client on it.
        #[arg(long)]
        serve: bool,
        /// The address the demo's server listens on (loopback; with
        /// --serve the default port is 7878, else any free port).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
    /// Users (admin).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Catalog and datasets.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Jobs.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Review jobs held for human review (reviewers).
    #[command(subcommand)]
    Review(review::ReviewCommand),
    /// Feedback on datasets and rectification tasks, with deadlines.
    #[command(subcommand)]
    Feedback(feedback::FeedbackCommand),
    /// Applications for conditional data and their decisions (art. 20).
    #[command(subcommand)]
    Application(application::ApplicationCommand),
    /// Data-use agreements (art. 21).
    #[command(subcommand)]
    Agreement(agreement::AgreementCommand),
    /// Usage statistics by provider and open category.
    Stats,
    /// Check manifests offline.
    #[command(subcommand)]
    Manifest(manifest::ManifestCommand),
    /// Export, checkpoint and verify the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Verify a release's signature offline.
    Verify(verify::VerifyArgs),
    #[command(hide = true)]
    Sandbox,
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
        Command::Serve(args) => serve::run(args).await,
        Command::Demo {
            data_dir,
            serve,
            bind,
        } => demo::run(data_dir, serve, bind).await,
        Command::User(cmd) => user::run(&client, cmd).await,
        Command::Dataset(cmd) => dataset::run(&client, cmd).await,
        Command::Job(cmd) => job::run(&client, cmd).await,
        Command::Review(cmd) => review::run(&client, cmd).await,
        Command::Feedback(cmd) => feedback::run(&client, cmd).await,
        Command::Application(cmd) => application::run(&client, cmd).await,
        Command::Agreement(cmd) => agreement::run(&client, cmd).await,
        Command::Stats => print::json(&client.stats().await?),
        Command::Manifest(cmd) => manifest::run(cmd),
        Command::Audit(cmd) => audit::run(&client, cmd).await,
        Command::Verify(args) => verify::run(args),
    }
}
