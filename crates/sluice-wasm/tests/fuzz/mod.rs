//! Generated modules (wasm-smith on stable Rust, seeded) run as every kind
//! of guest. Whatever a module does, compiling it either succeeds or
//! rejects it, never a panic or an engine error; running it gives a
//! release (for gradients, a vector or nothing per unit) on a dataset and
//! on its neighbours alike, never an error that could depend on the data;
//! and every unit ends within its deadline (plus a generous allowance for
//! the host: a bound on hangs, not a speed test).
//!
//! Cases: `SLUICE_FUZZ_CASES` per kind (default 100) from seed
//! `SLUICE_FUZZ_SEED` (default 0). A longer run, in release mode:
//! `SLUICE_FUZZ_CASES=5000 cargo test -p sluice-wasm --release --test main fuzz -- --nocapture`.

use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_types::manifest::WasmLimits;
use sluice_types::privacy::Epsilon;
use sluice_types::rows::UnitRows;
use sluice_wasm::{Entry, Guest, Limits, MapSpec, SampleAggregateSpec, WasmError};
use wasm_encoder::reencode::Reencode;
use wasm_smith::{Config, InstructionKind, InstructionKinds, Module};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Map,
    MapValue,
    SampleAggregate,
    Gradient,
}

const COLUMNS: usize = 2;
const MAX_ROWS: usize = 3;
const DIMS: usize = 2;
const BLOCKS: usize = 3;
const PARAMS: [f64; 3] = [0.5, -0.25, 1.0];

/// Time the host may add to a unit's deadline (instantiation, copying,
/// a busy machine): far below the seconds an unbounded unit would take.
const HOST_ALLOWANCE: Duration = Duration::from_secs(1);

/// Every import a guest may use: wasm-smith calls them with whatever
/// arguments its code computes.
const IMPORTS: &str = r#"(module
  (import "sluice" "row_count" (func (result i32)))
  (import "sluice" "column_count" (func (result i32)))
  (import "sluice" "read_rows" (func (param i32 i32) (result i32)))
  (import "sluice" "emit" (func (param i32 i32) (result i32)))
  (import "sluice" "param_count" (func (result i32)))
  (import "sluice" "read_params" (func (param i32 i32) (result i32))))"#;

/// Small limits keep the cases fast; what is checked does not depend on them.
fn limits(kind: Kind) -> Limits {
    match kind {
        Kind::SampleAggregate => WasmLimits {
            fuel: 1_000_000,
            memory_pages: 64,
        },
        _ => WasmLimits {
            fuel: 100_000,
            memory_pages: WasmLimits::DEFAULT_MEMORY_PAGES_PER_UNIT,
        },
    }
    .into()
}

