use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::release::Cell;
use sluice_types::sandbox::{QueryTask, SandboxTable};
use sluice_types::schema::{ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DomainValue};

use crate::execute::Exact;
use crate::{analyze, execute};

/// Writes a batch as a Parquet file and returns its path.
pub(crate) fn write_parquet(path: &std::path::Path, batch: &RecordBatch) -> String {
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    path.to_string_lossy().into_owned()
}

/// Asserts that the analysis rejects `task` with a reason containing `reason`.
async fn assert_rejected(task: &QueryTask, reason: &str) {
    let r = analyze(task).await.unwrap_err();
    assert!(
        r.0.iter().any(|m| m.contains(reason)),
        "{}: {:?} should mention {reason:?}",
        task.query,
        r.0
    );
}

fn column(name: &str, role: ColumnRole, ty: ColumnType) -> ColumnSpec {
    ColumnSpec::new(name, role, ty)
}

fn schema(max_rows: u32) -> DatasetSchema {
    let mut sex = column("sex", ColumnRole::QuasiIdentifier, ColumnType::Int);
    sex.domain = Some(vec![DomainValue::Int(1), DomainValue::Int(0)]);
    let mut income = column("income", ColumnRole::Attribute, ColumnType::Int);
    income.lower = Some(0.0);
    income.upper = Some(1000.0);
    DatasetSchema {
        max_rows_per_unit: max_rows,
        id_space: "default".into(),
        columns: vec![
            column("pid", ColumnRole::PrivacyUnit, ColumnType::Text),
            sex,
            income,
            column("city", ColumnRole::Attribute, ColumnType::Text),
            column("debt", ColumnRole::Attribute, ColumnType::Int),
        ],
    }
}

/// Unit "a" has 5 rows (sex 1, income 2000 → clamped to 1000); units b..e one row each.
fn write_table(dir: &std::path::Path) -> String {
    let pid = ["a", "a", "a", "a", "a", "b", "c", "d", "e"];
    let sex = [1, 1, 1, 1, 1, 0, 0, 1, 0];
    let income = [2000, 2000, 2000, 2000, 2000, 10, 20, 30, 40];
    let batch = RecordBatch::try_new(
        crate::session::arrow_schema(&schema(1)),
        vec![
            Arc::new(StringArray::from(pid.to_vec())) as ArrayRef,
            Arc::new(Int64Array::from(sex.to_vec())),
            Arc::new(Int64Array::from(income.to_vec())),
            Arc::new(StringArray::from(vec!["x"; 9])),
            Arc::new(Int64Array::from(vec![1; 9])),
        ],
    )
    .unwrap();
    let path = dir.join("t.parquet");
    write_parquet(&path, &batch)
}

/// A second provider's table: tax records, two per person at most.
fn tax_schema(id_space: &str) -> DatasetSchema {
    let mut paid = column("paid", ColumnRole::Attribute, ColumnType::Int);
    paid.lower = Some(0.0);
    paid.upper = Some(100.0);
    let mut region = column("region", ColumnRole::Attribute, ColumnType::Text);
    region.domain = Some(vec![
        DomainValue::Text("north".into()),
        DomainValue::Text("south".into()),
    ]);
    DatasetSchema {
        max_rows_per_unit: 2,
        id_space: id_space.into(),
        columns: vec![
            column("pid", ColumnRole::PrivacyUnit, ColumnType::Text),
            paid,
            region,
        ],
    }
}

/// Unit a: 3 tax rows (one over its declared 2); b: 1; c: 2; z: 1 (not in people).
fn write_tax(dir: &std::path::Path) -> String {
    let batch = RecordBatch::try_new(
        crate::session::arrow_schema(&tax_schema("default")),
        vec![
            Arc::new(StringArray::from(vec!["a", "a", "a", "b", "c", "c", "z"])) as ArrayRef,
            Arc::new(Int64Array::from(vec![50, 50, 50, 10, 20, 500, 7])),
            Arc::new(StringArray::from(vec![
                "north", "north", "south", "south", "north", "north", "south",
            ])),
        ],
    )
    .unwrap();
    let path = dir.join("tax.parquet");
    write_parquet(&path, &batch)
}

fn join_task(query: &str, people: &str, tax: &str, id_space: &str, eps: f64) -> QueryTask {
    let mut t = task(query, people, 1, eps);
    t.tables.push(SandboxTable {
        name: "tax".into(),
        path: tax.into(),
        schema: tax_schema(id_space),
        bound_verified: false,
        public: false,
        in_bounds: vec![],
    });
    t
}

#[tokio::test]
async fn joins_on_the_privacy_unit_bound_the_product_and_others_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (people, tax) = (write_table(dir.path()), write_tax(dir.path()));
    // people k = 1, tax k = 2 → joined k = 2.
    let q = "SELECT t.region, COUNT(*) AS n, SUM(t.paid) AS s FROM people p JOIN tax t ON p.pid = t.pid GROUP BY t.region";
    let a = analyze(&join_task(q, &people, &tax, "default", 1.0))
        .await
        .unwrap();
    assert_eq!(a.max_rows_per_unit, 2);
    assert_eq!(
        a.measurements
            .iter()
            .map(|m| m.l1_sensitivity)
            .collect::<Vec<_>>(),
        vec![2, 200]
    );
    let out = execute(&join_task(q, &people, &tax, "default", 1000.0))
        .await
        .unwrap();
    // Joined rows per unit (people has one row per unit after its own bound in the join):
    // a has 5 people rows x 3 tax rows = 15 joined rows, bounded to 2; b: 1; c: 2; z: none.
    // north: a (<=2 of its rows, which are north or south), c (2: 20 and 500→100).
    let n_north = noisy(&out.rows[0][1]).0;
    let n_south = noisy(&out.rows[1][1]).0;
    assert_eq!(n_north + n_south, 5.0, "2 (a) + 1 (b) + 2 (c)");
    let total = noisy(&out.rows[0][2]).0 + noisy(&out.rows[1][2]).0;
    // a contributes 2 x 50, b 10, c 20 + 100 (clamped).
    assert!((total - 230.0).abs() < 5.0, "{total}");

    for (q, reason) in [
        (
            "SELECT COUNT(*) FROM people p JOIN tax t ON p.city = t.region",
            "JOIN must be on the privacy units (p.pid = t.pid)",
        ),
        (
            "SELECT COUNT(*) FROM people p LEFT JOIN tax t ON p.pid = t.pid",
            "Left JOIN is not supported",
        ),
        (
            "SELECT COUNT(*) FROM people p, tax t WHERE p.pid = t.pid",
            "JOIN must be on the privacy units",
        ),
        (
            "SELECT COUNT(*) FROM people p JOIN tax t ON p.pid = t.pid AND t.paid > random()",
            "random() is not deterministic",
        ),
    ] {
        assert_rejected(&join_task(q, &people, &tax, "default", 1.0), reason).await;
    }
    let r = analyze(&join_task(q, &people, &tax, "other_space", 1.0))
        .await
        .unwrap_err();
    assert!(
        r.0.iter()
            .any(|m| m.contains("different identifier spaces")),
        "{:?}",
        r.0
    );
}

pub(crate) fn task(query: &str, path: &str, max_rows: u32, eps: f64) -> QueryTask {
    QueryTask {
        query: query.into(),
        tables: vec![SandboxTable {
            name: "people".into(),
            path: path.into(),
            schema: schema(max_rows),
            bound_verified: false,
            public: false,
            in_bounds: vec![],
        }],
        epsilon: Epsilon::from_f64(eps).unwrap(),
        delta: Delta::ZERO,
        split: Default::default(),
    }
}

