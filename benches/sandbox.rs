//! Sandbox process start: from spawning `sluice sandbox` to reading its
//! response to a task that does no work (a preview of a file that does not
//! exist), i.e. process start, resource limits, the network namespace,
//! Landlock and seccomp confinement, parsing the task and answering. Run: `cargo bench -p sluice-cli --bench
//! sandbox` (SLUICE_BENCH_RUNS, default 200). Prints p50 and p90.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let task = serde_json::json!({
        "task": "preview",
        "path": "/nonexistent/sluice-bench.parquet",
        "limit": 1,
    })
    .to_string();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("sandbox")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(task.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        drop(stdin);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child.wait().unwrap();
        times.push(start.elapsed());
        assert!(out.contains("\"status\":\"failed\""), "{out}");
    }
    times.sort();
    println!(
        "sandbox process, spawn to response ({runs} runs): p50 {:.1} ms, p90 {:.1} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3
    );
}
