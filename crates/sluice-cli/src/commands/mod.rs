//! One module per command group of the clap tree (`sluice <group> ...`):
//! its subcommands' definitions and what they do.

pub mod agreement;
pub mod application;
pub mod audit;
pub mod dataset;
pub mod demo;
pub mod feedback;
pub mod job;
pub mod manifest;
pub mod review;
pub mod serve;
pub mod user;
pub mod verify;