async fn rejected(query: &str) -> Vec<String> {
    match analyze(&task(query, "/nonexistent", 1, 1.0)).await {
        Ok(a) => panic!("{query} accepted: {}", a.describe()),
        Err(r) => r.0,
    }
}

#[tokio::test]
async fn rejections_name_their_reason() {
    let cases: &[(&str, &str)] = &[
        ("SELECT * FROM people", "rows are never released"),
        ("SELECT income FROM people", "rows are never released"),
        (
            "SELECT SUM(debt) FROM people",
            "column \"debt\" has no declared bounds, so SUM(people.debt) has unbounded sensitivity",
        ),
        ("SELECT AVG(debt) FROM people", "unbounded sensitivity"),
        (
            "SELECT city, COUNT(*) FROM people GROUP BY city",
            "no declared public domain",
        ),
        (
            "SELECT pid, COUNT(*) FROM people GROUP BY pid",
            "pseudonyms are never released",
        ),
        (
            "SELECT SUM(city) FROM people",
            "could not be planned: Function 'sum' failed to match any signature",
        ),
        (
            "SELECT SUM(pid) FROM people",
            "failed to match any signature",
        ),
        (
            "SELECT bit_and(income) FROM people",
            "aggregate bit_and is not supported yet",
        ),
        (
            "SELECT COUNT(*) FROM people WHERE random() > 0.5",
            "random() is not deterministic",
        ),
        (
            "SELECT COUNT(*) FROM people WHERE income IN (SELECT income FROM people)",
            "must compare the privacy unit",
        ),
        (
            "SELECT COUNT(*) FROM people a JOIN people b ON a.city = b.city",
            "JOIN must be on the privacy units",
        ),
        ("SELECT COUNT(*) FROM nosuch", "could not be planned"),
        ("CREATE TABLE x (a INT)", "only SELECT"),
        (
            "INSERT INTO people VALUES ('z', 1, 1, 'x', 1)",
            "only SELECT",
        ),
        ("SELECT 1", "rows are never released"),
        (
            "SELECT sex FROM people GROUP BY sex",
            "every group key has a public domain (declared, or derived from the schema): its answer is that domain",
        ),
        (
            "SELECT COUNT(*) * random() FROM people",
            "output count(*) * random(): random() is not deterministic",
        ),
        (
            "SELECT concat('n = ', COUNT(*)) FROM people",
            "concat() is not supported in an output",
        ),
        (
            "SELECT COUNT(*) FROM people GROUP BY sex ORDER BY sex",
            "ORDER BY a column that is not selected",
        ),
    ];
    for (q, reason) in cases {
        let reasons = rejected(q).await;
        assert!(
            reasons.iter().any(|r| r.contains(reason)),
            "{q}: {reasons:?} should mention {reason:?}"
        );
    }
}

#[tokio::test]
async fn every_reason_is_listed_at_once() {
    let reasons =
        rejected("SELECT city, SUM(debt), bit_or(income) FROM people GROUP BY city").await;
    assert_eq!(reasons.len(), 3, "{reasons:?}");
}

#[tokio::test]
async fn budget_split_is_exact_and_shared_measurements_are_reused() {
    let a = analyze(&task(
        "SELECT sex, COUNT(*), SUM(income), AVG(income) FROM people GROUP BY sex",
        "/nonexistent",
        3,
        1.0,
    ))
    .await
    .unwrap();
    // count(*), sum(income), count(income): three measurements.
    assert_eq!(a.measurements.len(), 3);
    let total: u64 = a.measurements.iter().map(|m| m.epsilon.units()).sum();
    assert_eq!(total, Epsilon::from_f64(1.0).unwrap().units());
    let sens: Vec<u64> = a.measurements.iter().map(|m| m.l1_sensitivity).collect();
    assert_eq!(sens, vec![3, 3000, 3]);
}

/// Within 4 half-widths of the truth: fails with probability about 0.05^4.
fn near(cell: &Cell, truth: f64) {
    let (v, ci) = noisy(cell);
    assert!(
        (v - truth).abs() <= 4.0 * (ci[1] - v).max(1.0),
        "{v} vs {truth} ({ci:?})"
    );
}

fn noisy(c: &Cell) -> (f64, [f64; 2]) {
    match c {
        Cell::Noisy { value, ci95 } => (*value, *ci95),
        other => panic!("expected a noisy cell, got {other:?}"),
    }
}

#[tokio::test]
async fn bounds_contributions_and_clamps_then_releases_every_domain_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    // At epsilon 1000 the noise is almost always 0 for counts (scale 0.003).
    let out = execute(&task(
        "SELECT sex, COUNT(*) AS n, SUM(income) AS s, AVG(income) FROM people GROUP BY sex",
        &path,
        2,
        1000.0,
    ))
    .await
    .unwrap();
    assert_eq!(out.rows.len(), 2);
    // Keys in sorted domain order: 0 then 1.
    assert_eq!(out.rows[0][0], Cell::Key(serde_json::json!(0)));
    assert_eq!(out.rows[1][0], Cell::Key(serde_json::json!(1)));
    // sex 0: units b, c, e → 3 rows, income 70.
    assert_eq!(noisy(&out.rows[0][1]).0, 3.0);
    near(&out.rows[0][2], 70.0);
    // sex 1: unit a bounded to 2 rows (clamped to 1000 each) + unit d (30).
    assert_eq!(noisy(&out.rows[1][1]).0, 3.0);
    near(&out.rows[1][2], 2030.0);
    // AVG's interval is not symmetric: check the value lies inside it and near the truth.
    let (avg, ci) = noisy(&out.rows[1][3]);
    assert!(ci[0] <= avg && avg <= ci[1] && (avg - 2030.0 / 3.0).abs() <= 4.0 * (ci[1] - ci[0]));
    assert_eq!(out.epsilon, Epsilon::from_f64(1000.0).unwrap());
    assert_eq!(out.columns[1].name, "n");
}

#[tokio::test]
async fn where_filters_rows_before_aggregation() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let out = execute(&task(
        "SELECT COUNT(*) FROM people WHERE income < 35",
        &path,
        5,
        1000.0,
    ))
    .await
    .unwrap();
    assert_eq!(out.rows.len(), 1);
    assert_eq!(noisy(&out.rows[0][0]).0, 3.0);
}

#[tokio::test]
async fn answers_fall_in_their_interval_most_of_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let t = task("SELECT COUNT(*), SUM(income) FROM people", &path, 1, 1.0);
    let (truth_count, truth_sum) = (5.0, 1000.0 + 100.0);
    let mut inside = [0; 2];
    let runs = 100;
    for _ in 0..runs {
        let out = execute(&t).await.unwrap();
        for (i, truth) in [truth_count, truth_sum].into_iter().enumerate() {
            let (_, ci) = noisy(&out.rows[0][i]);
            inside[i] += usize::from(ci[0] <= truth && truth <= ci[1]);
        }
    }
    // Binomial(100, >=0.95) falls below 78 with probability below 1e-9.
    assert!(inside.iter().all(|&n| n >= 78), "{inside:?}");
}

