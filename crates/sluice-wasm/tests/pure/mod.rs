//! The `map_value` ABI: one instance for every unit, allowed only for code
//! that cannot change its own state; each unit still sees only its values.

use sluice_types::rows::UnitRows;
use sluice_wasm::{Guest, Limits, WasmError};

use crate::{compile, module, units};

/// A `map_value` module with `body` (and `extra` functions) and one page.
fn pure_guest(body: &str, extra: &str) -> String {
    format!(
        r#"(module
             (memory (export "memory") 1)
             (func (export "map_value") (param $ptr i32) (param $n i32) (param $k i32) (result f64)
               {body})
             {extra})"#
    )
}

/// Output 0: the sum of column 0 (two columns); output 1: the row count.
const SUM_AND_ROWS: &str = r#"
    (local $i i32) (local $acc f64)
    (if (i32.eq (local.get $k) (i32.const 1))
      (then (return (f64.convert_i32_u (i32.div_u (local.get $n) (i32.const 2))))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $acc (f64.add (local.get $acc)
        (f64.load (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 3))))))
      (local.set $i (i32.add (local.get $i) (i32.const 2)))
      (br $next)))
    (local.get $acc)"#;

#[test]
fn a_pure_guest_maps_every_unit_in_one_instance_as_a_fresh_one_would() {
    let g = compile(&pure_guest(SUM_AND_ROWS, "")).unwrap();
    assert!(g.info().exports.contains(&"map_value".to_owned()));
    let data = units(500);
    let mut mapper = g.mapper(3, 2).unwrap();
    for rows in &data {
        let expected = vec![rows.iter().step_by(2).sum::<f64>(), (rows.len() / 2) as f64];
        assert_eq!(mapper.map(rows, 2), Some(expected.clone()));
        // The per-unit path (a fresh instance) agrees.
        assert_eq!(g.map_unit(rows, 2, 2), Some(expected));
    }
    // More values than the schema's bound: that unit fails, alone.
    assert_eq!(mapper.map(&[1.0; 8], 2), None);
    assert_eq!(mapper.map(&[4.0, 1.0], 2), Some(vec![4.0, 1.0]));
}

