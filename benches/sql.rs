//! DP SQL overhead: each DP query against the same raw query in DataFusion,
//! on the same generated 10M-row Parquet file, measured in one run.
//! Run: `cargo bench -p sluice-sql --bench sql` (SLUICE_BENCH_ROWS to change
//! the size, SLUICE_BENCH_RUNS the repetitions, SLUICE_BENCH_ONLY to run the
//! workloads whose name contains it). Prints median and p90 of
//! wall time per query and the ratio of medians.
//!
//! The DP side is `sluice_sql::execute`, end to end: planning and analysis,
//! registration, contribution bounding, clamping, aggregation, noise from
//! sluice-dp (calibrated by OpenDP) and the released cells. The raw side is `SessionContext::sql` on
//! a default DataFusion context, collecting the result batches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::sandbox::{QueryTask, SandboxTable};
use sluice_types::schema::{DatasetSchema, UNIT_ROW_COLUMN};

/// A small deterministic generator (the data only has to be the same for
/// both sides).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `rows` rows as ingest stores them: pid (a 32-hex pseudonym), g (0..100),
/// g1/g2 (0..1000 each), x (0..=1000), then the unit-row index; rows of a
/// unit together. `rows_per_unit` = 1: every pid distinct; otherwise each
/// unit has 1..=2·rows_per_unit-1 rows (mean `rows_per_unit`).
fn generate(path: &Path, rows: usize, rows_per_unit: u64) {
    if path.exists() {
        return;
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("pid", DataType::Utf8, true),
        Field::new("g", DataType::Int64, true),
        Field::new("g1", DataType::Int64, true),
        Field::new("g2", DataType::Int64, true),
        Field::new("x", DataType::Int64, true),
        Field::new(UNIT_ROW_COLUMN, DataType::Int64, true),
    ]));
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    let mut rng = Lcg(7);
    let (mut unit, mut left, mut pos) = (0u64, 0u64, 0i64);
    let chunk = 1 << 20;
    let mut done = 0;
    while done < rows {
        let n = chunk.min(rows - done);
        let mut pid = Vec::with_capacity(n);
        let mut position = Vec::with_capacity(n);
        for _ in 0..n {
            if left == 0 {
                unit += 1;
                left = if rows_per_unit == 1 {
                    1
                } else {
                    1 + rng.next(2 * rows_per_unit - 1)
                };
                pos = 0;
            }
            pos += 1;
            position.push(pos);
            left -= 1;
            let h = unit.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            pid.push(format!("{h:016x}{:016x}", h.rotate_left(29) ^ unit));
        }
        let g: Vec<i64> = (0..n).map(|_| rng.next(100) as i64).collect();
        let g1: Vec<i64> = (0..n).map(|_| rng.next(1000) as i64).collect();
        let g2: Vec<i64> = (0..n).map(|_| rng.next(1000) as i64).collect();
        let x: Vec<i64> = (0..n).map(|_| rng.next(1001) as i64).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(pid)) as ArrayRef,
                Arc::new(Int64Array::from(g)),
                Arc::new(Int64Array::from(g1)),
                Arc::new(Int64Array::from(g2)),
                Arc::new(Int64Array::from(x)),
                Arc::new(Int64Array::from(position)),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        done += n;
    }
    w.close().unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn schema(max_rows_per_unit: u32) -> DatasetSchema {
    let domain = |n: i64| (0..n).map(|i| serde_json::json!(i)).collect::<Vec<_>>();
    serde_json::from_value(serde_json::json!({
        "max_rows_per_unit": max_rows_per_unit,
        "id_space": "person",
        "columns": [
            {"name": "pid", "type": "text", "role": "privacy_unit"},
            {"name": "g", "type": "int", "domain": domain(100)},
            {"name": "g1", "type": "int", "domain": domain(1000)},
            {"name": "g2", "type": "int", "domain": domain(1000)},
            {"name": "x", "type": "int", "lower": 0, "upper": 1000},
        ]
    }))
    .unwrap()
}