#[tokio::test]
async fn expressions_get_derived_bounds_or_a_reason() {
    let sens = |q: &'static str| async move {
        let a = analyze(&task(q, "/nonexistent", 3, 1.0))
            .await
            .unwrap_or_else(|r| panic!("{q}: {r}"));
        a.measurements
            .iter()
            .map(|m| m.l1_sensitivity)
            .collect::<Vec<_>>()
    };
    // k = 3 rows per unit; income in [0, 1000].
    // Integer-valued: summed exactly, in integer units.
    assert_eq!(
        sens("SELECT SUM(income + income) FROM people").await,
        vec![3 * 2000]
    );
    // Fractional: in fixed point, 2^30 steps over the magnitude.
    assert_eq!(
        sens("SELECT SUM(income + 0.5) FROM people").await,
        vec![3 * 2001 * (1 << 19)]
    );
    assert_eq!(sens("SELECT SUM(income) FROM people").await, vec![3000]);
    assert_eq!(
        sens("SELECT COUNT(DISTINCT pid) FROM people").await,
        vec![3]
    );
    assert_eq!(sens("SELECT COUNT(city) FROM people").await, vec![3]);
    // A unit's k rows add or remove at most k distinct values.
    assert_eq!(
        sens("SELECT SUM(DISTINCT income) FROM people").await,
        vec![3000]
    );
    assert_eq!(
        sens("SELECT AVG(DISTINCT income), VARIANCE(DISTINCT income) FROM people").await,
        vec![3000, 3, 3 * 1_000_000]
    );
    for q in [
        "SELECT SUM(CASE WHEN sex = 1 THEN income ELSE 0 END) FROM people",
        "SELECT AVG(income / 10.0) FROM people",
        "SELECT SUM(COALESCE(income, 0) - 500) FROM people",
        "SELECT SUM(CAST(income AS DOUBLE) * -2) FROM people",
        "SELECT SUM(abs(income - 700)) FROM people",
    ] {
        analyze(&task(q, "/nonexistent", 1, 1.0))
            .await
            .unwrap_or_else(|r| panic!("{q}: {r}"));
    }
    for (q, reason) in [
        (
            "SELECT SUM(income * debt) FROM people",
            "column \"debt\" has no declared bounds",
        ),
        (
            "SELECT SUM(income / (sex - 1)) FROM people",
            "the divisor's bounds include 0",
        ),
        (
            "SELECT SUM(income % 7) FROM people",
            "has no derived bounds",
        ),
        (
            "SELECT SUM(length(city)) FROM people",
            "no bounds can be derived",
        ),
        (
            "SELECT VARIANCE(DISTINCT income - 500) FROM people",
            "its bounds [-500, 500] span zero, where x and -x have one square",
        ),
    ] {
        assert_rejected(&task(q, "/nonexistent", 1, 1.0), reason).await;
    }
}

#[tokio::test]
async fn derived_expressions_and_distinct_counts_execute_with_clamping() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let out = execute(&task(
        "SELECT sex, COUNT(DISTINCT pid), SUM(CASE WHEN income > 25 THEN income * 2 ELSE 0 END) FROM people GROUP BY sex",
        &path,
        2,
        1000.0,
    ))
    .await
    .unwrap();
    // sex 0: units b, c, e; incomes 10, 20, 40 -> only 40 counts, doubled: 80.
    assert_eq!(noisy(&out.rows[0][1]).0, 3.0);
    near(&out.rows[0][2], 80.0);
    // sex 1: units a (2 rows kept, 2000*2 clamped to the derived bound 2000) and d (30*2).
    assert_eq!(noisy(&out.rows[1][1]).0, 2.0);
    near(&out.rows[1][2], 4060.0);

    // Distinct values after clamping to [0, 1000]: a's 2000s are one 1000.
    let out = execute(&task(
        "SELECT sex, SUM(DISTINCT income), AVG(DISTINCT income) FROM people GROUP BY sex",
        &path,
        2,
        1000.0,
    ))
    .await
    .unwrap();
    near(&out.rows[0][1], 70.0);
    near(&out.rows[0][2], 70.0 / 3.0);
    near(&out.rows[1][1], 1030.0);
    near(&out.rows[1][2], 515.0);
}

/// Deterministic pseudo-random numbers for generated data.
pub(crate) struct Lcg(pub(crate) u64);
impl Lcg {
    pub(crate) fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub(crate) type Rows = Vec<(String, i64, i64)>;

/// People: 60 units with 1..=3 rows spread over both sexes, incomes up to
/// 1500 (beyond the bound 1000); plus two heavy units with 40 identical rows
/// each, so that which rows bounding keeps does not change the aggregates.
pub(crate) fn generated_people() -> Rows {
    let mut rng = Lcg(42);
    let mut rows = Vec::new();
    for u in 0..60 {
        for _ in 0..=rng.next(3) {
            rows.push((format!("u{u}"), rng.next(2) as i64, rng.next(1500) as i64));
        }
    }
    for (u, sex) in [("heavy0", 0), ("heavy1", 1)] {
        for _ in 0..40 {
            rows.push((u.to_owned(), sex, 1400));
        }
    }
    rows
}

pub(crate) fn write_people(dir: &std::path::Path, name: &str, rows: &Rows) -> String {
    let batch = RecordBatch::try_new(
        crate::session::arrow_schema(&schema(1)),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            // Cities without a declared domain: keys selected from the data.
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| ["x", "y", "z"][(r.2 % 3) as usize])
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(vec![1; rows.len()])),
        ],
    )
    .unwrap();
    let path = dir.join(format!("{name}.parquet"));
    write_parquet(&path, &batch)
}

