//! Sandbox process start: from spawning `sluice sandbox` to reading its
//! response to a task that does no work (a preview of a file that does not
//! exist), i.e. process start, resource limits, the network namespace,
//! Landlock and seccomp confinement, parsing the task and answering. Run: `cargo bench -p sluice-cli --bench
//! sandbox` (SLUICE_BENCH_RUNS, default 200). Prints p50 and p90.

use std::path::Path;
use std::time::Instant;

use sluice_testkit::bench::{env_or, ms, percentile};

fn main() {
    let runs: usize = env_or("SLUICE_BENCH_RUNS", 200);
    let task = serde_json::json!({
        "task": "preview",
        "path": "/nonexistent/sluice-bench.parquet",
        "limit": 1,
    })
    .to_string();
    let exe = Path::new(env!("CARGO_BIN_EXE_sluice"));
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = sluice_testkit::process::sandbox(exe, &task).stdout;
        times.push(start.elapsed());
        assert!(out.contains("\"status\":\"failed\""), "{out}");
    }
    times.sort();
    println!(
        "sandbox process, spawn to response ({runs} runs): p50 {:.1} ms, p90 {:.1} ms",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.9))
    );
}
