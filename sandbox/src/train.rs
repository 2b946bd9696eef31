//! Training jobs in the sandbox: the rows come from `sluice-sql` (the only
//! engine that reads them), the model from `sluice-learn`, the noise and the
//! accounting from `sluice-dp` through it.

use rand::SeedableRng;
use sluice_types::manifest::TrainModel;
use sluice_types::release::{Cell, ColumnKind, OutputColumn, ReleasedOutputs};
use sluice_types::sandbox::{ColumnEstimate, Estimate, SandboxResponse, TrainTask};

use crate::module::{self, Module};

fn spec(t: &TrainTask, columns: &sluice_sql::TrainingColumns) -> sluice_learn::TrainSpec {
    sluice_learn::TrainSpec {
        model: t.model,
        feature_bounds: columns.features.iter().map(|(_, l, h)| (*l, *h)).collect(),
        label_bounds: (columns.label.1, columns.label.2),
        hyper: t.hyper.clone(),
    }
}

fn metric_name(model: TrainModel) -> &'static str {
    match model {
        TrainModel::Logistic => "held-out accuracy",
        TrainModel::Linear => "held-out mean absolute error",
    }
}

/// The job's zCDP budget, every noise scale and the plan, from schemas only.
struct Budget {
    rho: f64,
    step_sd: f64,
}

fn budget(t: &TrainTask, dim: usize) -> Result<Budget, String> {
    let rho = sluice_dp::zcdp_budget(t.epsilon, t.delta).map_err(|e| e.to_string())?;
    let step = sluice_learn::step_noise(&t.hyper, rho, dim).map_err(|e| e.to_string())?;
    Ok(Budget {
        rho,
        step_sd: step.scale(),
    })
}

/// The optional `gradient` module, compiled here (never in the server).
fn compile_module(t: &TrainTask) -> Result<Option<Module>, String> {
    t.module
        .as_deref()
        .map(|m| {
            module::compile(
                m,
                sluice_wasm::Limits::default(),
                sluice_wasm::Entry::Gradient,
            )
        })
        .transpose()
}

fn describe_gradient(custom: &Option<Module>) -> String {
    match custom {
        None => "the built-in gradient".into(),
        Some(m) => {
            let limits =
                sluice_types::manifest::WasmLimits::defaults(sluice_types::manifest::WasmMode::Map);
            format!(
                "a custom gradient from {} (per unit and step at most fuel {}, memory {} pages, deadline {} ms; a failed unit counts as a zero gradient)",
                m.describe(),
                limits.fuel,
                limits.memory_pages,
                limits.deadline().as_micros() as f64 / 1e3,
            )
        }
    }
}

fn describe(
    t: &TrainTask,
    c: &sluice_sql::TrainingColumns,
    b: &Budget,
    custom: &Option<Module>,
) -> String {
    format!(
        "train {:?} regression by DP gradient descent with {} on [{}] ({}) with label {} [{}, {}]; features clamped to their declared bounds and scaled to [-1, 1]; {} epochs, learning rate {}, momentum {}, L2 {}; each {} contributes the mean gradient of its rows (at most {}) clipped to norm {}; Gaussian noise sd {:.4} per step; zCDP rho {:.6} ({}% steps, {}% training-set size, {}% held-out evaluation on {}% of units) converted to epsilon {} at delta {}",
        t.model,
        describe_gradient(custom),
        c.features
            .iter()
            .map(|(n, l, h)| format!("{n} [{l}, {h}]"))
            .collect::<Vec<_>>()
            .join(", "),
        c.datasets.join(" joined with "),
        c.label.0,
        c.label.1,
        c.label.2,
        t.hyper.epochs,
        t.hyper.learning_rate,
        t.hyper.momentum,
        t.hyper.l2,
        if c.by_unit { "privacy unit" } else { "row" },
        c.max_rows_per_unit,
        t.hyper.clip_norm,
        b.step_sd,
        b.rho,
        sluice_learn::STEPS_SHARE * 100.0,
        sluice_learn::COUNT_SHARE * 100.0,
        sluice_learn::EVAL_SHARE * 100.0,
        t.hyper.holdout * 100.0,
        t.epsilon,
        t.delta,
    )
}