/// Tax rows for most generated people: 1 or 2 each, and 5 identical rows
/// (over the declared 2) for each heavy unit.
fn write_generated_tax(dir: &std::path::Path, without: Option<&str>) -> String {
    let mut rng = Lcg(99);
    let mut rows: Vec<(String, i64, &str)> = Vec::new();
    for u in 0..60 {
        if rng.next(4) == 0 {
            continue;
        }
        for _ in 0..=rng.next(2) {
            let paid = rng.next(150) as i64;
            let region = if rng.next(2) == 0 { "north" } else { "south" };
            rows.push((format!("u{u}"), paid, region));
        }
    }
    // Heavy persons' rows must be identical wherever they meet (a union with
    // their people rows clamps both 1400s to the same bound), so that which
    // rows the random bounding keeps cannot change an aggregate.
    for u in ["heavy0", "heavy1"] {
        for _ in 0..5 {
            rows.push((u.to_owned(), 1400, "north"));
        }
    }
    // The same generated rows, less one person's (a neighbouring dataset).
    rows.retain(|r| Some(r.0.as_str()) != without);
    let batch = RecordBatch::try_new(
        crate::session::arrow_schema(&tax_schema("default")),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let path = dir.join(format!(
        "generated_tax_{}.parquet",
        without.unwrap_or("all")
    ));
    write_parquet(&path, &batch)
}

/// Distance per measurement between two runs' exact aggregates: L1 for
/// totals; for a quantile's values, rows added or removed over all cells.
pub(crate) fn l1(a: &[Exact], b: &[Exact]) -> Vec<u64> {
    a.iter()
        .zip(b)
        .map(|pair| match pair {
            (Exact::Totals(x), Exact::Totals(y)) => {
                x.iter().zip(y).map(|(p, q)| p.abs_diff(*q)).sum()
            }
            (Exact::Values(x), Exact::Values(y)) => x
                .iter()
                .zip(y)
                .map(|(p, q)| symmetric_difference(p, q))
                .sum(),
            _ => panic!("measurement kinds differ"),
        })
        .collect()
}

/// Exact aggregates over the union of two runs' cells (keys selected from
/// the data can differ): a cell missing from a run is empty.
pub(crate) fn aligned(
    keys: &[Vec<DomainValue>],
    exact: &[Exact],
    other: &[Vec<DomainValue>],
) -> Vec<Exact> {
    let mut all: Vec<&Vec<DomainValue>> = keys.iter().chain(other).collect();
    all.sort();
    all.dedup();
    let index: HashMap<&Vec<DomainValue>, usize> =
        keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
    exact
        .iter()
        .map(|e| match e {
            Exact::Totals(v) => Exact::Totals(
                all.iter()
                    .map(|k| index.get(*k).map_or(0, |i| v[*i]))
                    .collect(),
            ),
            Exact::Values(v) => Exact::Values(
                all.iter()
                    .map(|k| index.get(*k).map_or_else(Vec::new, |i| v[*i].clone()))
                    .collect(),
            ),
        })
        .collect()
}

fn symmetric_difference(p: &[f64], q: &[f64]) -> u64 {
    let mut counts: HashMap<u64, i64> = HashMap::new();
    for v in p {
        *counts.entry(v.to_bits()).or_default() += 1;
    }
    for v in q {
        *counts.entry(v.to_bits()).or_default() -= 1;
    }
    counts.values().map(|c| c.unsigned_abs()).sum()
}

#[tokio::test]
async fn removing_any_one_unit_moves_each_aggregate_by_at_most_its_sensitivity() {
    let dir = tempfile::tempdir().unwrap();
    let people = generated_people();
    let full = write_people(dir.path(), "full", &people);
    let tax = write_generated_tax(dir.path(), None);
    let queries = [
        // k = 3 from the schema below.
        (
            "SELECT sex, COUNT(*), SUM(income), AVG(income), COUNT(DISTINCT pid) FROM people GROUP BY sex",
            false,
        ),
        (
            "SELECT sex, MEDIAN(income), MAX(income), percentile_cont(income, 0.9) FROM people GROUP BY sex",
            false,
        ),
        (
            "SELECT sex, COUNT(*), SUM(DISTINCT income), AVG(DISTINCT income), VARIANCE(DISTINCT income) FROM people GROUP BY sex",
            false,
        ),
        // Keys selected from the data (costs delta).
        (
            "SELECT city, sex, COUNT(*), SUM(income), MEDIAN(income) FROM people GROUP BY city, sex",
            false,
        ),
        (
            "SELECT COUNT(*), SUM(CASE WHEN sex = 1 THEN income * 2 ELSE income END) FROM people WHERE income > 100",
            false,
        ),
        // A CTE with a derived key (domain from its CASE) and a derived sum.
        (
            "WITH s AS (SELECT pid, CASE WHEN income > 700 THEN 'rich' ELSE 'other' END AS band, income * 2 AS double FROM people) SELECT band, COUNT(*), SUM(double) FROM s GROUP BY band",
            false,
        ),
        // Expression keys with derived domains, and outputs computed after noise.
        (
            "SELECT income / 100 AS band, sex, COUNT(*), SUM(income) * 2 + 1, SUM(income) / COUNT(*) FROM people GROUP BY income / 100, sex",
            false,
        ),
        (
            "SELECT income > 500 AS rich, CASE WHEN sex = 1 THEN 'f' ELSE 'm' END AS s, COUNT(*), POWER(AVG(income), 2) FROM people GROUP BY income > 500, CASE WHEN sex = 1 THEN 'f' ELSE 'm' END",
            false,
        ),
        // A union with tax (k 2): k = 3 + 2.
        (
            "SELECT COUNT(*), SUM(v) FROM (SELECT pid, income AS v FROM people UNION ALL SELECT pid, paid AS v FROM tax) u",
            true,
        ),
        // A semi-join on the person with tax: k stays 3.
        (
            "SELECT COUNT(*), SUM(income) FROM people WHERE pid IN (SELECT pid FROM tax WHERE paid > 10)",
            true,
        ),
        // Joined with tax (k 2): k = 6.
        (
            "SELECT t.region, COUNT(*), SUM(p.income + t.paid) FROM people p JOIN tax t ON p.pid = t.pid GROUP BY t.region",
            true,
        ),
    ];
    let mut units: Vec<String> = people.iter().map(|r| r.0.clone()).collect();
    units.dedup();
    // The heavy units and a random sample of the others.
    let mut rng = Lcg(7);
    let mut chosen: Vec<String> = vec!["heavy0".into(), "heavy1".into()];
    for _ in 0..20 {
        chosen.push(units[rng.next(units.len() as u64) as usize].clone());
    }
    for (q, join) in queries {
        let make = |path: &str, tax: &str| {
            let mut t = task(q, path, 3, 1.0);
            t.tables[0].schema.max_rows_per_unit = 3;
            if q.contains("GROUP BY city") {
                t.delta = Delta::from_f64(1e-6).unwrap();
            }
            if join {
                t.tables.push(SandboxTable {
                    name: "tax".into(),
                    path: tax.to_owned(),
                    schema: tax_schema("default"),
                    bound_verified: false,
                    public: false,
                    in_bounds: vec![],
                });
            }
            t
        };
        let (analysis, base_keys, base) = crate::execute::exact_for_test(&make(&full, &tax)).await;
        let declared: Vec<u64> = analysis
            .measurements
            .iter()
            .map(|m| m.l1_sensitivity)
            .collect();
        for u in &chosen {
            let rest: Rows = people.iter().filter(|r| &r.0 != u).cloned().collect();
            let path = write_people(dir.path(), &format!("without_{u}"), &rest);
            // A neighbour lacks the person in every table.
            let tax_without = write_generated_tax(dir.path(), Some(u));
            let (_, keys, neighbour) =
                crate::execute::exact_for_test(&make(&path, &tax_without)).await;
            let moved = l1(
                &aligned(&base_keys, &base, &keys),
                &aligned(&keys, &neighbour, &base_keys),
            );
            for ((m, d), s) in moved.iter().zip(&declared).zip(&analysis.measurements) {
                assert!(
                    m <= d,
                    "{q}: removing {u} moved {} by {m} > sensitivity {d}",
                    s.describe()
                );
            }
            // Heavy units' income (1400) is beyond the declared bounds, so in
            // no band of income / 100: their rows are in no released key.
            if u.starts_with("heavy") && !q.contains("GROUP BY income / 100") {
                // A heavy unit is bounded to k rows: it moves the count by exactly k.
                assert_eq!(moved[0], declared[0], "{q}: {u}");
            }
        }
    }
}

#[tokio::test]
async fn having_order_by_and_limit_post_process_released_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    // k = 5: sex 0 has 3 rows (b, c, e); sex 1 has 6 (a x5, d).
    let run = |q: &'static str| {
        let path = path.clone();
        async move { execute(&task(q, &path, 5, 1000.0)).await.unwrap() }
    };
    let out = run("SELECT sex, COUNT(*) AS n FROM people GROUP BY sex HAVING COUNT(*) > 4").await;
    assert_eq!(out.rows.len(), 1);
    assert_eq!(out.rows[0][0], Cell::Key(serde_json::json!(1)));
    let out = run("SELECT sex, COUNT(*) AS n FROM people GROUP BY sex ORDER BY n DESC").await;
    let order: Vec<&Cell> = out.rows.iter().map(|r| &r[0]).collect();
    assert_eq!(
        order,
        [
            &Cell::Key(serde_json::json!(1)),
            &Cell::Key(serde_json::json!(0))
        ]
    );
    let out = run(
        "SELECT sex, COUNT(*) AS n FROM people GROUP BY sex ORDER BY sex DESC LIMIT 1 OFFSET 1",
    )
    .await;
    assert_eq!(out.rows.len(), 1);
    assert_eq!(out.rows[0][0], Cell::Key(serde_json::json!(0)));
    // HAVING on an aggregate that is not selected: it is measured (and paid for) too.
    let a = analyze(&task(
        "SELECT sex, AVG(income) FROM people GROUP BY sex HAVING COUNT(*) > 4",
        &path,
        5,
        1.0,
    ))
    .await
    .unwrap();
    assert_eq!(a.measurements.len(), 3, "sum, count(income) and count(*)");
    let out = run("SELECT sex, AVG(income) FROM people GROUP BY sex HAVING COUNT(*) > 4").await;
    assert_eq!(out.rows.len(), 1);
    // A label computed from a released count: text, no interval.
    let out = run(
        "SELECT sex, CASE WHEN COUNT(*) * 0 > 1 THEN 'many' ELSE 'few' END AS size, COUNT(*) > -1000 AS any FROM people GROUP BY sex",
    )
    .await;
    for row in &out.rows {
        assert_eq!(row[1], Cell::Key(serde_json::json!("few")));
        assert_eq!(row[2], Cell::Key(serde_json::json!(true)));
    }
    // DISTINCT on released rows: both cells compute 0, one row remains.
    let out = run("SELECT DISTINCT COUNT(*) * 0 AS z FROM people GROUP BY sex").await;
    assert_eq!(out.rows.len(), 1);
    let out = run("SELECT DISTINCT sex, COUNT(*) * 0 AS z FROM people GROUP BY sex").await;
    assert_eq!(out.rows.len(), 2);
    // HAVING names an output alias that is also a column's name.
    let out = run(
        "SELECT sex, COUNT(*) AS income FROM people GROUP BY sex HAVING income > 4 ORDER BY sex",
    )
    .await;
    assert_eq!(out.rows.len(), 1);
    assert_eq!(out.rows[0][0], Cell::Key(serde_json::json!(1)));
    // The same output twice: the second gets its own name.
    let out = run("SELECT COUNT(*), COUNT(*) FROM people").await;
    let names: Vec<&str> = out.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["count(*)", "COUNT(*) (2)"]);
    for (q, reason) in [
        (
            "SELECT sex, COUNT(*) FROM people GROUP BY sex HAVING random() > 0.5",
            "not deterministic",
        ),
        (
            "SELECT sex, COUNT(*) AS n FROM people GROUP BY sex ORDER BY n + 1",
            "order by output columns",
        ),
    ] {
        assert_rejected(&task(q, &path, 5, 1.0), reason).await;
    }
}

