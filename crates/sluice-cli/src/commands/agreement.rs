//! `sluice agreement`: the data-use agreements approved applications made.

use anyhow::Result;
use clap::Subcommand;
use sluice_client::Client;

use crate::print::{self, safe};

#[derive(Subcommand)]
pub enum AgreementCommand {
    List,
    Show { id: String },
}

pub async fn run(client: &Client, cmd: AgreementCommand) -> Result<()> {
    match cmd {
        AgreementCommand::List => {
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
        AgreementCommand::Show { id } => print::json(&client.agreement(&id).await?)?,
    }
    Ok(())
}