pub async fn analyze(t: &TrainTask) -> SandboxResponse {
    let custom = compile_module(t);
    let columns = match (sluice_sql::analyze_training(t).await, &custom) {
        (Ok(c), Ok(_)) => c,
        (columns, custom) => {
            let mut reasons = columns.err().map(|r| r.0).unwrap_or_default();
            reasons.extend(custom.as_ref().err().cloned());
            return SandboxResponse::Rejected { reasons };
        }
    };
    let custom = custom.expect("checked above");
    let b = match budget(t, columns.features.len() + 1) {
        Ok(b) => b,
        Err(e) => {
            return SandboxResponse::Rejected {
                reasons: vec![format!("noise cannot be calibrated: {e}")],
            };
        }
    };
    let note = Some(format!(
        "a parameter's error depends on the data; each step's gradient sum gets Gaussian noise of sd {:.4} (clip norm {})",
        b.step_sd, t.hyper.clip_norm
    ));
    let mut estimate_columns: Vec<ColumnEstimate> = std::iter::once("intercept".to_owned())
        .chain(columns.features.iter().map(|(n, _, _)| n.clone()))
        .map(|name| ColumnEstimate {
            name,
            aggregate: Some("coefficient".into()),
            epsilon: None,
            std_dev: None,
            ci95_halfwidth: None,
            rank_error95: None,
            note: note.clone(),
        })
        .collect();
    estimate_columns.push(ColumnEstimate {
        name: metric_name(t.model).into(),
        aggregate: Some("evaluation".into()),
        epsilon: None,
        std_dev: None,
        ci95_halfwidth: None,
        rank_error95: None,
        note: Some("a noisy sum over held-out units divided by their noisy count".into()),
    });
    SandboxResponse::Accepted {
        plan: describe(t, &columns, &b, &custom),
        estimate: Estimate {
            epsilon: t.epsilon,
            delta: t.delta,
            rows: estimate_columns.len() as u64,
            key_threshold: None,
            columns: estimate_columns,
        },
    }
}

pub async fn execute(t: &TrainTask) -> SandboxResponse {
    let custom = match compile_module(t) {
        Ok(c) => c,
        Err(r) => return SandboxResponse::Rejected { reasons: vec![r] },
    };
    let (columns, rows) = match sluice_sql::training_rows(t).await {
        Ok(r) => r,
        Err(sluice_sql::ExecError::Rejected(r)) => {
            return SandboxResponse::Rejected { reasons: r.0 };
        }
        Err(_) => return crate::failed(sluice_types::sandbox::Failure::Execution),
    };
    let b = match budget(t, columns.features.len() + 1) {
        Ok(b) => b,
        Err(_) => return crate::failed(sluice_types::sandbox::Failure::Execution),
    };
    // The held-out split needs randomness the data cannot influence.
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let gradient = |rows: &[f64], width: usize, w: &[f64]| {
        custom
            .as_ref()
            .and_then(|c| c.guest.gradient_unit(rows, width, w, w.len()))
    };
    let custom_gradient: Option<&sluice_learn::CustomGradient<'_>> = custom
        .as_ref()
        .map(|_| &gradient as &sluice_learn::CustomGradient<'_>);
    let trained = match sluice_learn::train_with(
        &rows,
        &spec(t, &columns),
        Some(b.rho),
        &mut rng,
        custom_gradient,
    ) {
        Ok(m) => m,
        Err(_) => return crate::failed(sluice_types::sandbox::Failure::Execution),
    };
    let mut out_rows = vec![vec![
        Cell::Key("intercept".into()),
        Cell::Derived {
            value: trained.intercept,
        },
    ]];
    for ((name, _, _), value) in columns.features.iter().zip(&trained.coefficients) {
        out_rows.push(vec![
            Cell::Key(name.clone().into()),
            Cell::Derived { value: *value },
        ]);
    }
    out_rows.push(vec![
        Cell::Key(metric_name(t.model).into()),
        Cell::Derived {
            value: trained.evaluation,
        },
    ]);
    SandboxResponse::Released {
        outputs: ReleasedOutputs {
            columns: vec![
                OutputColumn {
                    name: "parameter".into(),
                    kind: ColumnKind::GroupKey,
                    aggregate: None,
                    epsilon: None,
                },
                OutputColumn {
                    name: "value".into(),
                    kind: ColumnKind::Aggregate,
                    aggregate: Some("DP-GD".into()),
                    epsilon: Some(t.epsilon),
                },
            ],
            rows: out_rows,
            mechanism: describe(t, &columns, &b, &custom),
            epsilon: t.epsilon,
            delta: t.delta,
        },
    }
}
