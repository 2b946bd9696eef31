//! `sluice user`: accounts (admin) and who a token belongs to.

use anyhow::Result;
use clap::Subcommand;
use sluice_client::Client;
use sluice_types::Role;

use crate::print::safe;

#[derive(Subcommand)]
pub enum UserCommand {
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

pub async fn run(client: &Client, cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create { name, role } => {
            let created = client.create_user(&name, role).await?;
            println!(
                "created {} ({}) with id {}",
                safe(&created.user.name),
                created.user.role.as_str(),
                safe(&created.user.id)
            );
            println!("token (shown once): {}", safe(&created.token));
        }
        UserCommand::Close { name, reason } => {
            let r = client.close_user(&name, &reason).await?;
            println!(
                "closed {}'s access; {} job(s) cancelled",
                safe(&name),
                r.jobs_cancelled
            );
        }
        UserCommand::Me => {
            let me = client.me().await?;
            println!(
                "{} ({}), id {}",
                safe(&me.name),
                me.role.as_str(),
                safe(&me.id)
            );
        }
    }
    Ok(())
}