struct Workload {
    name: &'static str,
    file: PathBuf,
    max_rows_per_unit: u32,
    bound_verified: bool,
    sql: &'static str,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn raw(file: &Path, sql: &str) -> usize {
    let ctx = SessionContext::new();
    ctx.register_parquet("t", file.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    batches.iter().map(|b| b.num_rows()).sum()
}

async fn dp(w: &Workload) -> usize {
    let task = QueryTask {
        query: w.sql.to_owned(),
        tables: vec![SandboxTable {
            name: "t".into(),
            path: w.file.to_string_lossy().into_owned(),
            schema: schema(w.max_rows_per_unit),
            bound_verified: w.bound_verified,
            public: false,
            // As ingest reports for this data: every value within its bounds.
            in_bounds: ["g", "g1", "g2", "x"].map(String::from).to_vec(),
        }],
        epsilon: Epsilon::from_f64(1.0).unwrap(),
        delta: Delta::ZERO,
        split: Default::default(),
    };
    sluice_sql::execute(&task).await.unwrap().rows.len()
}

fn main() {
    let rows: usize = std::env::var("SLUICE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let dir = std::env::temp_dir().join("sluice-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let single = dir.join(format!("one_row_per_unit_{rows}_v2.parquet"));
    let multi = dir.join(format!("three_rows_per_unit_{rows}_v2.parquet"));
    let t = Instant::now();
    generate(&single, rows, 1);
    generate(&multi, rows, 3);
    println!(
        "data: {rows} rows per file in {} ({:.1} s to generate or find)",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    let workloads = [
        Workload {
            name: "GROUP BY COUNT/SUM/AVG, one row per unit (bound verified at ingest)",
            file: single.clone(),
            max_rows_per_unit: 1,
            bound_verified: true,
            sql: "SELECT g, COUNT(*), SUM(x), AVG(x) FROM t GROUP BY g",
        },
        Workload {
            name: "GROUP BY COUNT/SUM/AVG, up to 5 rows per unit, bounded to 3 in the plan",
            file: multi,
            max_rows_per_unit: 3,
            bound_verified: false,
            sql: "SELECT g, COUNT(*), SUM(x), AVG(x) FROM t GROUP BY g",
        },
        Workload {
            name: "GROUP BY releasing 1M cells (g1 x g2), COUNT/SUM",
            file: single,
            max_rows_per_unit: 1,
            bound_verified: true,
            sql: "SELECT g1, g2, COUNT(*), SUM(x) FROM t GROUP BY g1, g2",
        },
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The exact sampler's cost per cell, alone: 1M cells of a count.
    let mechanism =
        sluice_dp::DiscreteLaplace::calibrate(1, Epsilon::from_f64(0.5).unwrap()).unwrap();
    let mut noise_t = Vec::new();
    for _ in 0..runs.min(3) {
        let t = Instant::now();
        mechanism.release(vec![0; 1_000_000]).unwrap();
        noise_t.push(t.elapsed());
    }
    noise_t.sort();
    println!(
        "noise: 1M cells of sluice-dp's exact discrete Laplace (all cores): median {:.0} ms, {:.2} us per cell",
        ms(percentile(&noise_t, 0.5)),
        percentile(&noise_t, 0.5).as_secs_f64() * 1e6 / 1e6
    );
    println!("| workload | raw median | raw p90 | DP median | DP p90 | DP / raw (medians) |");
    println!("|---|---|---|---|---|---|");
    let only = std::env::var("SLUICE_BENCH_ONLY").unwrap_or_default();
    for w in workloads.iter().filter(|w| w.name.contains(only.as_str())) {
        // One warm-up each, then alternate so both see the same machine state.
        rt.block_on(raw(&w.file, w.sql));
        rt.block_on(dp(w));
        let (mut raw_t, mut dp_t) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            let n_raw = rt.block_on(raw(&w.file, w.sql));
            raw_t.push(t.elapsed());
            let t = Instant::now();
            let n_dp = rt.block_on(dp(w));
            dp_t.push(t.elapsed());
            assert!(n_dp >= n_raw.min(1), "{}: DP released no rows", w.name);
        }
        raw_t.sort();
        dp_t.sort();
        let (rm, dm) = (percentile(&raw_t, 0.5), percentile(&dp_t, 0.5));
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.2}x |",
            w.name,
            ms(rm),
            ms(percentile(&raw_t, 0.9)),
            ms(dm),
            ms(percentile(&dp_t, 0.9)),
            dm.as_secs_f64() / rm.as_secs_f64()
        );
    }
}
