//! `sluice application`: applications for conditional data and the
//! providers' decisions; an approval creates a data-use agreement.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use sluice_client::Client;

use crate::print::{self, safe};

#[derive(Subcommand)]
pub enum ApplicationCommand {
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

fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}

pub async fn run(client: &Client, cmd: ApplicationCommand) -> Result<()> {
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
