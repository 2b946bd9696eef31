//! WASM `map` cost: the same per-unit logic as a guest (fresh instance per
//! unit, fuel and epoch on) and as a native Rust closure in the same host
//! loop, measured in one run; and the p50/p90 of one unit's instantiate +
//! call. Run: `cargo bench -p sluice-wasm --bench wasm` (SLUICE_BENCH_UNITS
//! to change the 1,000,000 units).

use std::time::{Duration, Instant};

use sluice_wasm::{Guest, Limits};

const GUEST: &str = r#"(module
  (import "sluice" "read_rows" (func $read_rows (param i32 i32) (result i32)))
  (import "sluice" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "map")
    (local $n i32) (local $i i32) (local $acc f64)
    (local.set $n (call $read_rows (i32.const 64) (i32.const 64)))
    (block $done (loop $next
      (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
      (local.set $acc (f64.add (local.get $acc)
        (f64.load (i32.add (i32.const 64) (i32.shl (local.get $i) (i32.const 3))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (f64.store (i32.const 0) (local.get $acc))
    (drop (call $emit (i32.const 0) (i32.const 1)))))"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The host loop both sides share: per unit, run `f` on its rows, clamp,
/// accumulate in fixed point.
fn host_loop(units: &[Vec<f64>], mut f: impl FnMut(&[f64]) -> Option<Vec<f64>>) -> i64 {
    let mut total = 0i64;
    for rows in units {
        let v = f(rows).map_or(0.0, |v| v[0]).clamp(0.0, 100.0);
        total += (v * 1024.0).round() as i64;
    }
    total
}

fn main() {
    let n: usize = std::env::var("SLUICE_BENCH_UNITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let units: Vec<Vec<f64>> = (0..n).map(|u| vec![(u % 10) as f64, 1.0]).collect();
    let guest = Guest::compile(&wat::parse_str(GUEST).unwrap(), Limits::default()).unwrap();

    let t = Instant::now();
    let native = host_loop(&units, |rows| Some(vec![rows.iter().sum()]));
    let native_t = t.elapsed();
    let t = Instant::now();
    let wasm = host_loop(&units, |rows| guest.map_unit(rows, 2, 1));
    let wasm_t = t.elapsed();
    assert_eq!(native, wasm, "the guest computes what the closure does");
    println!(
        "map over {n} units: native closure {:.1} ms, WASM guest {:.1} ms ({:.2} us per unit), ratio {:.0}x",
        native_t.as_secs_f64() * 1e3,
        wasm_t.as_secs_f64() * 1e3,
        wasm_t.as_secs_f64() * 1e6 / n as f64,
        wasm_t.as_secs_f64() / native_t.as_secs_f64()
    );

    let mut one = Vec::with_capacity(10_000);
    for rows in units.iter().take(10_000) {
        let t = Instant::now();
        guest.map_unit(rows, 2, 1).unwrap();
        one.push(t.elapsed());
    }
    one.sort();
    println!(
        "one unit (fresh instance + call): p50 {:.1} us, p90 {:.1} us",
        percentile(&one, 0.5).as_secs_f64() * 1e6,
        percentile(&one, 0.9).as_secs_f64() * 1e6
    );
}
