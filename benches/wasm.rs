//! WASM `map` cost: the same per-unit logic as a native Rust closure, as a
//! `map_value` guest (one instance, proven unable to change its state) and
//! as a `map` guest (a fresh instance per unit), all in the same host loop
//! with fuel and epoch on, measured in one run; and the p50/p90 of one
//! unit's instantiate + call; then what one unit can cost: nanoseconds
//! per unit of fuel for guests that spin until their fuel is gone, and
//! the time a unit adds by touching every page of its memory, which fuel
//! does not meter. Run: `cargo bench -p sluice-wasm --bench wasm`
//! (SLUICE_BENCH_UNITS to change the 1,000,000 units).

use std::time::{Duration, Instant};

use sluice_types::manifest::WasmLimits;
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

/// The same logic under the `map_value` ABI: sum the unit's values.
const PURE_GUEST: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "map_value") (param $ptr i32) (param $n i32) (param $k i32) (result f64)
    (local $i i32) (local $acc f64)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $acc (f64.add (local.get $acc)
        (f64.load (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 3))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $acc)))"#;

/// Guests that never finish, each `map` body burning fuel its own way.
const SPINS: [(&str, &str); 5] = [
    ("empty loop (br)", "(loop $l (br $l))"),
    (
        "i32 add loop",
        "(local $i i32) (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l))",
    ),
    (
        "f64 div chain",
        "(local $x f64) (local.set $x (f64.const 3)) (loop $l (local.set $x (f64.div (f64.const 1e300) (local.get $x))) (br $l))",
    ),
    (
        "random loads over 2 MiB",
        "(local $a i32) (local $s i64) (loop $l
           (local.set $a (i32.and (i32.add (local.get $a) (i32.const 40503)) (i32.const 2097144)))
           (local.set $s (i64.add (local.get $s) (i64.load (local.get $a))))
           (br $l))",
    ),
    (
        "memory.fill of 64 KiB",
        "(loop $l (memory.fill (i32.const 0) (i32.const 7) (i32.const 65536)) (br $l))",
    ),
];

/// Grows memory to the limit, writes one byte in every 4 KiB page (what
/// makes the kernel zero it), then spins until its fuel is gone.
const TOUCH_ALL: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "map") (local $p i32) (local $end i32)
    (block $full (loop $grow
      (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
      (br $grow)))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (block $done (loop $touch
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (i32.store8 (local.get $p) (i32.const 1))
      (local.set $p (i32.add (local.get $p) (i32.const 4096)))
      (br $touch)))
    (loop $l (br $l))))"#;

/// Median time of one unit of `guest` (which never emits) over `runs`.
fn unit_time(guest: &Guest, runs: usize) -> Duration {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(guest.map_unit(&[1.0], 1, 1), None);
            start.elapsed()
        })
        .collect();
    t.sort();
    percentile(&t, 0.5)
}