#[tokio::test]
async fn variance_and_stddev_match_the_truth_and_their_intervals_cover_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg(5);
    let rows: Rows = (0..400)
        .map(|u| (format!("p{u}"), (u % 2) as i64, rng.next(1001) as i64))
        .collect();
    let path = write_people(dir.path(), "var", &rows);
    let incomes: Vec<f64> = rows.iter().map(|r| r.2 as f64).collect();
    let n = incomes.len() as f64;
    let mean = incomes.iter().sum::<f64>() / n;
    let var_pop = incomes.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let var_samp = var_pop * n / (n - 1.0);
    let q = "SELECT VAR(income), VAR_POP(income), STDDEV(income), STDDEV_POP(income) FROM people";
    let exact = execute(&task(q, &path, 1, 1000.0)).await.unwrap();
    for (i, truth) in [var_samp, var_pop, var_samp.sqrt(), var_pop.sqrt()]
        .into_iter()
        .enumerate()
    {
        let (v, ci) = noisy(&exact.rows[0][i]);
        assert!(
            (v - truth).abs() / truth < 0.01,
            "column {i}: {v} vs {truth}"
        );
        assert!(ci[0] <= v && v <= ci[1]);
    }
    // Three measurements (sum, squares, count) shared by all four outputs.
    let a = analyze(&task(q, &path, 1, 1.0)).await.unwrap();
    assert_eq!(a.measurements.len(), 3);
    let mut covered = 0;
    let runs = 60;
    for _ in 0..runs {
        let out = execute(&task("SELECT VAR(income) FROM people", &path, 1, 3.0))
            .await
            .unwrap();
        let (_, ci) = noisy(&out.rows[0][0]);
        covered += usize::from(ci[0] <= var_samp && var_samp <= ci[1]);
    }
    // At exactly 95% coverage, fewer than 51 of 60 happens with probability ~1e-3.
    assert!(covered >= 51, "covered {covered}/{runs}");
}

#[tokio::test]
async fn subqueries_and_ctes_derive_bounds_and_domains() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let q = "WITH young AS (SELECT pid, income, CASE WHEN income < 25 THEN 'low' ELSE 'high' END AS band FROM people WHERE sex = 0) \
             SELECT band, COUNT(*) AS n, SUM(income) AS s FROM young GROUP BY band";
    let out = execute(&task(q, &path, 1, 1000.0)).await.unwrap();
    // Domain {high, low} in sorted order; sex 0 rows: 10, 20 (low) and 40 (high).
    assert_eq!(out.rows[0][0], Cell::Key(serde_json::json!("high")));
    assert_eq!(out.rows[1][0], Cell::Key(serde_json::json!("low")));
    assert_eq!(noisy(&out.rows[0][1]).0, 1.0);
    assert_eq!(noisy(&out.rows[1][1]).0, 2.0);
    near(&out.rows[1][2], 30.0);
    let a = analyze(&task(
        "SELECT SUM(x) FROM (SELECT pid, income * 2 AS x FROM people) s",
        &path,
        3,
        1.0,
    ))
    .await
    .unwrap();
    // The derived column is an integer in [0, 2000]: summed exactly, scale 1.
    assert_eq!(a.measurements[0].l1_sensitivity, 3 * 2000);
    for (q, reason) in [
        (
            "SELECT COUNT(*) FROM (SELECT income FROM people) s",
            "must select the privacy unit (pid)",
        ),
        (
            "SELECT SUM(x) FROM (SELECT pid, debt AS x FROM people) s",
            "has no declared bounds",
        ),
        (
            "SELECT c, COUNT(*) FROM (SELECT pid, city AS c FROM people) s GROUP BY c",
            "no declared public domain",
        ),
        (
            "SELECT COUNT(*) FROM (SELECT pid, random() AS r FROM people) s",
            "not deterministic",
        ),
    ] {
        assert_rejected(&task(q, &path, 1, 1.0), reason).await;
    }
}

#[tokio::test]
async fn the_budget_split_can_be_set_per_measurement() {
    let mut t = task(
        "SELECT COUNT(*), SUM(income), AVG(income) FROM people",
        "/nonexistent",
        1,
        1.0,
    );
    t.split = [
        ("count(*)".to_owned(), 2.0),
        ("sum(people.income)".to_owned(), 6.0),
    ]
    .into_iter()
    .collect();
    let a = analyze(&t).await.unwrap();
    let shares: Vec<String> = a
        .measurements
        .iter()
        .map(|m| format!("{}={}", m.describe(), m.epsilon))
        .collect();
    // Weights 2, 6 and (unnamed) 1: exact shares of 1.0 adding up to it.
    assert_eq!(
        shares,
        [
            "count(*)=0.222222223",
            "sum(people.income)=0.666666666",
            "count(people.income)=0.111111111"
        ]
    );
    t.split = [("sum(income)".to_owned(), 1.0)].into_iter().collect();
    let r = analyze(&t).await.unwrap_err();
    assert!(
        r.0[0].contains("privacy.split names \"sum(income)\" but this query's measurements are"),
        "{:?}",
        r.0
    );
}

