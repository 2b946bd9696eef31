//! DP training cost: DP-GD (per-unit clipping, Gaussian noise) against the
//! same training loop without privacy, on 1M rows × 20 features, measured
//! in one run; the accuracy of each on fresh rows; and, when Python has
//! diffprivlib, its DP logistic regression on the same rows, timed beside
//! them (`benches/learn_diffprivlib.py`). Run:
//! `cargo bench -p sluice-learn --bench learn` (SLUICE_BENCH_ROWS,
//! SLUICE_BENCH_RUNS to change 1,000,000 rows and 11 runs).

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use sluice_learn::{Hyper, ModelKind, TrainSpec, Trained, predict_original, train};
use sluice_testkit::bench::{env_or, ms, percentile};
use sluice_testkit::learn::{FEATURES, Truth, bounds};
use sluice_types::rows::UnitRows;

/// The `p` quantile (nearest rank) of the timings, in milliseconds.
fn ms_at(v: &[Duration], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    ms(percentile(&v, p))
}

fn accuracy(model: &Trained, test: &UnitRows) -> f64 {
    sluice_testkit::learn::accuracy(test, |x| {
        predict_original(ModelKind::Logistic, model.intercept, &model.coefficients, x)
    })
}

fn write_csv(rows: &UnitRows, path: &std::path::Path) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for row in rows.values.chunks_exact(rows.width) {
        let line: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        writeln!(out, "{}", line.join(",")).unwrap();
    }
}

fn main() {
    let n: usize = env_or("SLUICE_BENCH_ROWS", 1_000_000);
    let runs: usize = env_or("SLUICE_BENCH_RUNS", 11);
    let mut rng = StdRng::seed_from_u64(42);
    let truth = Truth::new(&mut rng);
    let rows = truth.sample(n, 1, &mut rng);
    let fresh = truth.sample(200_000, 1, &mut rng);
    let spec = TrainSpec {
        model: ModelKind::Logistic,
        feature_bounds: bounds(),
        label_bounds: (0.0, 1.0),
        hyper: Hyper::default(),
    };
    let epsilon = 1.0;
    let rho = sluice_dp::zcdp_budget(
        sluice_types::privacy::Epsilon::from_f64(epsilon).unwrap(),
        sluice_types::privacy::Delta::from_f64(1e-6).unwrap(),
    )
    .unwrap();
    let (mut plain_t, mut dp_t) = (Vec::new(), Vec::new());
    let (mut plain_acc, mut dp_acc) = (0.0, 0.0);
    // Alternate so that both see the same machine state.
    for run in 0..runs {
        let seed = run as u64;
        let t = Instant::now();
        let plain = train(&rows, &spec, None, &mut StdRng::seed_from_u64(seed)).unwrap();
        plain_t.push(t.elapsed());
        let t = Instant::now();
        let dp = train(&rows, &spec, Some(rho), &mut StdRng::seed_from_u64(seed)).unwrap();
        dp_t.push(t.elapsed());
        plain_acc += accuracy(&plain, &fresh) / runs as f64;
        dp_acc += accuracy(&dp, &fresh) / runs as f64;
    }
    let (p50, p90) = (ms_at(&plain_t, 0.5), ms_at(&plain_t, 0.9));
    let (d50, d90) = (ms_at(&dp_t, 0.5), ms_at(&dp_t, 0.9));
    println!(
        "rows {n} x {FEATURES} features, {} epochs, {runs} runs",
        spec.hyper.epochs
    );
    println!(
        "non-private (same loop)   median {p50:>8.1} ms  p90 {p90:>8.1} ms   accuracy {plain_acc:.4}"
    );
    println!(
        "sluice DP-GD eps={epsilon} d=1e-6 median {d50:>8.1} ms  p90 {d90:>8.1} ms   accuracy {dp_acc:.4}   ratio {:.2}x (p90 {:.2}x)",
        d50 / p50,
        d90 / p90
    );
    let script = sluice_testkit::repo_file("benches/learn_diffprivlib.py");
    let has_diffprivlib = std::process::Command::new("python3")
        .args(["-c", "import diffprivlib"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_diffprivlib {
        println!("diffprivlib: not installed (pip install diffprivlib), skipped");
        return;
    }
    let dir = tempfile_dir();
    let (train_csv, test_csv) = (dir.join("train.csv"), dir.join("test.csv"));
    write_csv(&rows, &train_csv);
    write_csv(&fresh, &test_csv);
    let b: Vec<String> = bounds()
        .iter()
        .map(|(lo, hi)| format!("{lo}:{hi}"))
        .collect();
    let out = std::process::Command::new("python3")
        .arg(script)
        .args([&train_csv, &test_csv])
        .arg(epsilon.to_string())
        .arg(b.join(","))
        .arg(runs.to_string())
        .output()
        .expect("python3 runs");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-bench-learn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
