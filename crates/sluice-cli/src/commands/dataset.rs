//! `sluice dataset`: the catalog, publishing and downloading, quality
//! reports, budgets, and a provider's controls (suspend, resume, withdraw,
//! revoke, review policy).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use sluice_client::{Client, SearchFilter};
use sluice_types::api::DatasetDescriptor;

use crate::print::{self, safe};

#[derive(Subcommand)]
pub enum DatasetCommand {
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

pub async fn run(client: &Client, cmd: DatasetCommand) -> Result<()> {
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