/// Per unit of fuel, and what touching all of memory adds to a unit.
fn unit_cost() {
    const FUEL: u64 = 20_000_000;
    let limits = |fuel: u64, pages: u32| Limits {
        fuel_per_unit: fuel,
        // Far beyond what these take: fuel, not the clock, ends them.
        time_per_unit: Duration::from_secs(10),
        ..WasmLimits {
            fuel,
            memory_pages: pages,
        }
        .into()
    };
    println!("one unit that runs until its fuel ({FUEL}) is gone, median of 9:");
    for (name, body) in SPINS {
        let wat_text =
            format!(r#"(module (memory (export "memory") 32) (func (export "map") {body}))"#);
        let g = Guest::compile(&wat::parse_str(&wat_text).unwrap(), limits(FUEL, 32)).unwrap();
        let t = unit_time(&g, 9);
        println!(
            "  {name:<26} {:7.1} ms  {:.3} ns per fuel",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e9 / FUEL as f64
        );
    }
    let pure = Guest::compile(
        &wat::parse_str(
            r#"(module (memory (export "memory") 1)
                 (func (export "map_value") (param i32 i32 i32) (result f64) (loop $l (br $l)) (f64.const 0)))"#,
        )
        .unwrap(),
        limits(FUEL, 32),
    )
    .unwrap();
    let mut mapper = pure.mapper(1, 1).unwrap();
    let mut t: Vec<Duration> = (0..9)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(mapper.map(&[1.0], 1), None);
            start.elapsed()
        })
        .collect();
    t.sort();
    println!(
        "  {:<26} {:7.1} ms  {:.3} ns per fuel",
        "map_value empty loop",
        percentile(&t, 0.5).as_secs_f64() * 1e3,
        percentile(&t, 0.5).as_secs_f64() * 1e9 / FUEL as f64
    );

    println!("one unit that touches every page of its memory, then spins out 1,000,000 fuel:");
    let spin = Guest::compile(&wat::parse_str(TOUCH_ALL).unwrap(), limits(1_000_000, 1)).unwrap();
    let base = unit_time(&spin, 9);
    for pages in [32u32, 256, 1024] {
        let g = Guest::compile(
            &wat::parse_str(TOUCH_ALL).unwrap(),
            limits(1_000_000, pages),
        )
        .unwrap();
        let t = unit_time(&g, 9);
        let extra = t.saturating_sub(base);
        println!(
            "  {pages:>5} pages ({:>3} MiB)   {:7.2} ms, {:.2} ms more than 1 page: {:.1} us per page",
            pages / 16,
            t.as_secs_f64() * 1e3,
            extra.as_secs_f64() * 1e3,
            extra.as_secs_f64() * 1e6 / f64::from(pages - 1)
        );
    }
}

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
    unit_cost();
    let n: usize = std::env::var("SLUICE_BENCH_UNITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let units: Vec<Vec<f64>> = (0..n).map(|u| vec![(u % 10) as f64, 1.0]).collect();
    let guest = Guest::compile(&wat::parse_str(GUEST).unwrap(), Limits::default()).unwrap();

    let pure = Guest::compile(&wat::parse_str(PURE_GUEST).unwrap(), Limits::default()).unwrap();

    // Alternated runs; medians and p90 of each.
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (mut native_t, mut pure_t, mut fresh_t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let native = host_loop(&units, |rows| Some(vec![rows.iter().sum()]));
        native_t.push(t.elapsed());
        let t = Instant::now();
        let mut mapper = pure.mapper(1, 2).unwrap();
        let by_pure = host_loop(&units, |rows| mapper.map(rows, 1));
        pure_t.push(t.elapsed());
        let t = Instant::now();
        let by_fresh = host_loop(&units, |rows| guest.map_unit(rows, 2, 1));
        fresh_t.push(t.elapsed());
        assert_eq!(
            native, by_pure,
            "the map_value guest computes what the closure does"
        );
        assert_eq!(
            native, by_fresh,
            "the map guest computes what the closure does"
        );
    }
    for v in [&mut native_t, &mut pure_t, &mut fresh_t] {
        v.sort();
    }
    let ms = |v: &[Duration], p: f64| percentile(v, p).as_secs_f64() * 1e3;
    let ratio = |v: &[Duration]| ms(v, 0.5) / ms(&native_t, 0.5);
    println!("map over {n} units, {runs} runs, median / p90:");
    println!(
        "  native closure      {:9.1} / {:9.1} ms",
        ms(&native_t, 0.5),
        ms(&native_t, 0.9)
    );
    println!(
        "  map_value guest     {:9.1} / {:9.1} ms  ({:.0} ns per unit, {:.1}x the closure)",
        ms(&pure_t, 0.5),
        ms(&pure_t, 0.9),
        ms(&pure_t, 0.5) * 1e6 / n as f64,
        ratio(&pure_t)
    );
    println!(
        "  map guest (fresh)   {:9.1} / {:9.1} ms  ({:.2} us per unit, {:.0}x the closure)",
        ms(&fresh_t, 0.5),
        ms(&fresh_t, 0.9),
        ms(&fresh_t, 0.5) * 1e3 / n as f64,
        ratio(&fresh_t)
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
