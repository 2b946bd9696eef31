//! The table-driven DP SQL corpus (`corpus/queries.toml`) over the PUMS
//! sample and a generated tax dataset joined on the person id.
//!
//! Accepted queries: the exact aggregates are computed once, then noise is
//! drawn 400 times; every aggregate cell's reported 95% interval must
//! cover the truth (the same SQL run raw by DataFusion) as often as a 95%
//! interval would except with probability 1e-9 (exact binomial tail),
//! pooled per query and per cell, and the estimate must equal the charge.
//! Rejected queries must give their expected reason.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde::Deserialize;
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::release::{Cell, ColumnKind};
use sluice_types::sandbox::{QueryTask, SandboxTable};

use crate::execute::Exact;
use sluice_types::schema::DatasetSchema;

const REPETITIONS: usize = 400;

/// Draws for sourced entries (there are many, mostly simple): the binomial
/// bound below adapts to the number of draws.
const SOURCED_REPETITIONS: usize = 100;

/// The chance that correct 95% intervals fail one query's check: over the
/// whole corpus, a false alarm about once in ten million runs.
const FALSE_ALARM: f64 = 1e-9;

/// The fewest hits in `n` draws that intervals covering the truth 95% of
/// the time fall below with probability at most `alpha` (exact binomial
/// lower tail, summed in log space).
fn min_hits(n: usize, alpha: f64) -> usize {
    let (ln_p, ln_q) = (0.95f64.ln(), 0.05f64.ln());
    let mut ln_choose = 0.0; // ln C(n, k)
    let mut tail = 0.0;
    for k in 0..=n {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        tail += (ln_choose + k as f64 * ln_p + (n - k) as f64 * ln_q).exp();
        if tail > alpha {
            return k;
        }
    }
    n
}

#[derive(Deserialize)]
struct Corpus {
    query: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    sql: String,
    #[serde(default)]
    reject: Option<String>,
    #[serde(default)]
    post: bool,
    /// The same answer, without noise, in SQL DataFusion can run (e.g. a
    /// VARIANCE(DISTINCT x), which it does not implement, over a SELECT
    /// DISTINCT subquery); the query itself when absent.
    #[serde(default)]
    truth_sql: Option<String>,
    #[serde(default = "default_epsilon")]
    epsilon: f64,
    #[serde(default)]
    delta: Option<f64>,
    /// Where the query comes from: "<label>: <file> (<url>)".
    #[serde(default)]
    source: Option<String>,
}

impl Entry {
    /// The source's label: its text before ": ".
    fn source_label(&self) -> Option<&str> {
        self.source
            .as_deref()
            .map(|s| s.split(": ").next().unwrap_or(s).trim())
    }
}

/// Accepted and refused sourced queries per source label, and the SQL of
/// every refused one: docs/dp-sql.md lists both, and must match.
#[derive(Default)]
struct Sourced {
    counts: std::collections::BTreeMap<String, (usize, usize)>,
    refused: Vec<String>,
}

impl Sourced {
    fn record(&mut self, entry: &Entry) {
        if let Some(label) = entry.source_label() {
            let c = self.counts.entry(label.to_owned()).or_default();
            if entry.reject.is_some() {
                c.1 += 1;
                self.refused.push(entry.sql.clone());
            } else {
                c.0 += 1;
            }
        }
    }

    /// The table docs/dp-sql.md holds between its corpus-sources markers.
    fn table(&self) -> String {
        let mut t = String::from("| source | accepted | refused |\n|---|---|---|\n");
        for (label, (a, r)) in &self.counts {
            t.push_str(&format!("| {label} | {a} | {r} |\n"));
        }
        t
    }

    fn check_docs(&self) {
        let docs = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dp-sql.md"),
        )
        .unwrap();
        let between = |start: &str, end: &str| -> String {
            let from = docs.find(start).map(|i| i + start.len());
            let to = docs.find(end);
            match (from, to) {
                (Some(a), Some(b)) if a <= b => docs[a..b].trim().to_owned(),
                _ => String::new(),
            }
        };
        let table = between("<!-- corpus-sources -->", "<!-- /corpus-sources -->");
        assert_eq!(
            table,
            self.table().trim(),
            "docs/dp-sql.md's table of sourced corpus queries is not the corpus's; it should read:\n{}",
            self.table()
        );
        let refusals = between("<!-- sourced-refusals -->", "<!-- /sourced-refusals -->");
        let missing: Vec<&String> = self
            .refused
            .iter()
            .filter(|q| !refusals.contains(q.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/dp-sql.md must list every refused sourced query with its reason; missing: {missing:#?}"
        );
    }
}

fn default_epsilon() -> f64 {
    1.0
}

fn pums_schema() -> DatasetSchema {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/pums.toml"),
    )
    .unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["schema"].clone().try_into().unwrap()
}

