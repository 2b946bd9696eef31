//! `sluice audit`: export the hash-chained log and signed checkpoints, and
//! verify them offline. A checkpoint kept elsewhere detects truncation and
//! rewriting of the log up to its length; the chain detects any changed,
//! deleted, inserted or reordered entry.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sluice_client::Client;
use sluice_store::{AuditEntry, GENESIS, verify_audit_chain};
use sluice_types::audit::SignedCheckpoint;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write the whole log as JSON (admin).
    Export {
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Write a signed checkpoint of the log's current head; keep it elsewhere.
    Checkpoint {
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Verify an exported log, or the log in a stopped server's data dir.
    Verify {
        /// An exported log (JSON).
        log: Option<PathBuf>,
        /// Read the log from this data dir instead (the server must be stopped).
        #[arg(long, conflicts_with = "log")]
        data_dir: Option<PathBuf>,
        /// A checkpoint exported earlier: the log must extend it.
        #[arg(long, requires = "public_key")]
        checkpoint: Option<PathBuf>,
        /// The platform's public key, hex, to verify the checkpoint.
        #[arg(long)]
        public_key: Option<String>,
    },
}

pub async fn run(client: &Client, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Export { output } => {
            let log = client.audit_log().await?;
            std::fs::write(&output, serde_json::to_vec_pretty(&log)?)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("audit log written to {}", output.display());
        }
        AuditCommand::Checkpoint { output } => {
            let cp = client.audit_checkpoint().await?;
            std::fs::write(&output, serde_json::to_vec_pretty(&cp)?)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "checkpoint of {} entries written to {}",
                cp.checkpoint.length,
                output.display()
            );
        }
        AuditCommand::Verify {
            log,
            data_dir,
            checkpoint,
            public_key,
        } => {
            let entries: Vec<AuditEntry> = match (log, data_dir) {
                (Some(path), None) => {
                    let text = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_slice(&text).context("the log is not a valid audit export")?
                }
                (None, Some(dir)) => {
                    let store = sluice_store::Store::open(&dir)
                        .await
                        .context("opening the data dir")?;
                    store.audit_entries().await?
                }
                _ => bail!("give an exported log file or --data-dir"),
            };
            let n = verify_audit_chain(&entries).context("audit log does not verify")?;
            if let Some(path) = checkpoint {
                let text =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let cp: SignedCheckpoint =
                    serde_json::from_slice(&text).context("not a checkpoint")?;
                let key = hex::decode(public_key.expect("clap requires it").trim())
                    .context("public key is not hex")?;
                sluice_crypto::verify_checkpoint(&cp, &key)
                    .context("checkpoint signature does not verify")?;
                check_extends(&entries, &cp)?;
                println!(
                    "audit log verifies: {n} entries, extending the checkpoint of {} entries",
                    cp.checkpoint.length
                );
            } else {
                println!("audit log verifies: {n} entries");
            }
        }
    }
    Ok(())
}

/// The log must contain the checkpoint's entries unchanged.
fn check_extends(entries: &[AuditEntry], cp: &SignedCheckpoint) -> Result<()> {
    let len = cp.checkpoint.length as usize;
    if entries.len() < len {
        bail!(
            "audit log was truncated: it has {} entries but a checkpoint covers {len}",
            entries.len()
        );
    }
    let head = if len == 0 {
        GENESIS
    } else {
        entries[len - 1].hash.as_str()
    };
    if head != cp.checkpoint.head {
        bail!("audit log was rewritten: entry {len} does not match the checkpoint's head");
    }
    Ok(())
}
