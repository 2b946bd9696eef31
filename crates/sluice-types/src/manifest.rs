//! Job manifests: what a job is, on which datasets, at what privacy cost.
//! Written as TOML by a person; unknown fields are rejected so that a reviewer
//! reads exactly what runs. Its canonical JSON form is digested by
//! `sluice-crypto`; approvals and cached releases bind to that digest.

use serde::{Deserialize, Serialize};

pub const MANIFEST_VERSION: u32 = 1;
pub const MAX_QUERY_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub title: String,
    pub purpose: String,
    /// Data-use agreements the job runs under: required for conditional
    /// data, one per provider whose conditional datasets the job reads.
    /// Written `agreement = "agr_…"` or `agreement = ["agr_…", "agr_…"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    #[schemars(with = "one_or_many::OneOrMany")]
    pub agreement: Vec<String>,
    /// Datasets as `name` (latest version at submission) or `name@version`.
    pub datasets: Vec<String>,
    pub job: JobKind,
    pub privacy: PrivacyRequest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobKind {
    Sql {
        query: String,
    },
    /// Untrusted WebAssembly mapping each privacy unit (or block of units)
    /// of the job's one dataset to a bounded vector; the host clamps,
    /// aggregates and adds noise (docs/wasm.md).
    Wasm {
        /// The module's bytes, base64 (standard alphabet); the manifest's
        /// digest covers them.
        module: String,
        mode: WasmMode,
        /// Numeric columns the guest reads, in this order.
        columns: Vec<String>,
        /// One entry per output number: its name, bounds and the default
        /// used when a unit's run fails.
        outputs: Vec<WasmOutput>,
        /// sample-aggregate only: the number of disjoint blocks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blocks: Option<u32>,
    },
    /// DP model training (docs/learn.md): a row-level SELECT over the job's
    /// datasets (joined on the privacy unit, filtered by WHERE) gives one
    /// numeric column per feature and the label; the host trains by DP
    /// gradient descent with per-unit clipping and releases the model.
    Train {
        model: TrainModel,
        query: String,
        /// The SELECT's output column that is the label; every other output
        /// column is a feature.
        label: String,
        #[serde(default)]
        hyper: TrainHyper,
        /// Optional WASM module (base64) exporting `gradient`: each unit's
        /// gradient from user code instead of the built-in one; the host
        /// still clips and noises it (docs/learn.md).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrainModel {
    /// Least squares; the label's declared bounds scale it.
    Linear,
    /// Binary classification; a label above 0.5 is the positive class.
    Logistic,
}

/// Training hyperparameters; every one has a default (docs/learn.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainHyper {
    /// Full-batch gradient steps.
    pub epochs: u32,
    pub learning_rate: f64,
    /// Heavy-ball momentum in [0, 1): post-processing of the noised
    /// gradients that speeds up badly conditioned problems (features far
    /// from the centre of their declared bounds).
    pub momentum: f64,
    /// L2 bound on one unit's gradient, in the scaled feature space.
    pub clip_norm: f64,
    /// L2 regularisation of the coefficients (not the intercept).
    pub l2: f64,
    /// Fraction of units held out for the released evaluation.
    pub holdout: f64,
}

impl Default for TrainHyper {
    fn default() -> Self {
        TrainHyper {
            epochs: 30,
            learning_rate: 1.0,
            momentum: 0.9,
            clip_norm: 1.0,
            l2: 1e-4,
            holdout: 0.2,
        }
    }
}

impl TrainHyper {
    /// Every out-of-range hyperparameter, by name.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=10_000).contains(&self.epochs) {
            problems.push("job.hyper.epochs must be 1 to 10000".to_owned());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 100.0) {
            problems.push("job.hyper.learning_rate must be in (0, 100]".to_owned());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            problems.push("job.hyper.momentum must be in [0, 1)".to_owned());
        }
        if !(self.clip_norm > 0.0 && self.clip_norm <= 1e6) {
            problems.push("job.hyper.clip_norm must be in (0, 1e6]".to_owned());
        }
        if !(self.l2 >= 0.0 && self.l2 <= 100.0) {
            problems.push("job.hyper.l2 must be in [0, 100]".to_owned());
        }
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            problems.push("job.hyper.holdout must be in (0, 1)".to_owned());
        }
        problems
    }
}

/// Largest δ a training job may spend: its Gaussian noise is (ε, δ)-DP, and
/// δ must stay far below one over any dataset's size.
pub const MAX_TRAIN_DELTA: f64 = 1e-5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WasmMode {
    /// Per unit: the host sums the clamped outputs.
    Map,
    /// Per block of units: the host averages the clamped outputs.
    SampleAggregate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WasmOutput {
    pub name: String,
    pub lower: f64,
    pub upper: f64,
    pub default: f64,
}

/// Largest WASM module a manifest may carry (decoded).
pub const MAX_MODULE_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyRequest {
    pub epsilon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Relative weights of the job's measurements, by the names the
    /// estimate shows (e.g. `"count(*)" = 1`, `"sum(pums.income)" = 3`);
    /// unnamed measurements weigh 1. Absent: equal shares.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub split: std::collections::BTreeMap<String, f64>,
    /// A lower contribution bound than a dataset declares, by dataset name
    /// (e.g. `{ pums = 1 }`): less noise, fewer of each person's rows used.
    /// A job may only lower a bound, never raise it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub max_rows_per_unit: std::collections::BTreeMap<String, u32>,
}

fn check_module(module: &str, problems: &mut Vec<String>) {
    if module.len() > MAX_MODULE_BYTES / 3 * 4 + 4 {
        problems.push(format!(
            "job.module is larger than {MAX_MODULE_BYTES} bytes"
        ));
    } else if crate::b64_decode(module).is_none() {
        problems.push("job.module is not base64".into());
    }
}

/// A string or a list of strings; one element serialises as a string so
/// that `agreement = "x"` reads back as written.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize, schemars::JsonSchema)]
    #[serde(untagged)]
    pub enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

/// A dataset reference split into name and optional version.
pub fn split_dataset_ref(r: &str) -> (&str, Option<&str>) {
    match r.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (r, None),
    }
}

