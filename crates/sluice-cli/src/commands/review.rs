//! `sluice review`: jobs held for human review, and reviewers' decisions.

use anyhow::Result;
use clap::Subcommand;
use sluice_client::Client;

use crate::print::safe;

#[derive(Subcommand)]
pub enum ReviewCommand {
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

pub async fn run(client: &Client, cmd: ReviewCommand) -> Result<()> {
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
