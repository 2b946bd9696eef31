//! Human-readable output. Everything that came from a server goes through
//! [`safe`] (or [`safe_lines`], [`json`]) before it reaches the terminal.

use std::borrow::Cow;

use sluice_types::api::VersionAdded;
use sluice_types::release::Cell;
use sluice_types::{CatalogEntry, ReleaseBody};

/// Whether `c` could act on a terminal instead of being shown: C0 and C1
/// controls (ANSI escape sequences, newlines, carriage returns), DEL, line
/// and paragraph separators, and invisible formatting characters
/// (bidirectional overrides and the like).
fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}')
        || sluice_types::text::is_invisible_format(c)
}

fn escape_into(out: &mut String, c: char) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units) {
        out.push_str(&format!("\\u{unit:04x}"));
    }
}

/// Server text made safe to print: every character that could act on the
/// terminal is written as a JSON-style escape (`\u001b`, `\u000a`), so a
/// value can neither recolour the screen, move the cursor, reorder text nor
/// fake a line of output. Other text is unchanged.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acts_on_terminal(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`safe`] for multi-line text whose line breaks are its own (pretty JSON,
/// CSV): lines stay lines (a CR before a LF is dropped), everything else
/// that could act on the terminal is escaped.
pub fn safe_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| safe(line.strip_suffix('\r').unwrap_or(line)).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints a server value as pretty JSON. Its strings' line breaks are
/// escaped by JSON already; the escapes [`safe`] adds are valid JSON, so the
/// output still parses.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", safe_lines(&serde_json::to_string_pretty(value)?));
    Ok(())
}

pub fn version_added(v: &VersionAdded) {
    let r = &v.report;
    println!(
        "published version {} of {}",
        safe(&v.version),
        safe(&v.dataset)
    );
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
                safe(&c.name),
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
            safe(&e.name),
            e.open_category.as_str(),
            e.format.as_str(),
            safe(&e.update_frequency),
            safe(&e.provider),
            safe(&e.title)
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
        serde_json::Value::String(s) => safe(s).into_owned(),
        other => safe(&other.to_string()).into_owned(),
    }
}

pub fn release(body: &ReleaseBody) {
    println!("{} (job {})", safe(&body.title), safe(&body.job_id));
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
            keys.fold(safe(&c.name).len().max(8), usize::max)
        })
        .collect();
    let header: Vec<String> = body
        .outputs
        .columns
        .iter()
        .zip(&widths)
        .map(|(c, w)| match c.kind {
            sluice_types::release::ColumnKind::GroupKey
            | sluice_types::release::ColumnKind::Constant => {
                format!("{:>w$}", safe(&c.name), w = *w)
            }
            _ => format!("{:>30}", safe(&c.name)),
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
            println!("  epsilon for {}: {}", safe(&c.name), e);
        }
    }
    println!("  epsilon spent: {}", body.epsilon_spent);
    for d in &body.datasets {
        println!("  cite: {}", safe(&d.citation));
    }
}

pub fn estimate(e: &sluice_types::api::EstimateView) {
    if !e.accepted {
        println!("rejected:");
        for r in &e.reasons {
            println!("  - {}", safe(r));
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
            (None, ..) => println!("  {}: group key (public domain, exact)", safe(&c.name)),
            (Some(f), Some(sd), Some(h), _) => println!(
                "  {}: {}, epsilon {}, noise sd {sd:.3}, 95% interval +/- {h:.3}",
                safe(&c.name),
                safe(f),
                c.epsilon.map(|e| e.to_string()).unwrap_or_default()
            ),
            (Some(f), _, _, note) => println!(
                "  {}: {}, epsilon {}, {}",
                safe(&c.name),
                safe(f),
                c.epsilon.map(|e| e.to_string()).unwrap_or_default(),
                safe(note.as_deref().unwrap_or(""))
            ),
        }
    }
    if let Some(plan) = &e.plan {
        println!("  plan: {}", safe(plan));
    }
    println!("  manifest digest: {}", safe(&e.manifest_digest));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_cannot_act_on_the_terminal() {
        assert_eq!(safe("plain é €"), "plain é €");
        assert_eq!(safe("a\u{1b}[31mred"), "a\\u001b[31mred");
        assert_eq!(safe("x\nfake line"), "x\\u000afake line");
        assert_eq!(safe("\u{9b}2J\u{7f}"), "\\u009b2J\\u007f");
        assert_eq!(safe("abc\u{202e}fed"), "abc\\u202efed");
        assert_eq!(safe("tag\u{e0041}"), "tag\\udb40\\udc41");
        assert_eq!(safe_lines("a,b\r\n\"\u{1b}c\"\r\n"), "a,b\n\"\\u001bc\"\n");
        // Pretty JSON stays JSON with the same value.
        let v = serde_json::json!({"name": "a\u{1b}\u{9b}\u{202e}\u{e0041}b"});
        let text = safe_lines(&serde_json::to_string_pretty(&v).unwrap());
        assert!(!text.chars().any(|c| acts_on_terminal(c) && c != '\n'));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }
}
