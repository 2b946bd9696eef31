//! The budget: the job's ε split over the measurements (equally, or by the
//! manifest's `privacy.split` weights), and the key-selection threshold
//! that its δ buys.

use sluice_types::privacy::{Delta, Epsilon};

use super::analysis::{KeySelection, Measurement};
use crate::error::Rejection;

/// Gives every measurement its share of `epsilon`, exactly (the shares add
/// up to it in ledger units). `split` weighs measurements by their names;
/// one not named weighs 1.
pub(super) fn split_budget(
    measurements: &mut [Measurement],
    epsilon: Epsilon,
    split: &std::collections::BTreeMap<String, f64>,
) -> Result<(), Rejection> {
    let names: Vec<String> = measurements.iter().map(Measurement::describe).collect();
    let unknown: Vec<&String> = split.keys().filter(|k| !names.contains(k)).collect();
    if !unknown.is_empty() {
        return Err(Rejection(vec![format!(
            "privacy.split names {} but this query's measurements are {}",
            quoted(unknown.iter().copied()),
            quoted(names.iter())
        )]));
    }
    let weights: Vec<f64> = names
        .iter()
        .map(|n| split.get(n).copied().unwrap_or(1.0))
        .collect();
    let shares = sluice_dp::split_epsilon_weighted(epsilon, &weights)
        .map_err(|e| Rejection(vec![format!("privacy.split: {e}")]))?;
    for (m, e) in measurements.iter_mut().zip(shares) {
        m.epsilon = e;
    }
    Ok(())
}

fn quoted<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The threshold a key found in the data must pass: from the noise of the
/// row count `count` (after its ε share is set), so that a key of a single
/// unit with at most `k` rows escapes with probability at most `delta`.
pub(super) fn key_selection(
    measurements: &[Measurement],
    count: usize,
    k: u64,
    delta: Delta,
) -> Result<KeySelection, Rejection> {
    let m = &measurements[count];
    let scale = sluice_dp::DiscreteLaplace::calibrate(m.l1_sensitivity, m.epsilon)
        .map_err(|e| Rejection(vec![format!("key selection: {e}")]))?
        .scale();
    let threshold = sluice_dp::key_threshold(scale, k, delta)
        .map_err(|e| Rejection(vec![format!("key selection: {e}")]))?;
    Ok(KeySelection { count, threshold })
}