#[tokio::test]
async fn bounding_is_skipped_only_for_versions_verified_at_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let q = "SELECT sex, COUNT(*) FROM people GROUP BY sex";
    let mut t = task(q, &path, 2, 1000.0);
    let a = analyze(&t).await.unwrap();
    assert!(!a.bound_verified && a.describe().contains("(enforced in the plan)"));
    // Unit a has 5 rows: enforced, sex 1 counts 2 (a) + 1 (d).
    assert_eq!(noisy(&execute(&t).await.unwrap().rows[1][1]).0, 3.0);
    // Claimed verified (as ingest would only claim when no unit exceeds k):
    // the window is gone from the plan, so all 5 rows of a are counted.
    t.tables[0].bound_verified = true;
    let a = analyze(&t).await.unwrap();
    assert!(a.bound_verified && a.describe().contains("(verified at ingest)"));
    assert_eq!(noisy(&execute(&t).await.unwrap().rows[1][1]).0, 6.0);
    // A join is verified only when both sides are.
    let tax = write_tax(dir.path());
    let mut j = join_task(
        "SELECT COUNT(*) FROM people p JOIN tax t ON p.pid = t.pid",
        &path,
        &tax,
        "default",
        1.0,
    );
    j.tables[0].bound_verified = true;
    assert!(!analyze(&j).await.unwrap().bound_verified);
    j.tables[1].bound_verified = true;
    assert!(analyze(&j).await.unwrap().bound_verified);
}

#[tokio::test]
async fn keys_without_a_domain_are_released_only_above_the_reported_threshold() {
    let dir = tempfile::tempdir().unwrap();
    // City "x" (income 3) has 300 persons; city "y" (income 4) one person.
    let mut rows: Rows = (0..300).map(|u| (format!("u{u}"), 0, 3)).collect();
    rows.push(("rare".into(), 1, 4));
    let path = write_people(dir.path(), "cities", &rows);
    let mut t = task(
        "SELECT city, COUNT(*) AS n, SUM(income) FROM people GROUP BY city",
        &path,
        1,
        1.0,
    );
    t.delta = Delta::from_f64(1e-6).unwrap();
    let a = analyze(&t).await.unwrap();
    let threshold = a.key_selection.as_ref().unwrap().threshold;
    let estimate = a.estimate().unwrap();
    assert_eq!(estimate.key_threshold, Some(threshold));
    assert_eq!(estimate.delta, t.delta);
    assert!(a.describe().contains(&format!("exceeds {threshold}")));
    let (a, keys, exact) = crate::execute::exact_for_test(&t).await;
    for _ in 0..300 {
        let out = crate::execute::release(&a, &keys, exact.clone()).unwrap();
        assert_eq!(out.delta, t.delta);
        assert!(out.mechanism.contains(&format!("exceeds {threshold}")));
        let released: Vec<&Cell> = out.rows.iter().map(|r| &r[0]).collect();
        // The one-person city never appears; the large one always does.
        assert_eq!(released, vec![&Cell::Key(serde_json::json!("x"))]);
    }

    // Keys alone: the same selection, by the count they hide, charged ε.
    let mut keys_only = t.clone();
    keys_only.query = "SELECT city FROM people GROUP BY city".into();
    let (a, keys, exact) = crate::execute::exact_for_test(&keys_only).await;
    assert_eq!(a.measurements.len(), 1);
    assert_eq!(a.measurements[0].epsilon, t.epsilon);
    for _ in 0..100 {
        let out = crate::execute::release(&a, &keys, exact.clone()).unwrap();
        assert_eq!(out.rows, vec![vec![Cell::Key(serde_json::json!("x"))]]);
    }

    // The count is the thresholded one: with a threshold above the common
    // key's count, nothing is released at all (not even the big key).
    let mut few: Rows = (0..5).map(|u| (format!("u{u}"), 0, 3)).collect();
    few.push(("rare".into(), 1, 4));
    let path = write_people(dir.path(), "few", &few);
    t.tables[0].path = path;
    let (a, keys, exact) = crate::execute::exact_for_test(&t).await;
    assert!(a.key_selection.as_ref().unwrap().threshold > 5);
    let mut released = 0;
    for _ in 0..300 {
        released += crate::execute::release(&a, &keys, exact.clone())
            .unwrap()
            .rows
            .len();
    }
    // P(noisy 5 > threshold) is below delta by construction.
    assert_eq!(released, 0);
}

#[tokio::test]
async fn key_selection_needs_delta_and_delta_needs_key_selection() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let q = "SELECT city, COUNT(*) FROM people GROUP BY city";
    assert_rejected(&task(q, &path, 1, 1.0), "needs privacy.delta > 0").await;
    let mut t = task(
        "SELECT sex, COUNT(*) FROM people GROUP BY sex",
        &path,
        1,
        1.0,
    );
    t.delta = Delta::from_f64(1e-7).unwrap();
    assert_rejected(&t, "remove privacy.delta").await;
    let mut t = task(q, &path, 1, 1.0);
    t.delta = Delta::from_f64(1e-3).unwrap();
    assert_rejected(&t, "above the limit").await;
    let mut t = task(
        "SELECT pid, COUNT(*) FROM people GROUP BY pid",
        &path,
        1,
        1.0,
    );
    t.delta = Delta::from_f64(1e-7).unwrap();
    assert_rejected(&t, "is an identifier").await;
}

#[tokio::test]
async fn a_public_key_declared_unique_but_repeated_stops_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let mut code = column("code", ColumnRole::Attribute, ColumnType::Text);
    code.unique = true;
    let mut weight = column("weight", ColumnRole::Attribute, ColumnType::Int);
    weight.lower = Some(0.0);
    weight.upper = Some(10.0);
    let lookup = DatasetSchema {
        max_rows_per_unit: 1,
        id_space: "none".into(),
        columns: vec![code, weight],
    };
    let batch = RecordBatch::try_new(
        crate::session::arrow_schema(&lookup),
        vec![
            Arc::new(StringArray::from(vec!["x", "x"])) as ArrayRef,
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap();
    let lookup_path = write_parquet(&dir.path().join("lookup.parquet"), &batch);
    let mut t = task(
        "SELECT SUM(l.weight) FROM people p JOIN lookup l ON p.city = l.code",
        &path,
        1,
        1.0,
    );
    t.tables.push(SandboxTable {
        name: "lookup".into(),
        path: lookup_path,
        schema: lookup,
        bound_verified: false,
        public: true,
        in_bounds: vec![],
    });
    // Accepted on the schemas (the key is declared unique) ...
    analyze(&t).await.unwrap();
    // ... but every private row would match two public rows: refused.
    match execute(&t).await {
        Err(crate::ExecError::Rejected(r)) => {
            assert!(
                r.0[0].contains("declared unique but has repeated values"),
                "{r}"
            )
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // The same join with a private table on a non-unit column stays refused.
    t.tables[1].public = false;
    assert_rejected(&t, "JOIN").await;
}

/// Writes `rows` (pid, sex, income) with the unit-row index ingest stores:
/// positions 1.. within each unit in the given order, NULL without a unit.
fn write_indexed_people(dir: &std::path::Path, rows: &[(Option<&str>, i64, i64)]) -> String {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let declared = crate::session::arrow_schema(&schema(2));
    let mut fields: Vec<Field> = declared
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(
        sluice_types::schema::UNIT_ROW_COLUMN,
        DataType::Int64,
        true,
    ));
    let mut seen: HashMap<&str, i64> = HashMap::new();
    let position: Vec<Option<i64>> = rows
        .iter()
        .map(|r| {
            r.0.map(|u| {
                let p = seen.entry(u).or_default();
                *p += 1;
                *p
            })
        })
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec!["x"; rows.len()])),
            Arc::new(Int64Array::from(vec![1; rows.len()])),
            Arc::new(Int64Array::from(position)),
        ],
    )
    .unwrap();
    write_parquet(&dir.join("indexed.parquet"), &batch)
}

