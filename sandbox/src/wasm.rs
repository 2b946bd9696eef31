//! WASM jobs in the sandbox: the module is decoded and compiled here (never
//! in the server), checked against the dataset's schema, run on each unit's
//! rows, and only the clamped, noised aggregate comes back.

use sluice_types::manifest::{WasmLimits, WasmMode};
use sluice_types::privacy::Delta;
use sluice_types::release::{Cell, ColumnKind, OutputColumn, ReleasedOutputs};
use sluice_types::sandbox::{ColumnEstimate, Estimate, SandboxResponse, WasmTask};
use sluice_wasm::{Entry, Limits, MapSpec, SampleAggregateSpec};

use crate::module::{self, Module};

struct Prepared {
    module: Module,
    spec: MapSpec,
}

/// Everything that depends on the module, the schema and the manifest only:
/// every problem at once.
fn prepare(t: &WasmTask) -> Result<Prepared, Vec<String>> {
    let mut problems = t
        .table
        .schema
        .guest_column_problems(&t.table.name, &t.columns);
    let spec = MapSpec {
        lower: t.outputs.iter().map(|o| o.lower).collect(),
        upper: t.outputs.iter().map(|o| o.upper).collect(),
        default: t.outputs.iter().map(|o| o.default).collect(),
        epsilon: t.epsilon,
    };
    if let Err(e) = spec.validate() {
        problems.push(format!("outputs: {e}"));
    }
    let module = module::compile(&t.module, Limits::from(limits(t)), Entry::Map).and_then(|m| {
        // A map_value module's memory must hold the schema's largest unit:
        // known before any data, so found here, not after reading rows.
        if t.mode == WasmMode::Map {
            m.guest
                .mapper(t.table.schema.max_rows_per_unit as usize, t.columns.len())
                .map_err(module::problem)?;
        }
        Ok(m)
    });
    match module {
        Ok(module) if problems.is_empty() => Ok(Prepared { module, spec }),
        Ok(_) => Err(problems),
        Err(p) => {
            problems.push(p);
            Err(problems)
        }
    }
}

/// The task's limits; a task held before they were declared runs with
/// the mode's defaults.
fn limits(t: &WasmTask) -> WasmLimits {
    t.limits.unwrap_or_else(|| WasmLimits::defaults(t.mode))
}

/// What one run of the guest may cost, for reviewers and for predicting
/// the job's duration: known before any data.
fn describe_limits(t: &WasmTask) -> String {
    let l = limits(t);
    // From whole microseconds, so that the plan shows 73.2, not 73.19999.
    let micros = l.deadline().as_micros() as f64;
    let deadline_ms = micros / 1e3;
    let (per, total) = match t.mode {
        WasmMode::Map => (
            "unit",
            format!("at most {deadline_ms} ms of guest time per privacy unit"),
        ),
        WasmMode::SampleAggregate => {
            let blocks = t.blocks.unwrap_or(0);
            (
                "block",
                format!(
                    "at most {} ms of guest time in all ({blocks} blocks)",
                    micros * f64::from(blocks) / 1e3
                ),
            )
        }
    };
    format!(
        "limits per {per}: fuel {}, memory {} pages ({} KiB), deadline {deadline_ms} ms, a {per} that runs out gives the defaults: {total}",
        l.fuel,
        l.memory_pages,
        l.memory_bytes() / 1024,
    )
}

fn blocks(t: &WasmTask) -> Option<usize> {
    match t.mode {
        WasmMode::Map => None,
        WasmMode::SampleAggregate => t.blocks.map(|b| b as usize),
    }
}

fn aggregate_name(t: &WasmTask) -> &'static str {
    match t.mode {
        WasmMode::Map => "sum",
        WasmMode::SampleAggregate => "mean of blocks",
    }
}