fn tax_schema() -> DatasetSchema {
    toml::from_str(
        r#"
        max_rows_per_unit = 2
        id_space = "person"
        [[columns]]
        name = "pid"
        role = "privacy_unit"
        type = "int"
        [[columns]]
        name = "paid"
        type = "int"
        lower = 0
        upper = 1000
        [[columns]]
        name = "region"
        type = "text"
        domain = ["north", "south"]
        "#,
    )
    .unwrap()
}

/// PUMS as stored (pid as text, as after pseudonymisation), columns in schema order.
fn write_pums(dir: &Path) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/PUMS_pid.csv"),
    )
    .unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let schema = pums_schema();
    let columns: Vec<ArrayRef> = schema
        .columns
        .iter()
        .map(|c| {
            let i = header.iter().position(|h| *h == c.name).unwrap();
            if c.name == "pid" {
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r[i]).collect::<Vec<_>>(),
                )) as ArrayRef
            } else {
                Arc::new(Int64Array::from(
                    rows.iter()
                        .map(|r| r[i].parse::<f64>().unwrap() as i64)
                        .collect::<Vec<_>>(),
                ))
            }
        })
        .collect();
    let batch = RecordBatch::try_new(crate::session::arrow_schema(&schema), columns).unwrap();
    let path = dir.join("pums.parquet");
    crate::tests::write_parquet(&path, &batch);
    path.to_string_lossy().into_owned()
}

/// Tax rows for two persons in three, a second row for every fifth, ids beyond PUMS too.
fn write_tax(dir: &Path) -> String {
    let (mut pid, mut paid, mut region) = (Vec::new(), Vec::new(), Vec::new());
    for p in 1..=1200i64 {
        if p % 3 == 0 {
            continue;
        }
        for r in 0..if p % 5 == 0 { 2 } else { 1 } {
            pid.push(p.to_string());
            paid.push((p * 37 + r * 11) % 900);
            region.push(if p % 2 == 0 { "north" } else { "south" });
        }
    }
    let batch = RecordBatch::try_new(
        crate::session::arrow_schema(&tax_schema()),
        vec![
            Arc::new(StringArray::from(pid)) as ArrayRef,
            Arc::new(Int64Array::from(paid)),
            Arc::new(StringArray::from(region)),
        ],
    )
    .unwrap();
    let path = dir.join("tax.parquet");
    crate::tests::write_parquet(&path, &batch);
    path.to_string_lossy().into_owned()
}

/// A public lookup table (open data): education code → level and years.
fn educ_levels_schema() -> DatasetSchema {
    toml::from_str(
        r#"
        max_rows_per_unit = 1
        id_space = "none"
        [[columns]]
        name = "educ"
        type = "int"
        unique = true
        lower = 1
        upper = 16
        [[columns]]
        name = "level"
        type = "text"
        domain = ["school", "college", "graduate"]
        [[columns]]
        name = "years"
        type = "int"
        lower = 0
        upper = 25
        "#,
    )
    .unwrap()
}

/// Codes 1..=14 only, so a LEFT JOIN leaves codes 15 and 16 unmatched.
fn write_educ_levels(dir: &Path) -> String {
    let codes: Vec<i64> = (1..=14).collect();
    let level: Vec<&str> = codes
        .iter()
        .map(|c| match c {
            ..=9 => "school",
            10..=13 => "college",
            _ => "graduate",
        })
        .collect();
    let years: Vec<i64> = codes.iter().map(|c| c + 4).collect();
    let batch = RecordBatch::try_new(
        crate::session::arrow_schema(&educ_levels_schema()),
        vec![
            Arc::new(Int64Array::from(codes)) as ArrayRef,
            Arc::new(StringArray::from(level)),
            Arc::new(Int64Array::from(years)),
        ],
    )
    .unwrap();
    let path = dir.join("educ_levels.parquet");
    crate::tests::write_parquet(&path, &batch);
    path.to_string_lossy().into_owned()
}

