//! WASM jobs end to end: the module travels in the manifest, is compiled
//! and run only in the sandbox, and only the clamped, noised aggregate comes
//! back, signed and charged like a SQL job.

use sluice_types::ErrorCode;
use sluice_types::release::Cell;

use crate::{pums_csv, with_pums};

const IMPORTS: &str = r#"
  (import "sluice" "read_rows" (func $read_rows (param i32 i32) (result i32)))
  (import "sluice" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)"#;

/// Emits [the unit's first value, 1].
fn first_value_and_one() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {IMPORTS}
          (func (export "map")
            (drop (call $read_rows (i32.const 64) (i32.const 1)))
            (f64.store (i32.const 0) (f64.load (i32.const 64)))
            (f64.store (i32.const 8) (f64.const 1))
            (drop (call $emit (i32.const 0) (i32.const 2)))))"#
    ))
    .unwrap()
}

fn wasm_manifest(header: &str, module: &[u8], epsilon: f64) -> String {
    format!(
        r#"version = 1
title = "income per person by WASM"
{header}
datasets = ["pums"]

[job]
kind = "wasm"
mode = "map"
module = "{}"
columns = ["income"]
outputs = [
  {{ name = "income", lower = 0.0, upper = 100000.0, default = 0.0 }},
  {{ name = "persons", lower = 0.0, upper = 1.0, default = 0.0 }},
]

[privacy]
epsilon = {epsilon:?}
"#,
        sluice_types::b64_encode(module)
    )
}

#[tokio::test]
async fn a_wasm_job_releases_a_clamped_noised_sum_signed_and_charged() {
    let p = with_pums().await;
    let module = first_value_and_one();
    let text = wasm_manifest(&p.header(), &module, 2.0);

    // The estimate shows reviewers the module, never data.
    let e = p.alice.estimate_job(&text).await.unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
    let plan = e.plan.unwrap();
    assert!(
        plan.contains(&sluice_crypto::sha256_hex(&module))
            && plan.contains("imports [sluice.read_rows, sluice.emit]")
            && plan.contains("exports [memory, map]"),
        "{plan}"
    );
    let est = e.estimate.unwrap();
    let half: Vec<f64> = est
        .columns
        .iter()
        .map(|c| c.ci95_halfwidth.unwrap())
        .collect();
    // Each output is its own measurement: the shares add up to the job's epsilon.
    let shares: u64 = est.columns.iter().map(|c| c.epsilon.unwrap().units()).sum();
    assert_eq!(shares, est.epsilon.units());

    let job = crate::run_job(&p.alice, &text).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let body = p.alice.release(&job.id).await.unwrap().body;
    assert_eq!(body.epsilon_spent.to_string(), "2");
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "2");
    // Truth from the CSV: income clamped to [0, 100000] per person, and 1000 persons.
    let csv = String::from_utf8(pums_csv()).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == "income").unwrap();
    let truth: f64 = csv
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(at)
                .unwrap()
                .parse::<f64>()
                .unwrap()
                .clamp(0.0, 100000.0)
        })
        .sum();
    let cells: Vec<(f64, [f64; 2])> = body.outputs.rows[0]
        .iter()
        .map(|c| match c {
            Cell::Noisy { value, ci95 } => (*value, *ci95),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!((cells[0].1[1] - cells[0].0 - half[0]).abs() < 1e-6);
    // A 4-half-width miss has probability about 1e-5.
    assert!(
        (cells[0].0 - truth).abs() <= 4.0 * half[0],
        "{} vs {truth}",
        cells[0].0
    );
    // The count of persons is not drowned by the income's wide bounds.
    assert!(half[1] < 10.0, "{half:?}");
    assert!(
        (cells[1].0 - 1000.0).abs() <= 4.0 * half[1],
        "{}",
        cells[1].0
    );
}

/// A `map_value` module (one instance for every unit) goes the same way:
/// the plan says how it runs, and the release counts the persons.
#[tokio::test]
async fn a_map_value_job_runs_every_unit_in_one_instance_and_releases_the_same_way() {
    let p = with_pums().await;
    let module = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "map_value") (param $ptr i32) (param $n i32) (param $k i32) (result f64)
               (if (result f64) (i32.eqz (local.get $k))
                 (then (f64.load (local.get $ptr)))
                 (else (f64.const 1)))))"#,
    )
    .unwrap();
    let text = wasm_manifest(&p.header(), &module, 2.0);
    let e = p.alice.estimate_job(&text).await.unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
    let plan = e.plan.unwrap();
    assert!(plan.contains("every unit in one instance"), "{plan}");
    let half = e.estimate.unwrap().columns[1].ci95_halfwidth.unwrap();
    let job = crate::run_job(&p.alice, &text).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let body = p.alice.release(&job.id).await.unwrap().body;
    let Cell::Noisy { value, .. } = body.outputs.rows[0][1] else {
        panic!("noisy count")
    };
    assert!((value - 1000.0).abs() <= 4.0 * half, "{value}");
    // A module whose map_value could keep state is refused, naming why.
    let storing = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "map_value") (param i32 i32 i32) (result f64)
               (f64.store (i32.const 0) (f64.load (local.get 0))) (f64.const 1)))"#,
    )
    .unwrap();
    let err = p
        .alice
        .submit_job(&wasm_manifest(&p.header(), &storing, 1.0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("F64Store"), "{err}");
}

#[tokio::test]
async fn hostile_modules_are_rejected_or_defaulted_and_the_server_stays_healthy() {
    let p = with_pums().await;
    // A WASI import: rejected before any data, naming it; nothing charged.
    let wasi = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1) (func (export "map")))"#,
    )
    .unwrap();
    let err = p
        .alice
        .submit_job(&wasm_manifest(&p.header(), &wasi, 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QueryRejected));
    assert!(
        err.to_string()
            .contains("wasi_snapshot_preview1.fd_write is not allowed"),
        "{err}"
    );
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0");

    // An infinite loop: every unit defaults, the job still releases (only
    // the defaults' sum, noised), and the next job runs.
    let looping = wat::parse_str(format!(
        r#"(module {IMPORTS} (func (export "map") (loop $l (br $l))))"#
    ))
    .unwrap();
    let job = crate::run_job(&p.alice, &wasm_manifest(&p.header(), &looping, 1.0)).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let body = p.alice.release(&job.id).await.unwrap().body;
    for cell in &body.outputs.rows[0] {
        let Cell::Noisy { value, ci95 } = cell else {
            panic!()
        };
        // The defaults are 0: only noise comes out.
        assert!(value.abs() <= 4.0 * (ci95[1] - value), "{value} {ci95:?}");
    }
    let job = crate::run_job(
        &p.alice,
        &wasm_manifest(&p.header(), &first_value_and_one(), 1.0),
    )
    .await;
    assert_eq!(job.state, "released");

    // Bad manifests: unknown column, identifiers, two datasets, bad bounds.
    let base = wasm_manifest(&p.header(), &first_value_and_one(), 1.0);
    for (from, to, reason) in [
        (
            r#"columns = ["income"]"#,
            r#"columns = ["salary"]"#,
            "column salary is not in dataset pums",
        ),
        (
            r#"columns = ["income"]"#,
            r#"columns = ["pid"]"#,
            "not a numeric attribute",
        ),
        (
            r#"lower = 0.0, upper = 1.0, default = 0.0"#,
            r#"lower = 0.0, upper = 1.0, default = 5.0"#,
            "the default must lie within the bounds",
        ),
    ] {
        let err = p
            .alice
            .submit_job(&base.replace(from, to))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(reason), "{to}: {err}");
    }
}
