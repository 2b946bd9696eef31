//! Test support shared by the crates' tests, the black-box tests in
//! `tests/e2e` and the benchmarks in `benches/`: a seeded generator
//! ([`Lcg`]), synthetic data with a known model ([`learn`]), dataset
//! fixtures ([`fixtures`]), starting `sluice` processes ([`process`]), bench
//! helpers ([`bench`]) and, behind the `platform` feature, a server in the
//! test process with its users ([`platform`]).
//!
//! A dev-dependency only, and it must not depend on an engine (DataFusion,
//! wasmtime, OpenDP) or on a crate that names one: linking it must cost a
//! test nothing (`tests/e2e/dependencies.rs` checks it). Helpers that need
//! an engine take it as a closure from the caller.

pub mod bench;
pub mod fixtures;
pub mod learn;
#[cfg(feature = "platform")]
pub mod platform;
pub mod process;
mod rng;

use std::path::PathBuf;

pub use rng::{Lcg, seed_from_env};

/// A file of this repository, by its path from the root.
pub fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}