/// A generated module exporting the ABI's function for `kind` and a
/// memory of random size (sometimes beyond the limit, sometimes capped).
fn generate(kind: Kind, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let min = rng.random_range(0..=40u32);
    let max = if rng.random_bool(0.3) {
        format!(" {}", min + rng.random_range(0..4))
    } else {
        String::new()
    };
    let entry = match kind {
        Kind::Map | Kind::SampleAggregate => r#"(func (export "map"))"#,
        Kind::MapValue => {
            r#"(func (export "map_value") (param i32 i32 i32) (result f64) unreachable)"#
        }
        Kind::Gradient => r#"(func (export "gradient"))"#,
    };
    let exports = format!(r#"(module (memory (export "memory") {min}{max}) {entry})"#);
    // map_value code may not write or call the host: half of its cases
    // draw only from instructions that could pass the check.
    let pure_only = kind == Kind::MapValue && rng.random_bool(0.5);
    let config = Config {
        available_imports: (!pure_only).then(|| wat::parse_str(IMPORTS).unwrap()),
        exports: Some(wat::parse_str(exports).unwrap()),
        simd_enabled: !pure_only,
        allowed_instructions: if pure_only {
            InstructionKinds::new(&[
                InstructionKind::Numeric,
                InstructionKind::Control,
                InstructionKind::Parametric,
                InstructionKind::Variable,
            ])
        } else {
            InstructionKinds::all()
        },
        // What the engine compiles in; anything else would only be refused.
        // The exported memory is the one memory (wasm-smith adds it
        // beyond max_memories).
        max_memories: 0,
        memory64_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        // externref needs wasmtime's `gc` feature, not compiled in.
        reference_types_enabled: false,
        max_funcs: 8,
        max_instructions: 120,
        max_tables: 1,
        max_table_elements: 20_000,
        max_imports: if pure_only { 0 } else { 6 },
        // No global.set either.
        max_globals: if pure_only { 0 } else { 8 },
        max_data_segments: 4,
        max_element_segments: 4,
        ..Config::default()
    };
    let mut bytes = vec![0u8; rng.random_range(256..8192)];
    rng.fill(&mut bytes[..]);
    let module = Module::new(config, &mut Unstructured::new(&bytes))
        .expect("wasm-smith builds a module from any bytes")
        .to_bytes();
    match kind {
        _ if pure_only => without_global_set(&module),
        // Random code seldom calls `emit` with the right length: half the
        // other modules get a wrapper that does, so that their outputs,
        // not only defaults, reach the host.
        Kind::Map | Kind::SampleAggregate if rng.random_bool(0.5) => emitting(&module, "map", DIMS),
        Kind::Gradient if rng.random_bool(0.5) => emitting(&module, "gradient", PARAMS.len()),
        _ => module,
    }
}

/// The module with a new `entry` export that calls the generated one, then
/// emits `dims` numbers from address 0 (whatever the generated code left
/// there). Unchanged if the module does not import `emit`.
fn emitting(bytes: &[u8], entry: &str, dims: usize) -> Vec<u8> {
    use wasm_encoder::{CodeSection, ExportSection, Function, FunctionSection, Instruction};
    use wasmparser::{ExternalKind, Parser, Payload, TypeRef};
    let (mut imported, mut emit, mut generated, mut types) = (0, None, None, Vec::new());
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import.unwrap();
                    if let TypeRef::Func(_) = import.ty {
                        if import.module == "sluice" && import.name == "emit" {
                            emit = Some(imported);
                        }
                        imported += 1;
                    }
                }
            }
            Payload::FunctionSection(r) => types = r.into_iter().map(Result::unwrap).collect(),
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.unwrap();
                    if e.name == entry && e.kind == ExternalKind::Func {
                        generated = Some(e.index);
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(emit), Some(generated)) = (emit, generated) else {
        return bytes.to_vec();
    };
    let wrapper = imported + types.len() as u32;
    let mut out = wasm_encoder::Module::new();
    let mut code: Option<CodeSection> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.unwrap();
        if !matches!(payload, Payload::CodeSectionEntry(_))
            && let Some(mut section) = code.take()
        {
            let mut f = Function::new([]);
            f.instruction(&Instruction::Call(generated))
                .instruction(&Instruction::I32Const(0))
                .instruction(&Instruction::I32Const(dims as i32))
                .instruction(&Instruction::Call(emit))
                .instruction(&Instruction::Drop)
                .instruction(&Instruction::End);
            section.function(&f);
            out.section(&section);
        }
        match &payload {
            Payload::FunctionSection(_) => {
                let mut section = FunctionSection::new();
                for t in &types {
                    section.function(*t);
                }
                // The generated entry's type: no parameters, no results.
                section.function(types[(generated - imported) as usize]);
                out.section(&section);
            }
            Payload::ExportSection(r) => {
                let mut section = ExportSection::new();
                for e in r.clone() {
                    let e = e.unwrap();
                    let index = if e.name == entry { wrapper } else { e.index };
                    section.export(e.name, e.kind.into(), index);
                }
                out.section(&section);
            }
            Payload::CodeSectionStart { .. } => code = Some(CodeSection::new()),
            Payload::CodeSectionEntry(body) => {
                code.as_mut().unwrap().raw(&bytes[body.range()]);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&wasm_encoder::RawSection {
                        id,
                        data: &bytes[range],
                    });
                }
            }
        }
    }
    out.finish()
}

/// wasm-smith keeps values it would drop in globals (`global.get`, `xor`,
/// `global.set`), which no map_value code may do: `drop` them instead.
struct NoGlobalSet;

impl Reencode for NoGlobalSet {
    type Error = std::convert::Infallible;

    fn instruction<'a>(
        &mut self,
        op: wasmparser::Operator<'a>,
    ) -> Result<wasm_encoder::Instruction<'a>, wasm_encoder::reencode::Error<Self::Error>> {
        match op {
            wasmparser::Operator::GlobalSet { .. } => Ok(wasm_encoder::Instruction::Drop),
            op => wasm_encoder::reencode::utils::instruction(self, op),
        }
    }
}

fn without_global_set(bytes: &[u8]) -> Vec<u8> {
    let mut module = wasm_encoder::Module::new();
    NoGlobalSet
        .parse_core_module(&mut module, wasmparser::Parser::new(0), bytes)
        .expect("a module wasm-smith generated parses");
    module.finish()
}

/// Units of 0 to `MAX_ROWS` rows, with the values NULLs (NaN), extremes
/// and zeros a guest may see.
fn dataset(seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let special = [f64::NAN, -0.0, 1e300, -1e300, f64::MIN_POSITIVE];
    (0..10)
        .map(|_| {
            (0..rng.random_range(0..=MAX_ROWS) * COLUMNS)
                .map(|_| {
                    if rng.random_bool(0.1) {
                        special[rng.random_range(0..special.len())]
                    } else {
                        f64::from(rng.random_range(-100..100i32))
                    }
                })
                .collect()
        })
        .collect()
}

/// The dataset, without its first unit, and with its first unit changed.
fn neighbours(d: &[Vec<f64>]) -> [Vec<Vec<f64>>; 3] {
    let mut changed = d.to_vec();
    changed[0] = vec![7.0; MAX_ROWS * COLUMNS];
    [d.to_vec(), d[1..].to_vec(), changed]
}

fn spec() -> MapSpec {
    MapSpec {
        lower: vec![-10.0, 0.0],
        upper: vec![10.0, 1.0],
        default: vec![0.0, 0.5],
        epsilon: Epsilon::from_f64(1.0).unwrap(),
    }
}