#[test]
fn code_that_could_change_state_cannot_use_map_value() {
    let cases = [
        (
            "(f64.store (i32.const 0) (f64.const 1)) (f64.const 0)",
            "",
            "F64Store",
        ),
        (
            "(i32.store8 (i32.const 0) (i32.const 1)) (f64.const 0)",
            "",
            "I32Store8",
        ),
        (
            "(global.set $g (i32.const 1)) (f64.const 0)",
            "(global $g (mut i32) (i32.const 0))",
            "GlobalSet",
        ),
        (
            "(drop (memory.grow (i32.const 1))) (f64.const 0)",
            "",
            "MemoryGrow",
        ),
        (
            "(memory.fill (i32.const 0) (i32.const 1) (i32.const 8)) (f64.const 0)",
            "",
            "MemoryFill",
        ),
        (
            "(memory.copy (i32.const 0) (i32.const 8) (i32.const 8)) (f64.const 0)",
            "",
            "MemoryCopy",
        ),
        (
            "(call_indirect (type $t) (i32.const 0))",
            "(type $t (func (result f64))) (table 1 funcref) (elem (i32.const 0) $c) (func $c (result f64) (f64.const 0))",
            "CallIndirect",
        ),
        (
            "(v128.store (i32.const 0) (v128.const i64x2 0 0)) (f64.const 0)",
            "",
            "V128",
        ),
        // Not on the allow-list, though it only reads: refused all the same.
        (
            "(drop (v128.load (i32.const 0))) (f64.const 0)",
            "",
            "V128Load",
        ),
        // A store in a function the entry calls, two levels down.
        (
            "(call $a)",
            "(func $a (result f64) (call $b)) (func $b (result f64) (f64.store (i32.const 0) (f64.const 1)) (f64.const 0))",
            "F64Store",
        ),
    ];
    for (body, extra, op) in cases {
        let reason = match compile(&pure_guest(body, extra)) {
            Err(WasmError::Rejected(r)) => r,
            Err(e) => panic!("{op}: {e}"),
            Ok(_) => panic!("{op}: accepted"),
        };
        assert!(reason.contains(op), "{op}: {reason}");
    }
    // A host import (read_rows writes memory) is not pure either.
    let import = r#"(module
        (import "sluice" "row_count" (func $rc (result i32)))
        (memory (export "memory") 1)
        (func (export "map_value") (param i32 i32 i32) (result f64)
          (f64.convert_i32_u (call $rc))))"#;
    assert!(matches!(compile(import), Err(WasmError::Rejected(r)) if r.contains("host import")),);
    // State outside linear memory (GC structs) and exceptions are not
    // enabled at all: such modules are invalid.
    let gc = r#"(module (memory (export "memory") 1)
        (type $s (struct (field (mut f64))))
        (global $g (ref $s) (struct.new_default $s))
        (func (export "map_value") (param i32 i32 i32) (result f64)
          (struct.set $s 0 (global.get $g) (f64.const 1)) (f64.const 0)))"#;
    assert!(matches!(compile(gc), Err(WasmError::Rejected(r)) if r.contains("invalid module")));
    let throw = r#"(module (memory (export "memory") 1) (tag $t)
        (func (export "map_value") (param i32 i32 i32) (result f64) (throw $t)))"#;
    assert!(matches!(compile(throw), Err(WasmError::Rejected(r)) if r.contains("invalid module")));
    // Code the entry never reaches may do anything.
    let unreachable_store = "(func $never (i32.store (i32.const 0) (i32.const 1)))";
    compile(&pure_guest("(f64.const 1)", unreachable_store)).unwrap();
    // The wrong signature, or no exported memory, is refused.
    let wrong = r#"(module (memory (export "memory") 1) (func (export "map_value") (result f64) (f64.const 0)))"#;
    assert!(matches!(compile(wrong), Err(WasmError::Rejected(r)) if r.contains("must take")));
    let hidden = r#"(module (memory 1) (func (export "map_value") (param i32 i32 i32) (result f64) (f64.const 0)))"#;
    assert!(
        matches!(compile(hidden), Err(WasmError::Rejected(r)) if r.contains("export its memory"))
    );
}

/// Output 0: the sum of the 64 values after the unit's own (zero unless a
/// previous unit's values were left there); output 1: the memory size.
#[test]
fn a_unit_sees_only_its_own_values_however_large_the_previous_one_was() {
    let g = compile(&pure_guest(
        r#"(local $i i32) (local $acc f64)
           (if (i32.eq (local.get $k) (i32.const 1))
             (then (return (f64.convert_i32_u (memory.size)))))
           (block $done (loop $next
             (br_if $done (i32.ge_u (local.get $i) (i32.const 64)))
             (local.set $acc (f64.add (local.get $acc)
               (f64.load (i32.add (local.get $ptr)
                 (i32.shl (i32.add (local.get $n) (local.get $i)) (i32.const 3))))))
             (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br $next)))
           (local.get $acc)"#,
        "",
    ))
    .unwrap();
    let mut mapper = g.mapper(100, 1).unwrap();
    let size = mapper.map(&[], 2).unwrap()[1];
    for u in 0..200 {
        let rows = vec![1.0 + u as f64; if u % 2 == 0 { 100 } else { 1 }];
        assert_eq!(mapper.map(&rows, 2), Some(vec![0.0, size]), "unit {u}");
    }
}

