//! `sluice verify`: a release's signature, offline.

use std::path::PathBuf;

use anyhow::Result;

use crate::files;
use crate::print::safe;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The release JSON (as returned by `sluice job result`).
    release: PathBuf,
    /// The platform's public key, hex (from GET /v1/public-key or the key dir's signing.ed25519.pub).
    #[arg(long)]
    public_key: String,
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let body = files::verify_release_file(&args.release, &args.public_key)?;
    println!(
        "release signature verifies: job {}, {} dataset(s), epsilon {}",
        safe(&body.job_id),
        body.datasets.len(),
        body.epsilon_spent
    );
    Ok(())
}