#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    accepted: usize,
    outputs: usize,
    defaults: usize,
    slowest_over_deadline: Duration,
}

impl Tally {
    /// A unit's outcome: a well-formed output or nothing, in time.
    fn unit(&mut self, case: &str, out: Option<Vec<f64>>, dims: usize, took: Duration, l: &Limits) {
        match out {
            Some(v) => {
                assert!(
                    v.len() == dims && v.iter().all(|x| x.is_finite()),
                    "{case}: malformed output {v:?}"
                );
                self.outputs += 1;
            }
            None => self.defaults += 1,
        }
        let over = took.saturating_sub(l.time_per_unit);
        self.slowest_over_deadline = self.slowest_over_deadline.max(over);
        assert!(
            over <= HOST_ALLOWANCE,
            "{case}: a unit took {took:?}, its deadline is {:?}",
            l.time_per_unit
        );
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Runs one generated module as `kind`; panics on any broken property.
fn run_case(kind: Kind, seed: u64, tally: &mut Tally) {
    let case = format!("{kind:?} seed {seed}");
    let bytes = generate(kind, seed);
    let l = limits(kind);
    let entry = if kind == Kind::Gradient {
        Entry::Gradient
    } else {
        Entry::Map
    };
    tally.cases += 1;
    let guest = match Guest::compile_entry(&bytes, l.clone(), entry) {
        Ok(g) => g,
        Err(WasmError::Rejected(_)) => return,
        Err(e) => panic!("{case}: compiling failed without a rejection: {e}"),
    };
    tally.accepted += 1;
    let data = dataset(seed);
    match kind {
        Kind::Map | Kind::MapValue => {
            // Depends on the module and the schema's bound only.
            let mut mapper = match guest.mapper(MAX_ROWS, COLUMNS) {
                Ok(m) => m,
                Err(WasmError::Rejected(_)) => return,
                Err(e) => panic!("{case}: {e}"),
            };
            for rows in &data {
                let (out, took) = timed(|| mapper.map(rows, DIMS));
                // One instance for every unit must answer as a new one
                // would: nothing of an earlier unit may remain.
                if kind == Kind::MapValue {
                    let alone = guest.mapper(MAX_ROWS, COLUMNS).unwrap().map(rows, DIMS);
                    assert_eq!(
                        out, alone,
                        "{case}: an earlier unit changed this one's output"
                    );
                }
                tally.unit(&case, out, DIMS, took, &l);
            }
            for d in neighbours(&data) {
                let r = sluice_wasm::run_map(
                    &guest,
                    &spec(),
                    &UnitRows::from_units(COLUMNS, &d),
                    MAX_ROWS,
                )
                .unwrap_or_else(|e| panic!("{case}: no release: {e}"));
                assert!(r.sums.iter().all(|s| s.is_finite()), "{case}: {r:?}");
            }
        }
        Kind::SampleAggregate => {
            // One block of everything, then the job on each neighbour.
            let all: Vec<f64> = data.concat();
            let (out, took) = timed(|| guest.map_unit(&all, COLUMNS, DIMS));
            tally.unit(&case, out, DIMS, took, &l);
            let s = SampleAggregateSpec {
                bounds: spec(),
                blocks: BLOCKS,
            };
            for d in neighbours(&data) {
                let units = UnitRows::from_units(COLUMNS, &d);
                let (r, took) = timed(|| sluice_wasm::run_sample_aggregate(&guest, &s, &units));
                let r = r.unwrap_or_else(|e| panic!("{case}: no release: {e}"));
                assert!(r.sums.iter().all(|s| s.is_finite()), "{case}: {r:?}");
                assert!(
                    took <= (l.time_per_unit + HOST_ALLOWANCE) * BLOCKS as u32,
                    "{case}: {BLOCKS} blocks took {took:?}"
                );
            }
        }
        Kind::Gradient => {
            for rows in &data {
                let (out, took) =
                    timed(|| guest.gradient_unit(rows, COLUMNS, &PARAMS, PARAMS.len()));
                tally.unit(&case, out, PARAMS.len(), took, &l);
            }
        }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn generated_modules_release_or_default_within_their_deadline_whatever_they_do() {
    let cases = env_or("SLUICE_FUZZ_CASES", 100);
    let first = env_or("SLUICE_FUZZ_SEED", 0);
    for kind in [
        Kind::Map,
        Kind::MapValue,
        Kind::SampleAggregate,
        Kind::Gradient,
    ] {
        let mut tally = Tally::default();
        for seed in first..first + cases {
            run_case(kind, seed, &mut tally);
        }
        eprintln!("fuzz {kind:?}: {tally:?}");
        // The generator must reach the guest paths, or this tests nothing.
        assert!(
            tally.accepted * 4 >= tally.cases,
            "{kind:?}: too few modules accepted: {tally:?}"
        );
        assert!(
            tally.outputs > 0 && tally.defaults > 0,
            "{kind:?}: the units did not reach both outcomes: {tally:?}"
        );
    }
}
