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
        /// map only: fuel one unit may use (about one per instruction;
        /// host calls and bulk memory operations charged by size). Absent:
        /// [`WasmLimits::DEFAULT_FUEL_PER_UNIT`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fuel_per_unit: Option<u64>,
        /// sample-aggregate only: fuel one block may use. Absent:
        /// [`WasmLimits::DEFAULT_FUEL_PER_BLOCK`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fuel_per_block: Option<u64>,
        /// Linear memory one unit (map) or block (sample-aggregate) may
        /// have, in 64 KiB pages, the module's own included. Absent: the
        /// mode's default (see [`WasmLimits::defaults`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory_pages: Option<u32>,
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

/// What one run of a WASM guest may use: one unit in `map` mode (and in
/// training's `gradient`), one block in `sample-aggregate`. Known before
/// any data is read, so the duration a unit can add to a job is too
/// (docs/wasm.md, "What one unit can cost").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WasmLimits {
    /// Fuel: about one per instruction; host calls, `memory.fill`,
    /// `memory.copy` and `memory.init` are charged by their size.
    pub fuel: u64,
    /// Linear memory, in 64 KiB pages, the module's initial memory included.
    pub memory_pages: u32,
}

impl WasmLimits {
    /// A unit's default fuel: 1 to 2 ms of guest time (docs/wasm.md), 20 to
    /// 200 times what the example guests use on units of 100 rows.
    pub const DEFAULT_FUEL_PER_UNIT: u64 = 1_000_000;
    pub const MAX_FUEL_PER_UNIT: u64 = 100_000_000;
    /// A block holds many units' rows: a larger default, 20 to 35 ms.
    pub const DEFAULT_FUEL_PER_BLOCK: u64 = 20_000_000;
    pub const MAX_FUEL_PER_BLOCK: u64 = 2_000_000_000;
    /// 2 MiB: a Rust guest's 1 MiB stack and static data plus 1 MiB heap.
    pub const DEFAULT_MEMORY_PAGES_PER_UNIT: u32 = 32;
    /// 16 MiB for a block's rows and the guest's copies of them.
    pub const DEFAULT_MEMORY_PAGES_PER_BLOCK: u32 = 256;
    /// 64 MiB, what the sandbox reserves for a guest's memory.
    pub const MAX_MEMORY_PAGES: u32 = 1024;

    /// The deadline's allowance per unit of fuel and per page of memory:
    /// more than 10 and 2 times the slowest docs/wasm.md measures, so that
    /// fuel, not the clock, ends honest code and a busy machine does not
    /// default units.
    const DEADLINE_NS_PER_FUEL: u64 = 20;
    const DEADLINE_NS_PER_PAGE: u64 = 100_000;
    /// The deadline's floor: a thread may wait that long for a core.
    const DEADLINE_BASE_NS: u64 = 50_000_000;

    /// The defaults of a mode.
    pub fn defaults(mode: WasmMode) -> Self {
        match mode {
            WasmMode::Map => WasmLimits {
                fuel: Self::DEFAULT_FUEL_PER_UNIT,
                memory_pages: Self::DEFAULT_MEMORY_PAGES_PER_UNIT,
            },
            WasmMode::SampleAggregate => WasmLimits {
                fuel: Self::DEFAULT_FUEL_PER_BLOCK,
                memory_pages: Self::DEFAULT_MEMORY_PAGES_PER_BLOCK,
            },
        }
    }

    /// Memory in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory_pages as usize * 65536
    }

    /// The wall-clock deadline of one run, derived from the fuel and the
    /// memory so that nothing else need be declared: a run ends at the
    /// first of fuel, deadline or its own end. What fuel does not meter
    /// (first touches of memory pages, a slow machine) is cut here.
    pub fn deadline(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(
            Self::DEADLINE_BASE_NS
                + self.fuel.saturating_mul(Self::DEADLINE_NS_PER_FUEL)
                + u64::from(self.memory_pages) * Self::DEADLINE_NS_PER_PAGE,
        )
    }
}

impl JobKind {
    /// A WASM job's limits per run, the mode's defaults filling what the
    /// manifest leaves out; None for other jobs.
    pub fn wasm_limits(&self) -> Option<WasmLimits> {
        let JobKind::Wasm {
            mode,
            fuel_per_unit,
            fuel_per_block,
            memory_pages,
            ..
        } = self
        else {
            return None;
        };
        let defaults = WasmLimits::defaults(*mode);
        let fuel = match mode {
            WasmMode::Map => *fuel_per_unit,
            WasmMode::SampleAggregate => *fuel_per_block,
        };
        Some(WasmLimits {
            fuel: fuel.unwrap_or(defaults.fuel),
            memory_pages: memory_pages.unwrap_or(defaults.memory_pages),
        })
    }
}