fn json_of(v: &ScalarValue) -> Option<serde_json::Value> {
    match v {
        ScalarValue::Int64(Some(i)) => Some(serde_json::json!(i)),
        ScalarValue::Int32(Some(i)) => Some(serde_json::json!(i)),
        // FLOOR/CEIL keys: whole floats, released as integers.
        ScalarValue::Float64(Some(f)) if f.fract() == 0.0 => Some(serde_json::json!(*f as i64)),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(serde_json::json!(s)),
        ScalarValue::Boolean(Some(b)) => Some(serde_json::json!(b)),
        _ => None,
    }
}

fn number_of(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Int64(Some(i)) => Some(*i as f64),
        ScalarValue::UInt64(Some(i)) => Some(*i as f64),
        ScalarValue::Float64(Some(f)) => Some(*f),
        _ => None,
    }
}

/// The same SQL run raw: key tuple → aggregate values, by output position.
async fn truth(
    sql: &str,
    tables: &[SandboxTable],
    keys: &[usize],
) -> HashMap<Vec<serde_json::Value>, Vec<Option<f64>>> {
    let ctx = SessionContext::new();
    crate::session::register_aggregate_aliases(&ctx);
    for t in tables {
        ctx.register_parquet(t.name.as_str(), &t.path, ParquetReadOptions::default())
            .await
            .unwrap();
    }
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = HashMap::new();
    for b in batches {
        for row in 0..b.num_rows() {
            let values: Vec<ScalarValue> = (0..b.num_columns())
                .map(|c| ScalarValue::try_from_array(b.column(c).as_ref(), row).unwrap())
                .collect();
            // Groups with a NULL key are never released (keys come from domains).
            let Some(key) = keys
                .iter()
                .map(|k| json_of(&values[*k]))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            out.insert(key, values.iter().map(number_of).collect());
        }
    }
    out
}

