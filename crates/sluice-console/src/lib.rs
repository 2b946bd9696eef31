//! The web console's presentation: page templates (askama, escaped by
//! default), the view models they render, and the static assets.
//!
//! This crate reads no data and decides no access: `sluice-server`'s
//! console routes get every value from the API's own handlers (the same
//! authorization, object rules and audit as the JSON API) and hand the
//! answers here to be rendered. Everything a page shows is escaped; no
//! template marks a value safe.

pub mod assets;
mod chart;
mod format;
mod pages;

pub use chart::Chart;
pub use format::number;
pub use pages::*;
