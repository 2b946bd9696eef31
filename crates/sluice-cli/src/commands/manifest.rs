//! `sluice manifest`: check a manifest and compute its digest offline.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use crate::files::load_manifest;
use crate::print::safe;

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Parse and check a manifest (TOML) without a server; lists every problem.
    Check { manifest: PathBuf },
    /// Print the SHA-256 digest of a manifest's canonical form (what approvals bind to).
    Digest { manifest: PathBuf },
}

pub fn run(cmd: ManifestCommand) -> Result<()> {
    match cmd {
        ManifestCommand::Check { manifest } => {
            let m = load_manifest(&manifest)?;
            println!(
                "manifest ok: \"{}\", {} dataset(s), epsilon {}, digest {}",
                safe(&m.title),
                m.datasets.len(),
                m.privacy.epsilon,
                sluice_crypto::digest_of(&m)
            );
        }
        ManifestCommand::Digest { manifest } => {
            println!("{}", sluice_crypto::digest_of(&load_manifest(&manifest)?))
        }
    }
    Ok(())
}