#[tokio::test]
async fn the_stored_unit_row_index_bounds_each_unit_at_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    // Unit a: 5 rows (incomes 100..104 in stored order); b: 1 row; one row without a unit.
    let rows = [
        (Some("a"), 1, 100),
        (Some("a"), 1, 101),
        (Some("a"), 1, 102),
        (Some("a"), 1, 103),
        (Some("a"), 1, 104),
        (Some("b"), 0, 7),
        (None, 0, 900),
    ];
    let path = write_indexed_people(dir.path(), &rows);
    let mut t = task(
        "SELECT sex, COUNT(*), SUM(income) FROM people GROUP BY sex",
        &path,
        2,
        1.0,
    );
    t.tables[0].schema.max_rows_per_unit = 2;
    let (a, keys, exact) = crate::execute::exact_for_test(&t).await;
    assert_eq!(keys.len(), 2);
    // sex 0: b only (the unit-less row is dropped); sex 1: a's first two rows.
    assert_eq!(
        exact,
        vec![Exact::Totals(vec![1, 2]), Exact::Totals(vec![7, 201])],
        "{}",
        a.describe()
    );
    // The query cannot see the index column.
    let t2 = task(
        &format!(
            "SELECT SUM({}) FROM people",
            sluice_types::schema::UNIT_ROW_COLUMN
        ),
        &path,
        2,
        1.0,
    );
    assert!(analyze(&t2).await.is_err());
    assert!(execute(&t2).await.is_err());
    // A subquery over an indexed table reads all of its rows.
    let mut t3 = task(
        "SELECT COUNT(*) FROM people WHERE pid IN (SELECT pid FROM people WHERE income = 104)",
        &path,
        2,
        1.0,
    );
    t3.tables[0].schema.max_rows_per_unit = 2;
    let (_, _, exact) = crate::execute::exact_for_test(&t3).await;
    assert_eq!(exact, vec![Exact::Totals(vec![2])]);
}

#[tokio::test]
async fn clamping_is_skipped_only_for_columns_ingest_verified() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    // Unit a's income is 2000, above the declared 1000: clamped to 1000.
    let q = "SELECT SUM(income) FROM people";
    let clamp_of = |a: &crate::Analysis| {
        a.measurements
            .iter()
            .find_map(|m| match m.kind {
                crate::MeasurementKind::Sum { clamp, .. } => Some(clamp),
                _ => None,
            })
            .unwrap()
    };
    let t = task(q, &path, 1, 1.0);
    let (a, _, exact) = crate::execute::exact_for_test(&t).await;
    assert!(clamp_of(&a));
    assert_eq!(exact, vec![Exact::Totals(vec![1000 + 10 + 20 + 30 + 40])]);
    // Marked verified (here falsely, to show the clamp is really skipped).
    let mut t = task(q, &path, 1, 1.0);
    t.tables[0].in_bounds = vec!["income".into()];
    let (a, _, _) = crate::execute::exact_for_test(&t).await;
    assert!(!clamp_of(&a));
    // A derived expression is verified only if every column it reads is.
    let mut t = task("SELECT SUM(income + debt) FROM people", &path, 1, 1.0);
    t.tables[0].schema.columns[4].lower = Some(0.0);
    t.tables[0].schema.columns[4].upper = Some(5.0);
    t.tables[0].in_bounds = vec!["income".into()];
    assert!(clamp_of(&analyze(&t).await.unwrap()));
    // A union column is verified only if it is in every branch.
    let mut t = task(
        "SELECT SUM(v) FROM (SELECT pid, income AS v FROM people UNION ALL SELECT pid, paid AS v FROM tax) u",
        &path,
        1,
        1.0,
    );
    t.tables.push(SandboxTable {
        name: "tax".into(),
        path: path.clone(),
        schema: tax_schema("default"),
        bound_verified: false,
        public: false,
        in_bounds: vec![],
    });
    t.tables[0].in_bounds = vec!["income".into()];
    assert!(clamp_of(&analyze(&t).await.unwrap()));
    t.tables[1].in_bounds = vec!["paid".into()];
    assert!(!clamp_of(&analyze(&t).await.unwrap()));
}

/// Sample variance and an estimate of its standard error, from the
/// sample's own fourth moment.
fn variance_and_error(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let m2 = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let m4 = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    (m2, ((m4 - m2 * m2) / n).sqrt())
}

#[tokio::test]
async fn integer_valued_sums_release_integers_with_the_noise_of_a_count() {
    use crate::analyze::MeasurementKind;
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let t = task(
        "SELECT COUNT(*), SUM(CASE WHEN income > 500 THEN 1 ELSE 0 END) AS rich, SUM(income / 10 - 1) AS tens FROM people",
        &path,
        1,
        1.0,
    );
    let a = analyze(&t).await.unwrap();
    let sums: Vec<_> = a
        .measurements
        .iter()
        .filter(|m| matches!(m.kind, MeasurementKind::Sum { .. }))
        .collect();
    assert_eq!(sums.len(), 2);
    // Summed exactly: integer units, the integer bound as sensitivity.
    assert!(sums.iter().all(|m| m.fixed_point_scale() == 1.0));
    assert_eq!(sums[0].l1_sensitivity, 1);
    assert_eq!(sums[1].l1_sensitivity, 99);
    let fractional = analyze(&task("SELECT SUM(income / 3.0) FROM people", &path, 1, 1.0))
        .await
        .unwrap();
    assert!(
        fractional.measurements[0].fixed_point_scale() > 1.0,
        "a fractional expression is summed in fixed point"
    );

    let (a, cells, exact) = execute::exact_for_test(&t).await;
    // The exact values are fixed, so the released values vary by the noise only.
    let draws = 100_000;
    let mut noise = [Vec::with_capacity(draws), Vec::with_capacity(draws)];
    for _ in 0..draws {
        let out = execute::release(&a, &cells, exact.clone()).unwrap();
        for (i, released) in noise.iter_mut().enumerate() {
            let (v, _) = noisy(&out.rows[0][i]);
            assert_eq!(v.fract(), 0.0, "an integer count or sum released {v}");
            released.push(v);
        }
        assert_eq!(noisy(&out.rows[0][2]).0.fract(), 0.0);
    }
    for (i, xs) in noise.iter().enumerate() {
        // Sensitivity 1 at its ε share (about ε/3): a count's mechanism.
        let m = &a.measurements[i];
        assert_eq!(m.l1_sensitivity, 1);
        let b = sluice_dp::DiscreteLaplace::calibrate(1, m.epsilon)
            .unwrap()
            .scale();
        let q = (-1.0 / b).exp();
        let optimal = 2.0 * q / (1.0 - q).powi(2);
        let (var, err) = variance_and_error(xs);
        assert!(
            (var - optimal).abs() <= 6.0 * err,
            "column {i}: noise variance {var:.3}, the optimal discrete Laplace's {optimal:.3} (± {err:.3})"
        );
    }
}