/// Problems with a WASM job's declared limits, by field name.
fn wasm_limit_problems(
    mode: WasmMode,
    fuel_per_unit: Option<u64>,
    fuel_per_block: Option<u64>,
    memory_pages: Option<u32>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match (mode, fuel_per_unit) {
        (WasmMode::Map, Some(f)) if !(1..=WasmLimits::MAX_FUEL_PER_UNIT).contains(&f) => problems
            .push(format!(
                "job.fuel_per_unit must be 1 to {}",
                WasmLimits::MAX_FUEL_PER_UNIT
            )),
        (WasmMode::SampleAggregate, Some(_)) => problems.push(
            "job.fuel_per_unit is only for map; sample-aggregate declares fuel_per_block".into(),
        ),
        _ => {}
    }
    match (mode, fuel_per_block) {
        (WasmMode::SampleAggregate, Some(f))
            if !(1..=WasmLimits::MAX_FUEL_PER_BLOCK).contains(&f) =>
        {
            problems.push(format!(
                "job.fuel_per_block must be 1 to {}",
                WasmLimits::MAX_FUEL_PER_BLOCK
            ))
        }
        (WasmMode::Map, Some(_)) => problems.push(
            "job.fuel_per_block is only for sample-aggregate; map declares fuel_per_unit".into(),
        ),
        _ => {}
    }
    if let Some(p) = memory_pages
        && !(1..=WasmLimits::MAX_MEMORY_PAGES).contains(&p)
    {
        problems.push(format!(
            "job.memory_pages must be 1 to {} (64 KiB pages)",
            WasmLimits::MAX_MEMORY_PAGES
        ));
    }
    problems
}

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
                fuel_per_unit,
                fuel_per_block,
                memory_pages,
            } => {
                check_module(module, &mut problems);
                problems.extend(wasm_limit_problems(
                    *mode,
                    *fuel_per_unit,
                    *fuel_per_block,
                    *memory_pages,
                ));
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

#[cfg(test)]
mod wasm_limit_tests {
    use super::*;

    /// A WASM manifest with `extra` lines in its `[job]` table.
    fn manifest(mode: &str, extra: &str) -> Manifest {
        let blocks = if mode == "map" { "" } else { "blocks = 10" };
        toml::from_str(&format!(
            r#"version = 1
title = "t"
purpose = "p"
datasets = ["d"]
[job]
kind = "wasm"
mode = "{mode}"
module = "AGFzbQEAAAA="
columns = ["x"]
outputs = [{{ name = "y", lower = 0.0, upper = 1.0, default = 0.0 }}]
{blocks}
{extra}
[privacy]
epsilon = 1.0
"#
        ))
        .unwrap()
    }

    fn check(mode: &str, extra: &str, expected: Result<WasmLimits, &str>) {
        let m = manifest(mode, extra);
        match (m.validate(), expected) {
            (Ok(()), Ok(limits)) => assert_eq!(m.job.wasm_limits(), Some(limits), "{extra}"),
            (Err(problems), Err(why)) => assert!(
                problems.iter().any(|p| p.contains(why)),
                "{extra}: {problems:?}"
            ),
            (got, want) => panic!("{mode} {extra}: {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn declared_limits_replace_the_modes_defaults_within_their_maxima() {
        let unit = WasmLimits::defaults(WasmMode::Map);
        let block = WasmLimits::defaults(WasmMode::SampleAggregate);
        check("map", "", Ok(unit));
        check("sample-aggregate", "", Ok(block));
        let fuel = |fuel| WasmLimits { fuel, ..unit };
        check("map", "fuel_per_unit = 5000", Ok(fuel(5000)));
        check(
            "map",
            "memory_pages = 100",
            Ok(WasmLimits {
                memory_pages: 100,
                ..unit
            }),
        );
        check(
            "sample-aggregate",
            "fuel_per_block = 5000\nmemory_pages = 1",
            Ok(WasmLimits {
                fuel: 5000,
                memory_pages: 1,
            }),
        );
        check("map", "fuel_per_unit = 0", Err("job.fuel_per_unit must be"));
        check(
            "map",
            "fuel_per_unit = 100000001",
            Err("job.fuel_per_unit must be"),
        );
        check(
            "sample-aggregate",
            "fuel_per_block = 2000000001",
            Err("job.fuel_per_block must be"),
        );
        check(
            "map",
            "fuel_per_block = 5",
            Err("only for sample-aggregate"),
        );
        check("sample-aggregate", "fuel_per_unit = 5", Err("only for map"));
        check(
            "map",
            "memory_pages = 1025",
            Err("job.memory_pages must be"),
        );
        check("map", "memory_pages = 0", Err("job.memory_pages must be"));
    }

    #[test]
    fn a_manifest_without_limits_keeps_its_digest_form() {
        // Absent limits are not serialised: manifests written before they
        // existed keep their canonical form, and so their digest.
        let json = serde_json::to_value(manifest("map", "")).unwrap();
        for field in ["fuel_per_unit", "fuel_per_block", "memory_pages"] {
            assert!(json["job"].get(field).is_none(), "{field}");
        }
        let json = serde_json::to_value(manifest("map", "fuel_per_unit = 7")).unwrap();
        assert_eq!(json["job"]["fuel_per_unit"], 7);
    }

    #[test]
    fn the_deadline_grows_with_fuel_and_memory() {
        let d = |fuel, memory_pages| WasmLimits { fuel, memory_pages }.deadline();
        assert!(d(1, 1) >= std::time::Duration::from_millis(50));
        assert!(d(2_000_000, 32) > d(1_000_000, 32));
        assert!(d(1_000_000, 64) > d(1_000_000, 32));
        // The largest declarable limits stay far from overflowing.
        assert!(d(WasmLimits::MAX_FUEL_PER_BLOCK, WasmLimits::MAX_MEMORY_PAGES).as_secs() < 120);
    }
}