#[test]
fn a_trap_or_an_endless_unit_fails_alone() {
    // 7 traps, 8 loops forever, anything else is returned.
    let g = Guest::compile(
        &module(&pure_guest(
            r#"(if (f64.eq (f64.load (local.get $ptr)) (f64.const 7)) (then unreachable))
               (if (f64.eq (f64.load (local.get $ptr)) (f64.const 8))
                 (then (loop $forever (br $forever))))
               (f64.load (local.get $ptr))"#,
            "",
        )),
        Limits {
            fuel_per_unit: 1_000_000,
            ..Limits::default()
        },
    )
    .unwrap();
    let mut mapper = g.mapper(1, 1).unwrap();
    for v in [1.0, 7.0, 2.0, 8.0, 3.0, 8.0, 8.0, 4.0, 7.0, 5.0] {
        let out = mapper.map(&[v], 1);
        if v == 7.0 || v == 8.0 {
            assert_eq!(out, None, "{v}");
        } else {
            assert_eq!(out, Some(vec![v]), "every unit gets its whole fuel");
        }
    }
    // Reads outside memory trap too: that unit's default, nothing else.
    let oob = compile(&pure_guest("(f64.load (i32.const 1000000))", "")).unwrap();
    assert_eq!(oob.mapper(1, 1).unwrap().map(&[1.0], 1), None);
}

#[test]
fn a_memory_that_cannot_hold_a_unit_is_refused_before_any_data() {
    let capped = r#"(module (memory (export "memory") 1 1)
        (func (export "map_value") (param i32 i32 i32) (result f64) (f64.const 0)))"#;
    let g = compile(capped).unwrap();
    assert!(matches!(g.mapper(10, 1), Err(WasmError::Rejected(r)) if r.contains("cannot grow")));
}

/// The Rust example written with the SDK's `map_value!` passes the check
/// and gives each person exactly what the native code computes; released,
/// it covers the truth like every map job.
#[test]
fn the_rust_map_value_example_is_pure_and_exact() {
    let g = Guest::compile(&crate::example_guest("person_total"), Limits::default()).unwrap();
    assert!(g.info().exports.contains(&"map_value".to_owned()));
    assert!(g.info().imports.is_empty());
    let persons = units(300);
    let mut mapper = g.mapper(3, 2).unwrap();
    let mut truth = [0.0, 0.0];
    for rows in &persons {
        let total: f64 = rows.iter().step_by(2).sum();
        let count = (rows.len() / 2) as f64;
        assert_eq!(mapper.map(rows, 2), Some(vec![total, count]));
        truth[0] += total.clamp(0.0, 30.0);
        truth[1] += count.clamp(0.0, 3.0);
    }
    let s = sluice_wasm::MapSpec {
        lower: vec![0.0, 0.0],
        upper: vec![30.0, 3.0],
        default: vec![0.0, 0.0],
        epsilon: sluice_types::privacy::Epsilon::from_f64(1.0).unwrap(),
    };
    let mut within = 0;
    for _ in 0..40 {
        let r = sluice_wasm::run_map(&g, &s, &UnitRows::from_units(2, &persons), 3).unwrap();
        within += usize::from(
            r.sums
                .iter()
                .zip(&truth)
                .zip(&r.ci95_halfwidth)
                .all(|((v, t), h)| (v - t).abs() <= 2.0 * h),
        );
    }
    assert!(within >= 38, "{within}/40 within twice the 95% half-width");
}

/// The fenced code block of docs/wasm.md that starts with `fence` and
/// contains `needle`.
fn doc_block(fence: &str, needle: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/wasm.md");
    let doc = std::fs::read_to_string(path).unwrap();
    doc.split(fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("docs/wasm.md has no {fence} block with {needle}"))
        .to_owned()
}

/// A guest written from the documented signature (address, count,
/// output) computes what the doc says; the doc's Rust example is the
/// example guest checked above, byte for byte.
#[test]
fn the_map_value_guests_in_the_docs_compute_what_the_docs_say() {
    let g = compile(&doc_block("```wat\n", "\"map_value\"")).unwrap();
    let mut mapper = g.mapper(3, 2).unwrap();
    for rows in units(100) {
        let total: f64 = rows.iter().step_by(2).sum();
        let count = (rows.len() / 2) as f64;
        assert_eq!(mapper.map(&rows, 2), Some(vec![total, count]), "{rows:?}");
    }
    let rust = doc_block("```rust\n", "map_value!");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/wasm/person_total/src/lib.rs"),
    )
    .unwrap();
    assert!(
        example.contains(&rust),
        "the doc's map_value! example differs from examples/wasm/person_total"
    );
}
