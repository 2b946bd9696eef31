//! `sluice feedback`: reports on datasets, answers and deadline extensions.

use anyhow::Result;
use clap::Subcommand;
use sluice_client::Client;

use crate::print::safe;

#[derive(Subcommand)]
pub enum FeedbackCommand {
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

pub async fn run(client: &Client, cmd: FeedbackCommand) -> Result<()> {
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