#[tokio::test]
async fn a_never_null_column_is_counted_by_the_query_count() {
    let with_avg = |nullable: bool, query: &str| {
        let mut t = task(query, "/nonexistent", 1, 1.0);
        for c in &mut t.tables[0].schema.columns {
            if c.name == "income" {
                c.nullable = nullable;
            }
        }
        t
    };
    let three = "SELECT COUNT(*), SUM(income), AVG(income) FROM people";
    let two = "SELECT COUNT(*), SUM(income) FROM people";
    let shared = analyze(&with_avg(false, three)).await.unwrap();
    let alone = analyze(&with_avg(false, two)).await.unwrap();
    let split = |a: &crate::Analysis| -> Vec<u64> {
        a.measurements.iter().map(|m| m.epsilon.units()).collect()
    };
    // COUNT(*), SUM and AVG cost what COUNT(*) and SUM alone cost.
    assert_eq!(split(&shared), split(&alone));
    assert_eq!(split(&shared).len(), 2);
    let note = shared.estimate().unwrap().columns[2].note.clone().unwrap();
    assert!(
        note.contains("count(*)") && note.contains("measured once"),
        "{note}"
    );
    // COUNT(income) of a never-null column is COUNT(*) too.
    let counted = analyze(&with_avg(
        false,
        "SELECT COUNT(*), COUNT(income) FROM people",
    ))
    .await
    .unwrap();
    assert_eq!(counted.measurements.len(), 1);
    // A nullable column needs its own count.
    let nullable = analyze(&with_avg(true, three)).await.unwrap();
    assert_eq!(nullable.measurements.len(), 3);
}

#[tokio::test]
async fn outputs_computed_after_noise_cost_nothing_and_carry_the_image_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let t = task(
        "SELECT 1 AS one, sex, sex * 10 AS tens, COUNT(*) AS n, 2 * COUNT(*) + 1 AS affine, \
         POWER(SUM(income), 2) AS sq, SUM(income) / COUNT(*) AS mean FROM people GROUP BY sex",
        &path,
        1,
        1.0,
    );
    let plain = analyze(&task(
        "SELECT sex, COUNT(*), SUM(income) FROM people GROUP BY sex",
        &path,
        1,
        1.0,
    ))
    .await
    .unwrap();
    let a = analyze(&t).await.unwrap();
    // The same two measurements, the same split: the expressions are free.
    assert_eq!(a.measurements.len(), plain.measurements.len());
    let out = execute(&t).await.unwrap();
    use sluice_types::release::ColumnKind;
    let kinds: Vec<ColumnKind> = out.columns.iter().map(|c| c.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            ColumnKind::Constant,
            ColumnKind::GroupKey,
            ColumnKind::GroupKey,
            ColumnKind::Aggregate,
            ColumnKind::Aggregate,
            ColumnKind::Aggregate,
            ColumnKind::Aggregate,
        ]
    );
    let count_eps = out.columns[3].epsilon.unwrap();
    assert_eq!(out.columns[4].epsilon, Some(count_eps));
    assert_eq!(
        out.columns[6].epsilon,
        Some(Epsilon::from_f64(1.0).unwrap())
    );
    for row in &out.rows {
        assert_eq!(row[0], Cell::Key(serde_json::json!(1)));
        let Cell::Key(sex) = &row[1] else {
            panic!("{row:?}")
        };
        assert_eq!(
            row[2],
            Cell::Key(serde_json::json!(sex.as_i64().unwrap() * 10))
        );
        // a·X + b maps the count's interval exactly.
        let (n, [lo, hi]) = noisy(&row[3]);
        let (v, ci) = noisy(&row[4]);
        assert_eq!(v, 2.0 * n + 1.0);
        assert_eq!(ci, [2.0 * lo + 1.0, 2.0 * hi + 1.0]);
        // One aggregate through a non-monotone function: the image interval.
        let Cell::Noisy { value: sq, ci95 } = &row[5] else {
            panic!("{:?}", row[5])
        };
        assert!(ci95[0] <= *sq && *sq <= ci95[1] && ci95[0] >= 0.0);
        // Two aggregates: a value with no interval.
        assert!(matches!(
            row[6],
            Cell::Derived { .. } | Cell::Key(serde_json::Value::Null)
        ));
    }
}

#[tokio::test]
async fn expression_keys_get_their_derived_domain_or_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_table(dir.path());
    let domain = |q: &'static str| {
        let path = path.clone();
        async move {
            let a = analyze(&task(q, &path, 5, 1.0))
                .await
                .unwrap_or_else(|r| panic!("{q}: {r}"));
            a.group_keys
                .iter()
                .map(|g| g.domain.clone().expect("a public domain"))
                .collect::<Vec<_>>()
        }
    };
    // income in [0, 1000]: income / 100 is 0..=10.
    let bands: Vec<DomainValue> = (0..=10).map(DomainValue::Int).collect();
    assert_eq!(
        domain("SELECT income / 100 AS band, COUNT(*) FROM people GROUP BY income / 100").await,
        vec![bands.clone()]
    );
    assert_eq!(
        domain("SELECT income > 500, COUNT(*) FROM people GROUP BY income > 500").await,
        vec![vec![DomainValue::Bool(false), DomainValue::Bool(true)]]
    );
    assert_eq!(
        domain("SELECT CASE WHEN income > 500 THEN sex ELSE 7 END AS k, COUNT(*) FROM people GROUP BY 1").await,
        vec![vec![DomainValue::Int(0), DomainValue::Int(1), DomainValue::Int(7)]]
    );
    // CEIL of an integer division: whole numbers, read back as integers.
    assert_eq!(
        domain("SELECT CEIL(income / 100), COUNT(*) FROM people GROUP BY 1").await,
        vec![bands.clone()]
    );
    // An integer column with bounds and no declared domain: its range.
    let mut bounded = task(
        "SELECT income, COUNT(*) FROM people GROUP BY income",
        &path,
        5,
        1.0,
    );
    bounded.tables[0].schema.columns[2].upper = Some(50.0);
    let a = analyze(&bounded).await.unwrap();
    assert_eq!(a.group_keys[0].domain.as_ref().map(Vec::len), Some(51));
    // Every band is released, empty ones included, in order; stored values
    // outside the derived domain (a's 2000) are never a key.
    let out = execute(&task(
        "SELECT income / 100 AS band, COUNT(*) FROM people GROUP BY income / 100",
        &path,
        5,
        1000.0,
    ))
    .await
    .unwrap();
    let keys: Vec<Cell> = out.rows.iter().map(|r| r[0].clone()).collect();
    let expected: Vec<Cell> = (0..=10).map(|i| Cell::Key(serde_json::json!(i))).collect();
    assert_eq!(keys, expected);
    for (q, reason) in [
        (
            "SELECT COUNT(*) FROM people GROUP BY income * 100",
            "every integer from 0 to 100000, 100001 values, more than the limit of 10000",
        ),
        (
            "SELECT COUNT(*) FROM people GROUP BY city || 'x'",
            "no public domain follows from the schema",
        ),
        (
            "SELECT COUNT(*) FROM people GROUP BY income / 7.0",
            "a float expression has no public domain",
        ),
        (
            "SELECT COUNT(*) FROM people GROUP BY upper(pid)",
            "reads an identifier",
        ),
        (
            "SELECT COUNT(*) FROM people GROUP BY income + random()",
            "random() is not deterministic",
        ),
    ] {
        assert_rejected(&task(q, &path, 5, 1.0), reason).await;
    }
}
