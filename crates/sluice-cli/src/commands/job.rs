//! `sluice job`: submit, estimate, follow and fetch jobs and their releases.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sluice_client::Client;

use crate::files::{name_agreements, read_manifest, write_release};
use crate::print::{self, safe};

#[derive(Subcommand)]
pub enum JobCommand {
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

pub async fn run(client: &Client, cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::Submit {
            manifest,
            agreement,
            no_wait,
            output,
        } => {
            let text = name_agreements(&read_manifest(&manifest)?, &agreement)?;
            let job = client.submit_job(&text).await?;
            println!("job {} {}", safe(&job.id), safe(job.state.as_str()));
            if no_wait {
                return Ok(());
            }
            // Follow the job's events (progress on long jobs); poll if the
            // stream is unavailable.
            let mut shown = job.state;
            let job = match client
                .watch_job(&job.id, |v| {
                    if v.state != shown {
                        println!("job {} {}", safe(&v.id), safe(v.state.as_str()));
                        shown = v.state;
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
                    safe(job.state.as_str()),
                    safe(&job.message.unwrap_or_default())
                );
            }
            let release = client.release(&job.id).await?;
            print::release(&release.body);
            if let Some(out) = output {
                write_release(&out, &release)?;
            }
        }
        JobCommand::Estimate {
            manifest,
            agreement,
        } => {
            let text = name_agreements(&read_manifest(&manifest)?, &agreement)?;
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
                safe(j.state.as_str()),
                safe(&j.message.unwrap_or_default())
            );
        }
        JobCommand::List => {
            for j in client.jobs().await? {
                println!(
                    "{} {:9} epsilon {} {}",
                    safe(&j.id),
                    safe(j.state.as_str()),
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
                (Some(out), false) => write_release(&out, &client.release(&id).await?)?,
                (None, false) => print::release(&client.release(&id).await?.body),
            }
        }
    }
    Ok(())
}
