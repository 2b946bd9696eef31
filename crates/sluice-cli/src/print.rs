//! Human-readable output.

use sluice_types::api::VersionAdded;
use sluice_types::release::Cell;
use sluice_types::{CatalogEntry, ReleaseBody};

pub fn version_added(v: &VersionAdded) {
    let r = &v.report;
    println!("published version {} of {}", v.version, v.dataset);
    println!(
        "quality: {} rows, {} duplicate rows, {} nulls, {} unit(s) over the row limit",
        r.rows,
        r.duplicate_rows,
        r.total_nulls(),
        r.units_over_max_rows
    );
    for c in &r.columns {
        if c.nulls + c.out_of_bounds + c.out_of_domain + c.duplicate_values > 0 {
            println!(
                "  {}: {} nulls, {} out of bounds, {} out of domain, {} duplicates (first rows {:?})",
                c.name,
                c.nulls,
                c.out_of_bounds,
                c.out_of_domain,
                c.duplicate_values,
                c.first_offending_rows
            );
        }
    }
}

pub fn catalog(entries: &[CatalogEntry]) {
    for e in entries {
        println!(
            "{:20} {:13} {:8} {:10} {} — {}",
            e.name,
            e.open_category.as_str(),
            e.format.as_str(),
            e.update_frequency,
            e.provider,
            e.title
        );
    }
    if entries.is_empty() {
        println!("no datasets found");
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A model parameter: four significant digits, whatever its magnitude
/// (a coefficient per unit of income can be 1e-6).
fn fmt_sig(x: f64) -> String {
    if x == 0.0 || (1e-2..1e6).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn key_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn release(body: &ReleaseBody) {
    println!("{} (job {})", body.title, body.job_id);
    let widths: Vec<usize> = body
        .outputs
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let keys = body.outputs.rows.iter().filter_map(|r| match r.get(i) {
                Some(Cell::Key(v)) => Some(key_text(v).len()),
                _ => None,
            });
            keys.fold(c.name.len().max(8), usize::max)
        })
        .collect();
    let header: Vec<String> = body
        .outputs
        .columns
        .iter()
        .zip(&widths)
        .map(|(c, w)| match c.kind {
            sluice_types::release::ColumnKind::GroupKey => format!("{:>w$}", c.name, w = *w),
            _ => format!("{:>30}", c.name),
        })
        .collect();
    println!("  {}", header.join(" "));
    for row in &body.outputs.rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| match cell {
                Cell::Key(v) => format!("{:>w$}", key_text(v), w = *w),
                Cell::Noisy { value, ci95 } => {
                    format!(
                        "{:>30}",
                        format!(
                            "{} [{}, {}]",
                            fmt_num(*value),
                            fmt_num(ci95[0]),
                            fmt_num(ci95[1])
                        )
                    )
                }
                Cell::Derived { value } => format!("{:>30}", fmt_sig(*value)),
                Cell::Quantile {
                    value,
                    rank_error95,
                } => format!(
                    "{:>30}",
                    format!("{} (rank +/- {})", fmt_num(*value), fmt_num(*rank_error95))
                ),
            })
            .collect();
        println!("  {}", cells.join(" "));
    }
    println!("  (values are differentially private; brackets are 95% confidence intervals)");
    if body
        .outputs
        .rows
        .iter()
        .flatten()
        .any(|c| matches!(c, Cell::Derived { .. }))
    {
        println!(
            "  (model parameters are computed from noised gradients; their error depends on the data, so no interval is given)"
        );
    }
    let has_quantile = body
        .outputs
        .rows
        .iter()
        .flatten()
        .any(|c| matches!(c, Cell::Quantile { .. }));
    if has_quantile {
        println!(
            "  (a quantile's rank error: with 95% confidence, its position among the group's values is off by at most that many rows)"
        );
    }
    for c in &body.outputs.columns {
        if let Some(e) = c.epsilon {
            println!("  epsilon for {}: {}", c.name, e);
        }
    }
    println!("  epsilon spent: {}", body.epsilon_spent);
    for d in &body.datasets {
        println!("  cite: {}", d.citation);
    }
}

pub fn estimate(e: &sluice_types::api::EstimateView) {
    if !e.accepted {
        println!("rejected:");
        for r in &e.reasons {
            println!("  - {r}");
        }
        return;
    }
    let Some(est) = &e.estimate else { return };
    println!(
        "accepted: costs exactly epsilon {} (delta {}), {} row(s)",
        est.epsilon, est.delta, est.rows
    );
    if let Some(t) = est.key_threshold {
        println!(
            "  group keys without a public domain: released only where the noisy row count exceeds {t} (this is what delta pays for)"
        );
    }
    for c in &est.columns {
        match (&c.aggregate, c.std_dev, c.ci95_halfwidth, &c.note) {
            (None, ..) => println!("  {}: group key (public domain, exact)", c.name),
            (Some(f), Some(sd), Some(h), _) => println!(
                "  {}: {f}, epsilon {}, noise sd {sd:.3}, 95% interval +/- {h:.3}",
                c.name,
                c.epsilon.map(|e| e.to_string()).unwrap_or_default()
            ),
            (Some(f), _, _, note) => println!(
                "  {}: {f}, epsilon {}, {}",
                c.name,
                c.epsilon.map(|e| e.to_string()).unwrap_or_default(),
                note.as_deref().unwrap_or("")
            ),
        }
    }
    if let Some(plan) = &e.plan {
        println!("  plan: {plan}");
    }
    println!("  manifest digest: {}", e.manifest_digest);
}