impl Manifest {
    /// Structural checks that need no catalog; lists every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.version != MANIFEST_VERSION {
            problems.push(format!(
                "version {} is not supported (expected {MANIFEST_VERSION})",
                self.version
            ));
        }
        if self.title.trim().is_empty() {
            problems.push("title is empty".into());
        }
        if self.purpose.trim().is_empty() {
            problems.push("purpose is empty".into());
        }
        if self.datasets.is_empty() {
            problems.push("datasets is empty".into());
        }
        for (i, a) in self.agreement.iter().enumerate() {
            if a.trim().is_empty() || a.len() > 128 {
                problems.push(format!("agreement {a:?} is not an agreement id"));
            } else if self.agreement[..i].contains(a) {
                problems.push(format!("agreement {a} is named twice"));
            }
        }
        for d in &self.datasets {
            let (name, version) = split_dataset_ref(d);
            if !crate::schema::is_valid_name(name) {
                problems.push(format!("dataset reference \"{d}\" has an invalid name"));
            }
            if let Some(v) = version
                && (v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                problems.push(format!(
                    "dataset reference \"{d}\": a version is the 64-hex-digit content hash"
                ));
            }
        }
        match &self.job {
            JobKind::Sql { query } => {
                if query.trim().is_empty() {
                    problems.push("job.query is empty".into());
                }
                if query.len() > MAX_QUERY_LEN {
                    problems.push(format!("job.query is longer than {MAX_QUERY_LEN} bytes"));
                }
            }
            JobKind::Wasm {
                module,
                mode,
                columns,
                outputs,
                blocks,
            } => {
                check_module(module, &mut problems);
                if self.datasets.len() != 1 {
                    problems.push("a WASM job reads exactly one dataset".into());
                }
                if columns.is_empty() {
                    problems.push("job.columns is empty".into());
                }
                if outputs.is_empty() || outputs.len() > 1024 {
                    problems.push("job.outputs must have 1 to 1024 entries".into());
                }
                for o in outputs {
                    let ok = o.lower.is_finite()
                        && o.upper.is_finite()
                        && o.lower <= o.upper
                        && o.lower.abs().max(o.upper.abs()) <= 1e12;
                    if !ok {
                        problems.push(format!(
                            "job.outputs.{}: bounds must be finite, lower <= upper, within 1e12",
                            o.name
                        ));
                    } else if !(o.lower..=o.upper).contains(&o.default) {
                        problems.push(format!(
                            "job.outputs.{}: the default must lie within the bounds",
                            o.name
                        ));
                    }
                }
                match (mode, blocks) {
                    (WasmMode::SampleAggregate, Some(b)) if (1..=100_000).contains(b) => {}
                    (WasmMode::SampleAggregate, _) => problems
                        .push("job.blocks: sample-aggregate needs 1 to 100000 blocks".into()),
                    (WasmMode::Map, Some(_)) => {
                        problems.push("job.blocks is only for sample-aggregate".into())
                    }
                    (WasmMode::Map, None) => {}
                }
                if self.privacy.delta.is_some() {
                    problems.push("privacy.delta: WASM jobs are pure epsilon-DP".into());
                }
            }
            JobKind::Train {
                query,
                label,
                hyper,
                module,
                ..
            } => {
                if let Some(module) = module {
                    check_module(module, &mut problems);
                }
                if query.trim().is_empty() {
                    problems.push("job.query is empty".into());
                }
                if query.len() > MAX_QUERY_LEN {
                    problems.push(format!("job.query is longer than {MAX_QUERY_LEN} bytes"));
                }
                if label.trim().is_empty() {
                    problems.push("job.label is empty".into());
                }
                problems.extend(hyper.problems());
                match self.privacy.delta {
                    Some(d) if d > 0.0 && d <= MAX_TRAIN_DELTA => {}
                    _ => problems.push(format!(
                        "privacy.delta: a training job needs a delta in (0, {MAX_TRAIN_DELTA}] (its noise is Gaussian)"
                    )),
                }
                if !self.privacy.split.is_empty() {
                    problems.push(
                        "privacy.split: a training job's budget split is fixed (docs/learn.md)"
                            .into(),
                    );
                }
            }
        }
        if let Err(e) = crate::privacy::Epsilon::from_f64(self.privacy.epsilon) {
            problems.push(format!("privacy.epsilon: {e}"));
        }
        for (name, w) in &self.privacy.split {
            if !w.is_finite() || *w <= 0.0 || *w > 1e6 {
                problems.push(format!(
                    "privacy.split.\"{name}\" must be a positive weight of at most 1e6"
                ));
            }
        }
        if let Some(d) = self.privacy.delta
            && let Err(e) = crate::privacy::Delta::from_f64(d)
        {
            problems.push(format!("privacy.delta: {e}"));
        }
        for (name, k) in &self.privacy.max_rows_per_unit {
            if *k == 0 {
                problems.push(format!(
                    "privacy.max_rows_per_unit.{name} must be at least 1"
                ));
            }
            if !self
                .datasets
                .iter()
                .any(|d| split_dataset_ref(d).0 == name.as_str())
            {
                problems.push(format!(
                    "privacy.max_rows_per_unit names {name}, which is not a dataset of this job"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