#[tokio::test]
async fn corpus_queries_are_accepted_with_covering_intervals_or_rejected_with_their_reason() {
    let corpus: Corpus = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/queries.toml"))
            .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tables = vec![
        SandboxTable {
            name: "pums".into(),
            path: write_pums(dir.path()),
            schema: pums_schema(),
            // One row per person, as ingest would verify: the corpus runs
            // the plan without the bounding window.
            bound_verified: true,
            public: false,
            in_bounds: vec![],
        },
        SandboxTable {
            name: "tax".into(),
            path: write_tax(dir.path()),
            schema: tax_schema(),
            bound_verified: true,
            public: false,
            in_bounds: vec![],
        },
        SandboxTable {
            name: "educ_levels".into(),
            path: write_educ_levels(dir.path()),
            schema: educ_levels_schema(),
            bound_verified: false,
            public: true,
            in_bounds: vec![],
        },
    ];
    let (mut accepted, mut rejected) = (0, 0);
    let mut wrong = Vec::new();
    let mut sourced = Sourced::default();
    for entry in &corpus.query {
        sourced.record(entry);
        let task = QueryTask {
            query: entry.sql.clone(),
            tables: tables.clone(),
            epsilon: Epsilon::from_f64(entry.epsilon).unwrap(),
            delta: entry
                .delta
                .map(|d| Delta::from_f64(d).unwrap())
                .unwrap_or_default(),
            split: Default::default(),
        };
        let analysis = crate::analyze(&task).await;
        if let Some(reason) = &entry.reject {
            match analysis {
                Ok(_) => wrong.push(format!("accepted but should be rejected: {}", entry.sql)),
                Err(r) if !r.0.iter().any(|m| m.contains(reason.as_str())) => wrong.push(format!(
                    "{}: {:?} should mention {reason:?}",
                    entry.sql, r.0
                )),
                Err(_) => rejected += 1,
            }
            continue;
        }
        let analysis = match analysis {
            Ok(a) => a,
            Err(r) => {
                wrong.push(format!("{}: rejected: {r}", entry.sql));
                continue;
            }
        };
        accepted += 1;
        // Estimate equals charge, to the last unit.
        let estimate = analysis.estimate().unwrap();
        assert_eq!(estimate.epsilon, task.epsilon, "{}", entry.sql);
        let shares: u64 = analysis
            .measurements
            .iter()
            .map(|m| m.epsilon.units())
            .sum();
        assert_eq!(shares, task.epsilon.units(), "{}", entry.sql);

        let (a, cells, exact) = crate::execute::exact_for_test(&task).await;
        let first = crate::execute::release(&a, &cells, exact.clone()).unwrap();
        assert_eq!(first.epsilon, task.epsilon);
        assert_eq!(first.delta, task.delta);
        assert_eq!(estimate.delta, task.delta);
        // A quantile's rank error is what the estimate promised.
        for (c, col) in estimate.columns.iter().enumerate() {
            if let Some(t) = col.rank_error95 {
                for row in &first.rows {
                    assert!(
                        matches!(row[c], Cell::Quantile { rank_error95, .. } if rank_error95 == t),
                        "{}: column {c}",
                        entry.sql
                    );
                }
            }
        }
        if entry.post {
            continue;
        }
        let keys: Vec<usize> = first
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == ColumnKind::GroupKey)
            .map(|(i, _)| i)
            .collect();
        let selected_keys = a
            .outputs
            .iter()
            .filter(|o| matches!(o, crate::analyze::Output::Key { .. }))
            .count();
        if selected_keys < a.group_keys.len() {
            // Rows whose keys are not all selected cannot be matched to the
            // raw answer's rows: acceptance and charge only, as with `post`.
            continue;
        }
        let truth = truth(
            entry.truth_sql.as_deref().unwrap_or(&entry.sql),
            &tables,
            &keys,
        )
        .await;
        // With key selection, released rows are a data-dependent subset of
        // the cells: find each row's cell by its keys (all selected).
        let cell_by_key: HashMap<Vec<serde_json::Value>, usize> = cells
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let key = a
                    .outputs
                    .iter()
                    .filter_map(|o| match o {
                        crate::analyze::Output::Key { key, .. } => {
                            Some(crate::execute::domain_json(&k[*key]))
                        }
                        _ => None,
                    })
                    .collect();
                (key, i)
            })
            .collect();
        let mut per_cell: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
        let mut gaps: HashMap<(usize, usize), QuantileGap> = HashMap::new();
        let repetitions = if entry.source.is_some() {
            SOURCED_REPETITIONS
        } else {
            REPETITIONS
        };
        for _ in 0..repetitions {
            let out = crate::execute::release(&a, &cells, exact.clone()).unwrap();
            for (r, row) in out.rows.iter().enumerate() {
                let key: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| match &row[*k] {
                        Cell::Key(v) => v.clone(),
                        _ => panic!("key column is noisy"),
                    })
                    .collect();
                let r = if a.key_selection.is_some() {
                    cell_by_key[&key]
                } else {
                    r
                };
                let true_row = truth.get(&key);
                for (c, cell) in row.iter().enumerate() {
                    if let Cell::Quantile {
                        value,
                        rank_error95,
                    } = cell
                    {
                        let gap = gaps.entry((r, c)).or_insert_with(|| {
                            let (values, candidates, alpha) = quantile_inputs(&a, &exact, c, r);
                            QuantileGap::new(values, candidates, alpha)
                        });
                        let hit = gap.gap(*value) <= *rank_error95;
                        let e = per_cell.entry((r, c)).or_default();
                        e.0 += usize::from(hit);
                        e.1 += 1;
                        continue;
                    }
                    let Cell::Noisy { ci95, .. } = cell else {
                        continue;
                    };
                    let agg = out.columns[c].aggregate.as_deref().unwrap_or_default();
                    let t = match true_row {
                        // SQL's SUM of no rows is NULL; the DP sum of no rows is 0 plus noise.
                        Some(values) => values[c].or(matches!(agg, "sum").then_some(0.0)),
                        // Empty groups: counts and sums are 0; ratios are undefined.
                        None if matches!(agg, "count" | "sum") => Some(0.0),
                        None => None,
                    };
                    let Some(t) = t else { continue };
                    let hit = ci95[0] - 1e-6 <= t && t <= ci95[1] + 1e-6;
                    let e = per_cell.entry((r, c)).or_default();
                    e.0 += usize::from(hit);
                    e.1 += 1;
                }
            }
        }
        if a.key_selection.is_none() {
            check_quantile_values_match_raw_sql(&entry.sql, &a, &exact, &first, &keys, &truth);
        }
        if a.key_selection.is_some() {
            // A key near the threshold is released when its noise is high,
            // so its interval is checked unconditionally: a draw that does
            // not release it is not a miss, a released miss is.
            for e in per_cell.values_mut() {
                *e = (repetitions - (e.1 - e.0), repetitions);
            }
        }
        let inside: usize = per_cell.values().map(|e| e.0).sum();
        let total: usize = per_cell.values().map(|e| e.1).sum();
        // Outputs over several aggregates state no interval: nothing to check.
        let stated = first
            .rows
            .iter()
            .flatten()
            .any(|c| matches!(c, Cell::Noisy { .. } | Cell::Quantile { .. }));
        assert!(total > 0 || !stated, "{}: no cell was checked", entry.sql);
        if total == 0 {
            continue;
        }
        let pooled = inside as f64 / total as f64;
        eprintln!("{pooled:.3} of {total}: {}", entry.sql);
        assert!(
            inside >= min_hits(total, FALSE_ALARM),
            "{}: intervals covered the truth {pooled:.3} of the time",
            entry.sql
        );
        let cells_checked = per_cell.len() as f64;
        for ((r, c), (hit, n)) in per_cell {
            assert!(
                hit >= min_hits(n, FALSE_ALARM / cells_checked),
                "{}: row {r} column {c} covered {hit}/{n}",
                entry.sql
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} corpus entries are wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        accepted + rejected >= 150 && accepted >= 70 && rejected >= 70,
        "{accepted} accepted, {rejected} rejected"
    );
    sourced.check_docs();
}