/// Compiles and checks the module; reads no data. The plan tells reviewers
/// the module's digest, size, imports and exports and the noise.
pub fn analyze(t: &WasmTask) -> SandboxResponse {
    let p = match prepare(t) {
        Ok(p) => p,
        Err(reasons) => return SandboxResponse::Rejected { reasons },
    };
    let noise = match sluice_wasm::noise_of(&p.spec, blocks(t)) {
        Ok(n) => n,
        Err(e) => {
            return SandboxResponse::Rejected {
                reasons: vec![e.to_string()],
            };
        }
    };
    let info = p.module.guest.info();
    let plan = format!(
        "{}; {}; {}; mode {}; dataset {} with at most {} row(s) per privacy unit; columns [{}]; each output clamped to its bounds, a failed unit gives the defaults; epsilon {} split equally over the outputs; L1 sensitivity per output [{}]",
        p.module.describe(),
        match (
            info.exports.iter().any(|e| e == sluice_wasm::MAP_VALUE),
            t.mode,
        ) {
            (true, WasmMode::Map) => {
                "map_value, checked unable to change its own state: every unit in one instance, its values wiped after each"
            }
            (true, WasmMode::SampleAggregate) => {
                "map_value, checked unable to change its own state: a fresh instance per block"
            }
            (false, WasmMode::Map) => "a fresh instance per unit",
            (false, WasmMode::SampleAggregate) => "a fresh instance per block",
        },
        describe_limits(t),
        match t.mode {
            WasmMode::Map => "map (sum over units)".to_owned(),
            WasmMode::SampleAggregate => format!(
                "sample-aggregate (mean over {} blocks)",
                t.blocks.unwrap_or(0)
            ),
        },
        t.table.name,
        t.table.schema.max_rows_per_unit,
        t.columns.join(", "),
        t.epsilon,
        noise
            .iter()
            .map(|n| n.0.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    SandboxResponse::Accepted {
        plan,
        estimate: Estimate {
            epsilon: t.epsilon,
            delta: Delta::ZERO,
            rows: 1,
            key_threshold: None,
            columns: t
                .outputs
                .iter()
                .zip(&noise)
                .map(|(o, (_, sd, half, epsilon))| ColumnEstimate {
                    name: o.name.clone(),
                    aggregate: Some(aggregate_name(t).into()),
                    epsilon: Some(*epsilon),
                    std_dev: Some(*sd),
                    ci95_halfwidth: Some(*half),
                    rank_error95: None,
                    note: None,
                })
                .collect(),
        },
    }
}

/// Runs the job: each unit's rows (bounded like SQL jobs) through the guest,
/// then the host's clamped, noised sum or block average.
pub async fn execute(t: &WasmTask) -> SandboxResponse {
    let p = match prepare(t) {
        Ok(p) => p,
        Err(reasons) => return SandboxResponse::Rejected { reasons },
    };
    let units = match sluice_sql::unit_rows(&t.table, &t.columns).await {
        Ok(u) => u,
        Err(sluice_sql::ExecError::Rejected(r)) => {
            return SandboxResponse::Rejected { reasons: r.0 };
        }
        Err(_) => return crate::failed(sluice_types::sandbox::Failure::Execution),
    };
    let released = match blocks(t) {
        None => sluice_wasm::run_map(
            &p.module.guest,
            &p.spec,
            &units,
            t.table.schema.max_rows_per_unit as usize,
        ),
        Some(blocks) => sluice_wasm::run_sample_aggregate(
            &p.module.guest,
            &SampleAggregateSpec {
                bounds: p.spec.clone(),
                blocks,
            },
            &units,
        ),
    };
    let released = match released {
        Ok(r) => r,
        Err(_) => return crate::failed(sluice_types::sandbox::Failure::Execution),
    };
    SandboxResponse::Released {
        outputs: ReleasedOutputs {
            columns: t
                .outputs
                .iter()
                .zip(&released.epsilon)
                .map(|(o, e)| OutputColumn {
                    name: o.name.clone(),
                    kind: ColumnKind::Aggregate,
                    aggregate: Some(aggregate_name(t).into()),
                    epsilon: Some(*e),
                })
                .collect(),
            rows: vec![
                released
                    .sums
                    .iter()
                    .zip(&released.ci95_halfwidth)
                    .map(|(v, h)| Cell::Noisy {
                        value: *v,
                        ci95: [v - h, v + h],
                    })
                    .collect(),
            ],
            mechanism: format!(
                "WASM module sha256 {}; outputs clamped by the host; discrete Laplace noise from OpenDP's exact sampler per output, epsilon {} split equally, L1 sensitivities [{}]",
                p.module.digest,
                t.epsilon,
                released
                    .l1_sensitivity
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            epsilon: t.epsilon,
            delta: Delta::ZERO,
        },
    }
}
