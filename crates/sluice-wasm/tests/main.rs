//! WASM jobs: well-behaved guests give answers within their intervals, and
//! every hostile guest ends cleanly (module rejected, or the unit defaulted)
//! without releasing anything beyond the clamped, noised sum.

use std::time::Instant;

mod fuzz;
mod gradient;
mod pure;

use sluice_types::manifest::WasmLimits;
use sluice_types::privacy::Epsilon;
use sluice_types::rows::UnitRows;
use sluice_wasm::{Entry, Guest, Limits, MapSpec, WasmError, run_map};

fn module(wat_text: &str) -> Vec<u8> {
    wat::parse_str(wat_text).unwrap()
}

fn compile(wat_text: &str) -> Result<Guest, WasmError> {
    Guest::compile(&module(wat_text), Limits::default())
}

fn rejected(wat_text: &str) -> String {
    match compile(wat_text) {
        Err(WasmError::Rejected(r)) => r,
        Err(e) => panic!("expected a rejection, got {e}"),
        Ok(_) => panic!("expected a rejection"),
    }
}

const IMPORTS: &str = r#"
  (import "sluice" "row_count" (func $row_count (result i32)))
  (import "sluice" "column_count" (func $column_count (result i32)))
  (import "sluice" "read_rows" (func $read_rows (param i32 i32) (result i32)))
  (import "sluice" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
"#;

/// A guest with `body` as its `map` function (the imports above in scope).
fn guest(body: &str) -> String {
    format!("(module {IMPORTS} {body})")
}

/// Emits the sum of column 0 over the unit's rows (at most 1,000 rows).
fn sum_guest() -> String {
    guest(
        r#"
    (func (export "map")
      (local $n i32) (local $i i32) (local $acc f64) (local $cols i32)
      (local.set $cols (call $column_count))
      (local.set $n (call $read_rows (i32.const 64) (i32.const 8000)))
      (block $done
        (loop $next
          (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
          (local.set $acc (f64.add (local.get $acc)
            (f64.load (i32.add (i32.const 64) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $i (i32.add (local.get $i) (local.get $cols)))
          (br $next)))
      (f64.store (i32.const 0) (local.get $acc))
      (drop (call $emit (i32.const 0) (i32.const 1))))
    "#,
    )
}

/// Emits the constant 1.0.
fn one_guest() -> String {
    guest(
        r#"(func (export "map")
             (f64.store (i32.const 0) (f64.const 1))
             (drop (call $emit (i32.const 0) (i32.const 1))))"#,
    )
}

fn spec(lower: f64, upper: f64, default: f64) -> MapSpec {
    MapSpec {
        lower: vec![lower],
        upper: vec![upper],
        default: vec![default],
        epsilon: Epsilon::from_f64(1.0).unwrap(),
    }
}

/// Units with 1 to 3 rows of two columns (value, something).
fn units(n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|u| {
            (0..1 + u % 3)
                .flat_map(|r| [((u * 7 + r * 3) % 10) as f64, 1.0])
                .collect()
        })
        .collect()
}

#[test]
fn a_per_unit_sum_is_released_within_its_interval_of_the_native_truth() {
    let g = Guest::compile(&module(&sum_guest()), Limits::default()).unwrap();
    let data = units(300);
    let truth: f64 = data
        .iter()
        .map(|rows| rows.iter().step_by(2).sum::<f64>().clamp(0.0, 20.0))
        .sum();
    let s = spec(0.0, 20.0, 0.0);
    let mut inside = 0;
    for _ in 0..40 {
        let r = run_map(&g, &s, &UnitRows::from_units(2, &data), 1000).unwrap();
        assert_eq!(r.l1_sensitivity, vec![20.0]);
        inside += usize::from((r.sums[0] - truth).abs() <= r.ci95_halfwidth[0]);
    }
    assert!(inside >= 34, "{inside}/40 within the 95% interval");
    let info = g.info();
    assert_eq!(info.exports, ["memory", "map"]);
    assert_eq!(info.imports.len(), 4);
}

#[test]
fn a_guest_that_copies_a_raw_row_comes_out_clamped_and_noised() {
    // Emits the unit's first value as is: 90,000 for the one unit here.
    let g = compile(&sum_guest()).unwrap();
    let s = spec(0.0, 10.0, 0.0);
    let data = vec![vec![90_000.0, 1.0]];
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let r = run_map(&g, &s, &UnitRows::from_units(2, &data), 1000).unwrap();
        assert!(
            r.sums[0] < 10.0 + 6.0 * r.ci95_halfwidth[0],
            "{}",
            r.sums[0]
        );
        seen.insert(r.sums[0].to_bits());
    }
    assert!(seen.len() > 5, "the release is noised");
}

#[test]
fn runaway_guests_default_their_unit_and_the_job_completes() {
    let cases = [
        (
            "infinite loop",
            guest(r#"(func (export "map") (loop $l (br $l)))"#),
        ),
        (
            "host-call storm",
            guest(r#"(func (export "map") (loop $l (drop (call $row_count)) (br $l)))"#),
        ),
        (
            "deep recursion",
            guest(r#"(func $f (export "map") (call $f))"#),
        ),
        ("trap", guest(r#"(func (export "map") unreachable)"#)),
        (
            "giant output",
            guest(
                r#"(func (export "map") (drop (call $emit (i32.const 0) (i32.const 100000000))))"#,
            ),
        ),
        (
            "two outputs",
            guest(
                r#"(func (export "map")
                     (drop (call $emit (i32.const 0) (i32.const 1)))
                     (drop (call $emit (i32.const 0) (i32.const 1))))"#,
            ),
        ),
        (
            "NaN output",
            guest(
                r#"(func (export "map")
                     (f64.store (i32.const 0) (f64.const nan))
                     (drop (call $emit (i32.const 0) (i32.const 1))))"#,
            ),
        ),
        ("no output", guest(r#"(func (export "map"))"#)),
    ];
    let data = units(5);
    for (name, text) in cases {
        let g = compile(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let start = Instant::now();
        // Every unit defaults to 3 (bounds [0, 3]): nothing else can come out.
        for rows in &data {
            assert_eq!(g.map_unit(rows, 2, 1), None, "{name}");
        }
        let r = run_map(
            &g,
            &spec(0.0, 3.0, 3.0),
            &UnitRows::from_units(2, &data),
            1000,
        )
        .unwrap();
        assert!(
            (r.sums[0] - 15.0).abs() <= 4.0 * r.ci95_halfwidth[0],
            "{name}: {}",
            r.sums[0]
        );
        assert!(start.elapsed().as_secs() < 30, "{name} took too long");
    }
}

#[test]
fn memory_grows_to_the_declared_limit_and_no_further() {
    // Grows a page at a time until refused, then emits the memory's size.
    let g = |pages: u32| {
        Guest::compile(
            &module(&guest(
                r#"(func (export "map")
                     (block $stop (loop $l
                       (br_if $stop (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
                       (br $l)))
                     (drop (memory.grow (i32.const 65535)))
                     (f64.store (i32.const 0) (f64.convert_i32_u (memory.size)))
                     (drop (call $emit (i32.const 0) (i32.const 1))))"#,
            )),
            WasmLimits {
                fuel: 1_000_000,
                memory_pages: pages,
            }
            .into(),
        )
        .unwrap()
    };
    for pages in [1, 4, WasmLimits::DEFAULT_MEMORY_PAGES_PER_UNIT] {
        assert_eq!(
            g(pages).map_unit(&[1.0], 1, 1),
            Some(vec![f64::from(pages)])
        );
    }
    let default = (Limits::default().memory_bytes / 65536) as u32;
    assert_eq!(default, WasmLimits::DEFAULT_MEMORY_PAGES_PER_UNIT);
    // A module whose own memory is larger than the job's limit is refused
    // before any data, saying which field to raise.
    let why = rejected(r#"(module (memory (export "memory") 40) (func (export "map")))"#);
    assert!(
        why.contains("starts at 40 pages") && why.contains("job.memory_pages"),
        "{why}"
    );
}

/// Loops as many times as the total of the unit's (at most 64) values,
/// about 8 fuel each, then emits the total; `entry` names the export.
fn looping_guest(entry: &str) -> Vec<u8> {
    module(&format!(
        r#"(module {IMPORTS}
             (func (export "{entry}") (local $rows i32) (local $k i32) (local $n i32) (local $i i32)
               (local.set $rows (call $read_rows (i32.const 64) (i32.const 64)))
               (block $summed (loop $sum
                 (br_if $summed (i32.ge_s (local.get $k) (local.get $rows)))
                 (local.set $n (i32.add (local.get $n) (i32.trunc_f64_s
                   (f64.load (i32.add (i32.const 64) (i32.shl (local.get $k) (i32.const 3)))))))
                 (local.set $k (i32.add (local.get $k) (i32.const 1)))
                 (br $sum)))
               (block $done (loop $next
                 (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br $next)))
               (f64.store (i32.const 0) (f64.convert_i32_s (local.get $n)))
               (drop (call $emit (i32.const 0) (i32.const 1)))))"#
    ))
}

/// The declared fuel, not a default, ends a unit: one that needs about
/// 400,000 fuel runs under the default and defaults under a tenth of it,
/// while the units after it still get their whole fuel; the same for a
/// gradient. A sample-aggregate block has its own fuel, whatever the
/// number of units in it.
#[test]
fn a_unit_that_exhausts_its_declared_fuel_defaults_alone() {
    let small = WasmLimits {
        fuel: WasmLimits::DEFAULT_FUEL_PER_UNIT / 10,
        memory_pages: WasmLimits::DEFAULT_MEMORY_PAGES_PER_UNIT,
    };
    let heavy = (WasmLimits::DEFAULT_FUEL_PER_UNIT / 20) as f64;
    for entry in [Entry::Map, Entry::Gradient] {
        let bytes = looping_guest(entry.name());
        let run = |g: &Guest, v: f64| match entry {
            Entry::Map => g.map_unit(&[v], 1, 1),
            Entry::Gradient => g.gradient_unit(&[v], 1, &[], 1),
        };
        let by_default = Guest::compile_entry(&bytes, Limits::default(), entry).unwrap();
        assert_eq!(run(&by_default, heavy), Some(vec![heavy]), "{entry:?}");
        let declared = Guest::compile_entry(&bytes, small.into(), entry).unwrap();
        for v in [heavy, 10.0, heavy, 1000.0] {
            let expected = (v != heavy).then(|| vec![v]);
            assert_eq!(run(&declared, v), expected, "{entry:?} {v}");
        }
    }
    // Four units that each fit a tenth of the default in one block that
    // does not: the block defaults (to 0) under that fuel per block, and
    // gives their total under the default per block.
    let units = vec![vec![heavy / 10.0]; 4];
    let total = 4.0 * heavy / 10.0;
    let block_total = |l: WasmLimits| {
        let g = Guest::compile(&looping_guest("map"), l.into()).unwrap();
        assert!(g.map_unit(&units[0], 1, 1).is_some());
        let s = sluice_wasm::SampleAggregateSpec {
            bounds: MapSpec {
                epsilon: Epsilon::from_f64(1000.0).unwrap(),
                ..spec(0.0, 2.0 * total, 0.0)
            },
            blocks: 1,
        };
        let r =
            sluice_wasm::run_sample_aggregate(&g, &s, &UnitRows::from_units(1, &units)).unwrap();
        assert!(r.ci95_halfwidth[0] < total / 100.0);
        r.sums[0]
    };
    assert!(block_total(small) < total / 2.0);
    let per_block = WasmLimits::defaults(sluice_types::manifest::WasmMode::SampleAggregate);
    assert!((block_total(per_block) - total).abs() < total / 50.0);
}

#[test]
fn bad_pointers_to_host_calls_are_refused() {
    // Emits the results of read_rows with an out-of-bounds and an overflowing
    // destination, and of emit with a negative length: all -1.
    let g = compile(&guest(
        r#"(func (export "map")
             (f64.store (i32.const 0) (f64.convert_i32_s (call $read_rows (i32.const 65530) (i32.const 100))))
             (f64.store (i32.const 8) (f64.convert_i32_s (call $read_rows (i32.const 2147483647) (i32.const 2147483647))))
             (f64.store (i32.const 16) (f64.convert_i32_s (call $read_rows (i32.const -8) (i32.const 1))))
             (f64.store (i32.const 24) (f64.convert_i32_s (call $emit (i32.const 65535) (i32.const 2))))
             (drop (call $emit (i32.const 0) (i32.const 4))))"#,
    ))
    .unwrap();
    let out = g.map_unit(&[1.0, 2.0, 3.0], 1, 4).unwrap();
    assert_eq!(out, vec![-1.0, -1.0, -1.0, -1.0]);
}

#[test]
fn a_unit_never_sees_what_a_previous_unit_left_in_memory() {
    // Emits what is at address 8, then writes its first value there.
    let g = compile(&guest(
        r#"(func (export "map")
             (f64.store (i32.const 0) (f64.load (i32.const 8)))
             (drop (call $emit (i32.const 0) (i32.const 1)))
             (drop (call $read_rows (i32.const 8) (i32.const 1))))"#,
    ))
    .unwrap();
    for rows in units(20) {
        assert_eq!(g.map_unit(&rows, 2, 1), Some(vec![0.0]));
    }
    // Nor a previous job: a new guest starts from the module's own memory.
    let again = compile(&guest(
        r#"(func (export "map")
             (f64.store (i32.const 0) (f64.load (i32.const 8)))
             (drop (call $emit (i32.const 0) (i32.const 1))))"#,
    ))
    .unwrap();
    assert_eq!(again.map_unit(&[5.0], 1, 1), Some(vec![0.0]));
}

/// Memory is reset by `memset` for its first 64 KiB and by `madvise`
/// beyond: a unit sees neither region as a previous unit left it, nor a
/// memory that a previous unit grew.
#[test]
fn no_unit_sees_a_previous_units_writes_anywhere_in_memory_or_its_growth() {
    let g = compile(
        r#"(module
             (import "sluice" "read_rows" (func $read_rows (param i32 i32) (result i32)))
             (import "sluice" "emit" (func $emit (param i32 i32) (result i32)))
             (memory (export "memory") 3)
             (func (export "map")
               (f64.store (i32.const 0) (f64.load (i32.const 1000)))
               (f64.store (i32.const 8) (f64.load (i32.const 140000)))
               (f64.store (i32.const 16) (f64.convert_i32_u (memory.size)))
               (drop (call $emit (i32.const 0) (i32.const 3)))
               (drop (call $read_rows (i32.const 1000) (i32.const 1)))
               (drop (call $read_rows (i32.const 140000) (i32.const 1)))
               (drop (memory.grow (i32.const 2)))))"#,
    )
    .unwrap();
    for rows in units(50) {
        assert_eq!(g.map_unit(&rows, 2, 3), Some(vec![0.0, 0.0, 3.0]));
    }
}

#[test]
fn modules_that_break_the_rules_are_rejected_before_any_data() {
    let wasi = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "map")))"#;
    assert!(rejected(wasi).contains("wasi_snapshot_preview1.fd_write is not allowed"));
    let clock = r#"(module (import "env" "now" (func (result i64))) (func (export "map")))"#;
    assert!(rejected(clock).contains("env.now is not allowed"));
    assert!(rejected("(module (func (export \"other\")))").contains("exports no function map"));
    assert!(
        rejected("(module (func (export \"map\") (param i32)))")
            .contains("no parameters and no results")
    );
    // A huge initial memory or table cannot start within the limits.
    let huge_memory = rejected("(module (memory 65536) (func (export \"map\")))");
    assert!(huge_memory.contains("limit"), "{huge_memory}");
    let huge_table = rejected("(module (table 10000000 funcref) (func (export \"map\")))");
    assert!(huge_table.contains("limit"), "{huge_table}");
    // Shared memory (threads) is disabled.
    assert!(
        rejected("(module (memory 1 1 shared) (func (export \"map\")))").contains("invalid module")
    );
    // A start function that never ends is stopped, and the module refused.
    assert!(
        rejected("(module (func $s (loop $l (br $l))) (start $s) (func (export \"map\")))")
            .contains("cannot start")
    );
    // Text, precompiled artifacts and oversized modules are refused unread.
    let text = one_guest();
    match Guest::compile(text.as_bytes(), Limits::default()) {
        Err(WasmError::Rejected(r)) => assert!(r.contains("not a WebAssembly binary")),
        _ => panic!("text accepted"),
    }
    match Guest::compile(b"\x7fELF\x02\x01\x01", Limits::default()) {
        Err(WasmError::Rejected(r)) => assert!(r.contains("not a WebAssembly binary")),
        _ => panic!("an ELF artifact accepted"),
    }
    let mut big = module(&one_guest());
    big.resize(50 << 20, 0);
    match Guest::compile(&big, Limits::default()) {
        Err(WasmError::Rejected(r)) => assert!(r.contains("more than the limit")),
        _ => panic!("a 50 MB module accepted"),
    }
}

#[test]
fn a_bad_spec_is_refused() {
    let g = compile(&one_guest()).unwrap();
    for s in [
        spec(1.0, 0.0, 0.5),
        spec(0.0, 1.0, 2.0),
        spec(f64::NEG_INFINITY, 1.0, 0.0),
    ] {
        assert!(matches!(
            run_map(&g, &s, &UnitRows::from_units(2, &units(2)), 1000),
            Err(WasmError::Rejected(_))
        ));
    }
}

/// The mean of column 0 over the block's rows (0 for an empty block).
fn block_mean_guest() -> String {
    guest(
        r#"
    (func (export "map")
      (local $n i32) (local $i i32) (local $acc f64) (local $cols i32) (local $rows i32)
      (local.set $cols (call $column_count))
      (local.set $n (call $read_rows (i32.const 64) (i32.const 8000)))
      (block $done
        (loop $next
          (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
          (local.set $acc (f64.add (local.get $acc)
            (f64.load (i32.add (i32.const 64) (i32.shl (local.get $i) (i32.const 3))))))
          (local.set $rows (i32.add (local.get $rows) (i32.const 1)))
          (local.set $i (i32.add (local.get $i) (local.get $cols)))
          (br $next)))
      (if (i32.eqz (local.get $rows)) (then (local.set $rows (i32.const 1))))
      (f64.store (i32.const 0) (f64.div (local.get $acc) (f64.convert_i32_s (local.get $rows))))
      (drop (call $emit (i32.const 0) (i32.const 1))))
    "#,
    )
}

#[test]
fn sample_aggregate_averages_block_answers_with_noise_scaled_to_one_block() {
    let g = compile(&block_mean_guest()).unwrap();
    // 2,000 units of one row each, values 0..9: the mean is 4.5.
    let data: Vec<Vec<f64>> = (0..2000).map(|u| vec![(u % 10) as f64, 1.0]).collect();
    let s = sluice_wasm::SampleAggregateSpec {
        bounds: spec(0.0, 10.0, 5.0),
        blocks: 50,
    };
    let mut inside = 0;
    for _ in 0..40 {
        let r = sluice_wasm::run_sample_aggregate(&g, &s, &UnitRows::from_units(2, &data)).unwrap();
        // One unit moves one block's answer by at most 10, the average by 10/50.
        assert!((r.l1_sensitivity[0] - 0.2).abs() < 1e-9);
        // Block means scatter around 4.5; the noise interval is about the
        // average of block answers, which itself is within ~0.5 of 4.5.
        inside += usize::from((r.sums[0] - 4.5).abs() <= r.ci95_halfwidth[0] + 0.5);
    }
    assert!(inside >= 34, "{inside}/40");
    // A guest that copies a raw value is clamped like any other.
    let copier = compile(&sum_guest()).unwrap();
    let r =
        sluice_wasm::run_sample_aggregate(&copier, &s, &UnitRows::from_units(2, &[vec![1e9, 1.0]]))
            .unwrap();
    assert!(
        r.sums[0] <= 10.0 + 6.0 * r.ci95_halfwidth[0],
        "{}",
        r.sums[0]
    );
    let bad = sluice_wasm::SampleAggregateSpec {
        bounds: spec(0.0, 10.0, 5.0),
        blocks: 0,
    };
    assert!(sluice_wasm::run_sample_aggregate(&g, &bad, &UnitRows::from_units(2, &data)).is_err());
}

/// The example guests of examples/wasm, written in Rust with the guest SDK
/// and built here for wasm32-unknown-unknown (once per test run).
pub(crate) fn example_guest(name: &str) -> Vec<u8> {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-guests");
        // So that `cargo test --workspace` works on a fresh machine too
        // (a no-op when the target is installed; .ci/run adds it as well).
        let _ = std::process::Command::new("rustup")
            .args(["target", "add", "wasm32-unknown-unknown"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
            .arg("--manifest-path")
            .arg(root.join("examples/wasm/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building the example guests failed (is the wasm32-unknown-unknown target installed? .ci/run adds it)"
        );
        target.join("wasm32-unknown-unknown/release")
    });
    std::fs::read(dir.join(format!("{name}.wasm"))).unwrap()
}

/// Releases within twice their 95% half-width of the truth in at least
/// 38 of 40 draws (a miss at 2x has probability 1/400 per draw).
fn assert_covers(name: &str, mut draw: impl FnMut() -> (Vec<f64>, Vec<f64>), truth: &[f64]) {
    let mut within = 0;
    for _ in 0..40 {
        let (values, half) = draw();
        within += usize::from(
            values
                .iter()
                .zip(truth)
                .zip(&half)
                .all(|((v, t), h)| (v - t).abs() <= 2.0 * h),
        );
    }
    assert!(within >= 38, "{name}: {within}/40 within the interval");
}

#[test]
fn the_rust_example_guests_answer_within_their_intervals_of_the_native_truth() {
    // Persons with 1 to 4 rows of (value, age).
    let persons: Vec<Vec<f64>> = (0..400)
        .map(|p| {
            (0..1 + p % 4)
                .flat_map(|r| {
                    [
                        ((p * 13 + r * 7) % 50) as f64,
                        (20 + (p * 3 + r) % 60) as f64,
                    ]
                })
                .collect()
        })
        .collect();

    // Per-person mean and "any row with age over 60".
    let g = Guest::compile(&example_guest("person_stats"), Limits::default()).unwrap();
    let mut truth = [0.0, 0.0];
    for rows in &persons {
        let values: Vec<f64> = rows.iter().step_by(2).copied().collect();
        truth[0] += (values.iter().sum::<f64>() / values.len() as f64).clamp(0.0, 50.0);
        truth[1] += f64::from(rows.iter().skip(1).step_by(2).any(|a| *a > 60.0));
    }
    let s = MapSpec {
        lower: vec![0.0, 0.0],
        upper: vec![50.0, 1.0],
        default: vec![0.0, 0.0],
        epsilon: Epsilon::from_f64(1.0).unwrap(),
    };
    assert_covers(
        "person_stats",
        || {
            let r = run_map(&g, &s, &UnitRows::from_units(2, &persons), 1000).unwrap();
            (r.sums, r.ci95_halfwidth)
        },
        &truth,
    );

    // Per-person spread of values.
    let g = Guest::compile(&example_guest("person_range"), Limits::default()).unwrap();
    let truth: f64 = persons
        .iter()
        .map(|rows| {
            let v: Vec<f64> = rows.iter().step_by(2).copied().collect();
            let hi = v.iter().copied().fold(f64::MIN, f64::max);
            let lo = v.iter().copied().fold(f64::MAX, f64::min);
            (hi - lo).clamp(0.0, 50.0)
        })
        .sum();
    let s = spec(0.0, 50.0, 0.0);
    assert_covers(
        "person_range",
        || {
            let r = run_map(&g, &s, &UnitRows::from_units(2, &persons), 1000).unwrap();
            (r.sums, r.ci95_halfwidth)
        },
        &[truth],
    );

    // A per-block trimmed mean: every person has the values 0..9 and an
    // outlier of 500, so every non-empty block's 10%-trimmed mean is 4.5.
    let g = Guest::compile(
        &example_guest("block_trimmed_mean"),
        WasmLimits::defaults(sluice_types::manifest::WasmMode::SampleAggregate).into(),
    )
    .unwrap();
    let people: Vec<Vec<f64>> = (0..2000)
        .map(|_| {
            (0..10)
                .map(f64::from)
                .chain([500.0])
                .flat_map(|v| [v, 0.0])
                .collect()
        })
        .collect();
    let s = sluice_wasm::SampleAggregateSpec {
        bounds: spec(0.0, 10.0, 5.0),
        blocks: 40,
    };
    assert_covers(
        "block_trimmed_mean",
        || {
            let r = sluice_wasm::run_sample_aggregate(&g, &s, &UnitRows::from_units(2, &people))
                .unwrap();
            (r.sums, r.ci95_halfwidth)
        },
        &[4.5],
    );
}

#[test]
fn the_demo_guest_binary_is_built_from_its_source() {
    // examples/jobs/older_share.wasm is committed (the demo embeds it);
    // SLUICE_REGENERATE=1 rewrites it from the .wat source.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jobs");
    let built = wat::parse_file(dir.join("older_share.wat")).unwrap();
    let path = dir.join("older_share.wasm");
    if std::env::var_os("SLUICE_REGENERATE").is_some() {
        std::fs::write(&path, &built).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        built,
        "rebuild with SLUICE_REGENERATE=1"
    );
    let g = Guest::compile(&built, Limits::default()).unwrap();
    assert_eq!(
        g.map_unit(&[50_000.0, 70.0], 2, 2),
        Some(vec![50_000.0, 1.0])
    );
    assert_eq!(
        g.map_unit(&[20_000.0, 30.0], 2, 2),
        Some(vec![20_000.0, 0.0])
    );
    assert_eq!(g.map_unit(&[], 2, 2), None);
}