/// A quantile output's exact inputs in cell `cell`: the clamped values the
/// mechanism scored, its candidates and its level.
fn quantile_inputs<'a>(
    a: &'a crate::Analysis,
    exact: &'a [Exact],
    column: usize,
    cell: usize,
) -> (&'a [f64], &'a [f64], f64) {
    let crate::analyze::Output::Aggregate {
        agg: crate::Aggregate::Quantile { quantile },
        ..
    } = &a.outputs[column]
    else {
        panic!("column {column} is not a quantile");
    };
    let Exact::Values(cells) = &exact[*quantile] else {
        panic!("a quantile measured totals");
    };
    let crate::MeasurementKind::Quantile {
        candidates, alpha, ..
    } = &a.measurements[*quantile].kind
    else {
        panic!("not a quantile measurement");
    };
    (&cells[cell], candidates, *alpha)
}

/// How much worse a released value's quantile score is than the best
/// candidate's, in rows (what `rank_error95` bounds), for one cell.
struct QuantileGap {
    sorted: Vec<f64>,
    alpha: f64,
    best: f64,
}

impl QuantileGap {
    fn new(values: &[f64], candidates: &[f64], alpha: f64) -> QuantileGap {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut q = QuantileGap {
            sorted,
            alpha,
            best: 0.0,
        };
        q.best = candidates
            .iter()
            .map(|c| q.score(*c))
            .fold(f64::INFINITY, f64::min);
        q
    }

    fn score(&self, c: f64) -> f64 {
        let lt = self.sorted.partition_point(|v| *v < c) as f64;
        let gt = (self.sorted.len() - self.sorted.partition_point(|v| *v <= c)) as f64;
        ((1.0 - self.alpha) * lt - self.alpha * gt).abs()
    }

    fn gap(&self, released: f64) -> f64 {
        self.score(released) - self.best
    }
}

/// The values a quantile was chosen from are the group's values as raw SQL
/// sees them: their exact MIN, MAX or interpolated percentile equals what
/// DataFusion computes on the raw data.
fn check_quantile_values_match_raw_sql(
    sql: &str,
    a: &crate::Analysis,
    exact: &[Exact],
    first: &sluice_types::release::ReleasedOutputs,
    keys: &[usize],
    truth: &HashMap<Vec<serde_json::Value>, Vec<Option<f64>>>,
) {
    for (r, row) in first.rows.iter().enumerate() {
        let key: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| match &row[*k] {
                Cell::Key(v) => v.clone(),
                _ => panic!("key column is noisy"),
            })
            .collect();
        for (c, cell) in row.iter().enumerate() {
            if !matches!(cell, Cell::Quantile { .. }) {
                continue;
            }
            let func = first.columns[c].aggregate.as_deref().unwrap_or_default();
            if func.starts_with("approx") {
                continue;
            }
            let (values, _, alpha) = quantile_inputs(a, exact, c, r);
            let Some(Some(expected)) = truth.get(&key).map(|t| t[c]) else {
                assert!(values.is_empty(), "{sql}: an empty group has values");
                continue;
            };
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            let position = alpha * (sorted.len() - 1) as f64;
            let (below, above) = (position.floor() as usize, position.ceil() as usize);
            let exact_value =
                sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64);
            assert!(
                (exact_value - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                "{sql}: row {r} column {c}: the mechanism's values give {exact_value}, raw SQL {expected}"
            );
        }
    }
}
