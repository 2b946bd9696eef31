//! WASM jobs: untrusted user code that maps each privacy unit's rows to a
//! bounded vector, run under wasmtime; the host clamps, aggregates and adds
//! noise. The guest never returns data itself.
//!
//! This is the only crate that names wasmtime. It runs inside the sandbox
//! process: modules are compiled there too (wasmtime does not defend
//! against compile-time denial of service).
//!
//! Isolation of a guest, always on:
//! - no WASI and no import outside [`ALLOWED_IMPORTS`] (the module is
//!   rejected before compiling its code otherwise);
//! - fuel (a deterministic instruction budget) per unit, charged for host
//!   calls too, and an epoch deadline for wall-clock time;
//! - `StoreLimits` on memory, tables and instances, a maximum wasm stack,
//!   no threads or shared memory, a module size cap;
//! - every pointer and length from the guest is checked against its memory;
//! - a **fresh instance per unit**, so nothing of one unit (or job) is
//!   visible to the next, and one unit's rows can only move its own output;
//!   or, for a module exporting `map_value` that is proven unable to change
//!   its own state (module `pure`), one instance whose state no unit can
//!   change, with the unit's values written in and wiped out by the host.
//!
//! A trap, fuel or time exhaustion, or a malformed output in one unit gives
//! that unit the manifest's default vector, never a job error: whether it
//! happens may depend on the data. Problems that depend only on the module
//! (bad imports, no `map` export, a memory that cannot be instantiated) are
//! found before any data is read and reject the job.

mod pure;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_types::manifest::{WasmLimits, WasmMode};
use sluice_types::privacy::Epsilon;
use sluice_types::rows::UnitRows;
use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, Instance, InstanceAllocationStrategy, InstancePre,
    Linker, Memory, Module, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder,
    TypedFunc,
};

/// Host functions a guest may import, all from module `"sluice"`:
/// - `row_count() -> i32`: rows of the current unit;
/// - `column_count() -> i32`: numbers per row;
/// - `read_rows(dst: i32, max_values: i32) -> i32`: copies the unit's rows
///   (row-major f64) to guest memory at `dst`, at most `max_values` values;
///   returns the count copied, or -1 if the range is outside memory;
/// - `emit(src: i32, len: i32) -> i32`: the unit's output, `len` f64 at
///   `src`; 0 on success, -1 if the range is invalid or `len` is wrong;
/// - `param_count() -> i32` and `read_params(dst: i32, max_values: i32) ->
///   i32`: in `gradient` mode, the model's current parameters (public: they
///   are the previous steps' noised releases); none in other modes.
pub const ALLOWED_IMPORTS: [&str; 6] = [
    "row_count",
    "column_count",
    "read_rows",
    "emit",
    "param_count",
    "read_params",
];

/// The function a module exports for its mode: `map` (per unit or block)
/// or `gradient` (per unit, given the parameters; DP training).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Map,
    Gradient,
}

impl Entry {
    pub fn name(self) -> &'static str {
        match self {
            Entry::Map => "map",
            Entry::Gradient => "gradient",
        }
    }
}

/// Resource limits of one guest. "Unit" is one run of the guest: a
/// privacy unit, or a block in sample-aggregate mode.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_module_bytes: usize,
    /// Instructions per unit (fuel); host calls and bulk memory operations
    /// are charged by size.
    pub fuel_per_unit: u64,
    /// Wall-clock time per unit.
    pub time_per_unit: Duration,
    pub memory_bytes: usize,
    pub table_elements: usize,
    pub max_wasm_stack: usize,
}

impl From<WasmLimits> for Limits {
    /// A job's declared (or default) fuel and memory, with the deadline
    /// they imply.
    fn from(w: WasmLimits) -> Self {
        Limits {
            max_module_bytes: sluice_types::manifest::MAX_MODULE_BYTES,
            fuel_per_unit: w.fuel,
            time_per_unit: w.deadline(),
            memory_bytes: w.memory_bytes(),
            table_elements: 10_000,
            max_wasm_stack: 512 << 10,
        }
    }
}

impl Default for Limits {
    /// A `map` unit's defaults (also training's `gradient`).
    fn default() -> Self {
        WasmLimits::defaults(WasmMode::Map).into()
    }
}

/// Fuel charged per host call and per value copied by one.
const HOST_CALL_FUEL: u64 = 1_000;
const FUEL_PER_VALUE: u64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The module itself is unacceptable: depends on the module only.
    #[error("module rejected: {0}")]
    Rejected(String),
    #[error("the WASM engine failed: {0}")]
    Engine(String),
    #[error("noise failed: {0}")]
    Noise(#[from] sluice_dp::DpError),
}

/// A compiled, checked module with its engine.
pub struct Guest {
    engine: Engine,
    module: Module,
    /// The module linked to the host functions once; each unit only
    /// instantiates it.
    pre: InstancePre<UnitState>,
    size: usize,
    limits: Limits,
    ticker_stop: Arc<AtomicBool>,
    /// The entry export, resolved once: no name lookup per unit.
    entry_export: wasmtime::ModuleExport,
    /// The module uses the `map_value` ABI (checked pure).
    values_abi: bool,
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Epoch ticks per second: the wall-clock deadline's resolution.
const TICKS_PER_SECOND: u64 = 1_000;

/// What reviewers see of a module: never data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModuleInfo {
    pub size: usize,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

fn engine(limits: &Limits) -> Result<Engine, WasmError> {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(limits.max_wasm_stack)
        // Threads and shared memory are not compiled in (no `threads`
        // feature), so such modules fail validation.
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        // Pinned off whatever wasmtime's defaults or features become: the
        // map_value check (module `pure`) assumes none of them. Exceptions
        // need wasmtime's `gc` feature, which is not compiled in.
        .wasm_gc(false)
        .wasm_stack_switching(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false);
    // Units run one after another: a small pool of pre-reserved slots makes
    // each fresh instance cheap (copy-on-write memory initialisation).
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(4)
        .total_memories(4)
        .total_tables(4)
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements)
        .linear_memory_keep_resident(64 << 10)
        .table_keep_resident(64 << 10);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Reserve only what a guest may use (plus a guard), not wasmtime's
    // default 4 GiB per memory: the sandbox caps its address space.
    config
        .memory_reservation(limits.memory_bytes as u64)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0);
    Engine::new(&config).map_err(|e| WasmError::Engine(e.to_string()))
}

impl Guest {
    /// Checks and compiles a module: size cap, binary format only (a
    /// precompiled artifact or text is refused), imports within the
    /// allow-list, a `map` export taking and returning nothing, and an
    /// instantiation with no data within the limits.
    pub fn compile(bytes: &[u8], limits: Limits) -> Result<Self, WasmError> {
        Self::compile_entry(bytes, limits, Entry::Map)
    }

    /// As [`Guest::compile`], for a module whose export is `entry`.
    pub fn compile_entry(bytes: &[u8], limits: Limits, entry: Entry) -> Result<Self, WasmError> {
        if bytes.len() > limits.max_module_bytes {
            return Err(WasmError::Rejected(format!(
                "the module is {} bytes, more than the limit of {}",
                bytes.len(),
                limits.max_module_bytes
            )));
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(WasmError::Rejected(
                "not a WebAssembly binary module (text, components and precompiled artifacts are refused)".into(),
            ));
        }
        // Said here in the job's terms; the engine would call it invalid.
        if let Some(pages) = initial_memory_pages(bytes)
            && pages.saturating_mul(65536) > limits.memory_bytes as u64
        {
            return Err(WasmError::Rejected(format!(
                "the module's memory starts at {pages} pages of 64 KiB, more than the limit of {} (job.memory_pages, at most {})",
                limits.memory_bytes / 65536,
                WasmLimits::MAX_MEMORY_PAGES
            )));
        }
        let engine = engine(&limits)?;
        let module = Module::new(&engine, bytes)
            .map_err(|e| WasmError::Rejected(format!("invalid module: {}", root_cause(&e))))?;
        let mut problems = Vec::new();
        for i in module.imports() {
            if i.module() != "sluice" || !ALLOWED_IMPORTS.contains(&i.name()) {
                problems.push(format!(
                    "import {}.{} is not allowed (only sluice.{{{}}}: no WASI, no I/O, no clock, no randomness)",
                    i.module(),
                    i.name(),
                    ALLOWED_IMPORTS.join(", ")
                ));
            }
        }
        let values_abi = entry == Entry::Map && module.get_export(MAP_VALUE).is_some();
        let name = if values_abi { MAP_VALUE } else { entry.name() };
        match module.get_export(name) {
            Some(ExternType::Func(f)) if values_abi => {
                use wasmtime::ValType::{F64, I32};
                let params: Vec<_> = f.params().collect();
                let results: Vec<_> = f.results().collect();
                if !(params.len() == 3
                    && params.iter().all(|p| matches!(p, I32))
                    && matches!(results[..], [F64]))
                {
                    problems.push(format!(
                        "export {MAP_VALUE} must take (i32 address, i32 count, i32 output) and return one f64"
                    ));
                }
                if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
                    problems.push(format!(
                        "a module exporting {MAP_VALUE} must export its memory as \"memory\""
                    ));
                }
                if let Err(why) = pure::check(bytes, MAP_VALUE) {
                    problems.push(why);
                }
            }
            Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
            Some(_) => problems.push(format!(
                "export {name} must be a function with no parameters and no results"
            )),
            None => problems.push(format!("the module exports no function {name}")),
        }
        if !problems.is_empty() {
            return Err(WasmError::Rejected(problems.join("; ")));
        }
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_micros(1_000_000 / TICKS_PER_SECOND));
                    engine.increment_epoch();
                }
            });
        }
        let pre = linker(&engine)
            .and_then(|l| l.instantiate_pre(&module))
            .map_err(|e| {
                WasmError::Rejected(format!("the module cannot be linked: {}", root_cause(&e)))
            })?;
        let entry_export = module
            .get_export_index(name)
            .ok_or_else(|| WasmError::Rejected(format!("the module exports no function {name}")))?;
        let guest = Guest {
            values_abi,
            entry_export,
            engine,
            module,
            pre,
            size: bytes.len(),
            limits,
            ticker_stop,
        };
        // Memory and tables are sized by the module alone: check them once.
        guest.instantiate(&[], 0, &[]).map_err(|e| {
            WasmError::Rejected(format!("the module cannot start within the limits: {e}"))
        })?;
        Ok(guest)
    }

    pub fn info(&self) -> ModuleInfo {
        ModuleInfo {
            size: self.size,
            imports: self
                .module
                .imports()
                .map(|i| format!("{}.{}", i.module(), i.name()))
                .collect(),
            exports: self.module.exports().map(|e| e.name().to_owned()).collect(),
        }
    }

    fn instantiate(
        &self,
        rows: &[f64],
        columns: usize,
        params: &[f64],
    ) -> Result<(Store<UnitState>, Instance), String> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .table_elements(self.limits.table_elements)
            .instances(1)
            .tables(4)
            .memories(1)
            .build();
        let mut store = Store::new(
            &self.engine,
            UnitState {
                rows: rows.to_vec(),
                columns,
                params: params.to_vec(),
                output: None,
                emitted: 0,
                limits,
            },
        );
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(self.limits.fuel_per_unit)
            .map_err(|e| e.to_string())?;
        store.set_epoch_deadline(self.deadline_ticks());
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| root_cause(&e))?;
        Ok((store, instance))
    }

    /// Runs `map` on one unit's rows (row-major, `columns` per row) in a
    /// fresh instance. Returns the emitted vector if it has exactly `dims`
    /// finite values; None for a trap, exhausted fuel or time, or any
    /// malformed output.
    pub fn map_unit(&self, rows: &[f64], columns: usize, dims: usize) -> Option<Vec<f64>> {
        self.run_unit(rows, columns, &[], dims)
    }

    /// Runs `gradient` on one unit's rows given the model's parameters, in
    /// a fresh instance; as `map_unit` for what comes back. The caller
    /// clips the vector: the guest is not trusted to.
    pub fn gradient_unit(
        &self,
        rows: &[f64],
        columns: usize,
        params: &[f64],
        dims: usize,
    ) -> Option<Vec<f64>> {
        self.run_unit(rows, columns, params, dims)
    }

    fn run_unit(
        &self,
        rows: &[f64],
        columns: usize,
        params: &[f64],
        dims: usize,
    ) -> Option<Vec<f64>> {
        if self.values_abi {
            // One unit alone: the region is sized by its own rows.
            let max_rows = rows.len().div_ceil(columns.max(1));
            return self.mapper(max_rows, columns).ok()?.map(rows, dims);
        }
        let (mut store, instance) = self.instantiate(rows, columns, params).ok()?;
        let entry = instance
            .get_module_export(&mut store, &self.entry_export)?
            .into_func()?
            .typed::<(), ()>(&store)
            .ok()?;
        entry.call(&mut store, ()).ok()?;
        let state = store.data();
        match &state.output {
            Some(v) if state.emitted == 1 && v.len() == dims && v.iter().all(|x| x.is_finite()) => {
                Some(v.clone())
            }
            _ => None,
        }
    }
}

/// The export of the `map_value` ABI (module `pure`).
pub const MAP_VALUE: &str = "map_value";

impl Guest {
    /// Ticks until the deadline, rounded up, plus one: the first tick may
    /// come at once.
    fn deadline_ticks(&self) -> u64 {
        let nanos = self.limits.time_per_unit.as_nanos() as u64;
        nanos.div_ceil(1_000_000_000 / TICKS_PER_SECOND) + 1
    }

    /// Runs units one after another for a job whose units have at most
    /// `max_rows` rows of `columns` values (a bound from the schema, never
    /// from the data). A `map_value` module gets one instance for all of
    /// them; any other module a fresh instance per unit.
    pub fn mapper(&self, max_rows: usize, columns: usize) -> Result<Mapper<'_>, WasmError> {
        let resident = if self.values_abi {
            Some(self.resident(max_rows.saturating_mul(columns))?)
        } else {
            None
        };
        Ok(Mapper {
            guest: self,
            columns,
            resident,
        })
    }

    fn resident(&self, capacity: usize) -> Result<Resident, WasmError> {
        let (mut store, instance) = self
            .instantiate(&[], 0, &[])
            .map_err(|e| WasmError::Rejected(format!("the module cannot start: {e}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| WasmError::Rejected("the module exports no memory".into()))?;
        let map_value = instance
            .get_module_export(&mut store, &self.entry_export)
            .and_then(Extern::into_func)
            .and_then(|f| f.typed::<(i32, i32, i32), f64>(&store).ok())
            .ok_or_else(|| WasmError::Rejected(format!("{MAP_VALUE} has the wrong type")))?;
        // The region for a unit's values: pages added after everything the
        // module owns, so it starts zeroed and nothing else lives there.
        let base = memory.data_size(&store);
        let bytes = capacity.saturating_mul(8);
        memory
            .grow(&mut store, bytes.div_ceil(65536) as u64)
            .map_err(|_| {
                WasmError::Rejected(format!(
                    "the module's memory cannot grow by {bytes} bytes for a unit's rows within the limit of {} bytes (the module's maximum, or job.memory_pages)",
                    self.limits.memory_bytes
                ))
            })?;
        Ok(Resident {
            store,
            map_value,
            memory,
            base,
            capacity,
        })
    }
}

/// Maps units one after another; see [`Guest::mapper`].
pub struct Mapper<'g> {
    guest: &'g Guest,
    columns: usize,
    resident: Option<Resident>,
}

/// A `map_value` module's one instance and the region for a unit's values.
struct Resident {
    store: Store<UnitState>,
    map_value: TypedFunc<(i32, i32, i32), f64>,
    memory: Memory,
    base: usize,
    capacity: usize,
}

impl Mapper<'_> {
    /// The unit's output if the guest gives `dims` finite values; None for
    /// a trap, exhausted fuel or time, or any malformed output.
    pub fn map(&mut self, rows: &[f64], dims: usize) -> Option<Vec<f64>> {
        let Some(r) = self.resident.as_mut() else {
            return self.guest.map_unit(rows, self.columns, dims);
        };
        if rows.len() > r.capacity {
            return None;
        }
        // Every unit gets the whole budget, whatever the last one used; set
        // before the values go in, so no early return can leave them there.
        r.store.set_fuel(self.guest.limits.fuel_per_unit).ok()?;
        r.store.set_epoch_deadline(self.guest.deadline_ticks());
        let region = r.base..r.base + rows.len() * 8;
        let data = r.memory.data_mut(&mut r.store);
        for (chunk, v) in data[region.clone()].chunks_exact_mut(8).zip(rows) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        let mut out = Vec::with_capacity(dims);
        let args = (r.base as i32, rows.len() as i32);
        for k in 0..dims {
            match r.map_value.call(&mut r.store, (args.0, args.1, k as i32)) {
                Ok(v) if v.is_finite() => out.push(v),
                _ => break,
            }
        }
        // The guest cannot write: wiping the values restores the state.
        r.memory.data_mut(&mut r.store)[region].fill(0);
        (out.len() == dims).then_some(out)
    }
}

/// The largest initial size, in pages, of the memories the module
/// defines; None if it defines none or does not parse (compiling says why).
fn initial_memory_pages(bytes: &[u8]) -> Option<u64> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::MemorySection(reader) = payload.ok()? {
            return reader
                .into_iter()
                .filter_map(|m| m.ok())
                .map(|m| m.initial)
                .max();
        }
    }
    None
}

fn root_cause(e: &wasmtime::Error) -> String {
    e.root_cause().to_string()
}

struct UnitState {
    rows: Vec<f64>,
    columns: usize,
    params: Vec<f64>,
    output: Option<Vec<f64>>,
    emitted: u32,
    limits: StoreLimits,
}

/// Charges host work to the guest's fuel, so a storm of host calls ends
/// like an infinite loop: out of fuel.
fn charge(caller: &mut Caller<'_, UnitState>, fuel: u64) -> wasmtime::Result<()> {
    let left = caller.get_fuel()?;
    if left < fuel {
        caller.set_fuel(0)?;
        return Err(wasmtime::Error::msg("out of fuel in a host call"));
    }
    caller.set_fuel(left - fuel)
}

fn memory(caller: &mut Caller<'_, UnitState>) -> Option<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

/// The byte range `[ptr, ptr + len * 8)` if it lies in memory of `size` bytes.
fn checked_range(ptr: i32, len: i32, size: usize) -> Option<std::ops::Range<usize>> {
    let ptr = usize::try_from(ptr).ok()?;
    let len = usize::try_from(len).ok()?;
    let end = ptr.checked_add(len.checked_mul(8)?)?;
    (end <= size).then_some(ptr..end)
}

/// A charged host call answering a count about the current unit.
fn count(mut caller: Caller<'_, UnitState>, of: fn(&UnitState) -> usize) -> wasmtime::Result<i32> {
    charge(&mut caller, HOST_CALL_FUEL)?;
    Ok(i32::try_from(of(caller.data())).unwrap_or(i32::MAX))
}

/// Copies at most `max_values` of the values `pick` selects to guest memory
/// at `dst`: the count copied, or -1 when the range is outside memory.
fn copy_to_guest(
    mut caller: Caller<'_, UnitState>,
    dst: i32,
    max_values: i32,
    pick: fn(&UnitState) -> &Vec<f64>,
) -> wasmtime::Result<i32> {
    charge(&mut caller, HOST_CALL_FUEL)?;
    let Some(mem) = memory(&mut caller) else {
        return Ok(-1);
    };
    let n = pick(caller.data())
        .len()
        .min(usize::try_from(max_values).unwrap_or(0));
    let Some(range) = checked_range(dst, n as i32, mem.data_size(&caller)) else {
        return Ok(-1);
    };
    charge(&mut caller, FUEL_PER_VALUE * n as u64)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    for (chunk, v) in data[range].chunks_exact_mut(8).zip(pick(state)) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    Ok(n as i32)
}

fn linker(engine: &Engine) -> wasmtime::Result<Linker<UnitState>> {
    let mut linker = Linker::new(engine);
    linker.func_wrap("sluice", "row_count", |caller: Caller<'_, UnitState>| {
        count(caller, |s| s.rows.len() / s.columns.max(1))
    })?;
    linker.func_wrap("sluice", "column_count", |caller: Caller<'_, UnitState>| {
        count(caller, |s| s.columns)
    })?;
    linker.func_wrap(
        "sluice",
        "read_rows",
        |caller: Caller<'_, UnitState>, dst: i32, max_values: i32| {
            copy_to_guest(caller, dst, max_values, |s| &s.rows)
        },
    )?;
    linker.func_wrap("sluice", "param_count", |caller: Caller<'_, UnitState>| {
        count(caller, |s| s.params.len())
    })?;
    linker.func_wrap(
        "sluice",
        "read_params",
        |caller: Caller<'_, UnitState>, dst: i32, max_values: i32| {
            copy_to_guest(caller, dst, max_values, |s| &s.params)
        },
    )?;
    linker.func_wrap(
        "sluice",
        "emit",
        |mut caller: Caller<'_, UnitState>, src: i32, len: i32| -> wasmtime::Result<i32> {
            charge(&mut caller, HOST_CALL_FUEL)?;
            let Some(mem) = memory(&mut caller) else {
                return Ok(-1);
            };
            // Outputs are small vectors; a giant one is malformed.
            if !(0..=MAX_DIMS as i32).contains(&len) {
                return Ok(-1);
            }
            let Some(range) = checked_range(src, len, mem.data_size(&caller)) else {
                return Ok(-1);
            };
            let values: Vec<f64> = mem.data(&caller)[range]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            // A second output makes the unit's output malformed.
            let state = caller.data_mut();
            state.emitted += 1;
            state.output = Some(values);
            Ok(0)
        },
    )?;
    Ok(linker)
}

/// Most numbers a unit's output may have.
pub const MAX_DIMS: usize = 1024;

/// A `map` job: each unit's output is clamped to `[lower[i], upper[i]]`
/// (the default vector replaces a failed unit), summed over units in fixed
/// point, and released with discrete Laplace noise.
#[derive(Debug, Clone)]
pub struct MapSpec {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub default: Vec<f64>,
    pub epsilon: Epsilon,
}

/// A release: one noised value per output (a sum for `map`, an average of
/// blocks for sample-aggregate), each with its own share of ε, sensitivity
/// and 95% noise half-width, in output units.
#[derive(Debug, Clone, PartialEq)]
pub struct MapRelease {
    pub sums: Vec<f64>,
    pub ci95_halfwidth: Vec<f64>,
    pub l1_sensitivity: Vec<f64>,
    pub epsilon: Vec<Epsilon>,
}

impl MapSpec {
    pub fn validate(&self) -> Result<(), String> {
        let d = self.lower.len();
        if d == 0 || d > MAX_DIMS || self.upper.len() != d || self.default.len() != d {
            return Err(format!(
                "lower, upper and default must have the same length, 1 to {MAX_DIMS}"
            ));
        }
        if self.epsilon.units() < d as u64 {
            return Err("epsilon is too small to share between the outputs".into());
        }
        for i in 0..d {
            let (lo, hi, def) = (self.lower[i], self.upper[i], self.default[i]);
            if !(lo.is_finite() && hi.is_finite() && lo <= hi && lo.abs().max(hi.abs()) <= 1e12) {
                return Err(format!(
                    "output {i}: bounds must be finite, lower <= upper, within 1e12"
                ));
            }
            if !(lo..=hi).contains(&def) {
                return Err(format!(
                    "output {i}: the default must lie within the bounds"
                ));
            }
        }
        Ok(())
    }
}

/// One output's noise: its fixed-point scale (a power of two so the largest
/// contribution is at most 2^30 units), its ε share and its calibrated
/// mechanism for a contribution of at most `magnitude` per unit (or block).
struct OutputNoise {
    scale: f64,
    l1: u64,
    epsilon: Epsilon,
    mechanism: sluice_dp::DiscreteLaplace,
}

/// Each output is its own measurement: ε is split equally (exactly, in
/// ledger units), so an output with narrow bounds is not drowned by a wide one.
fn output_noise(magnitudes: &[f64], epsilon: Epsilon) -> Result<Vec<OutputNoise>, WasmError> {
    let shares = sluice_dp::split_epsilon(epsilon, magnitudes.len());
    magnitudes
        .iter()
        .zip(shares)
        .map(|(m, e)| {
            let (scale, l1) = sluice_dp::fixed_point(*m, false);
            Ok(OutputNoise {
                scale,
                l1,
                epsilon: e,
                mechanism: sluice_dp::DiscreteLaplace::calibrate(l1, e)?,
            })
        })
        .collect()
}

/// Per unit (map) the largest |value|; per block (sample-aggregate) the
/// bound width, since values are shifted by the lower bound.
fn magnitudes(spec: &MapSpec, blocks: Option<usize>) -> Vec<f64> {
    spec.lower
        .iter()
        .zip(&spec.upper)
        .map(|(lo, hi)| match blocks {
            None => lo.abs().max(hi.abs()),
            Some(_) => hi - lo,
        })
        .collect()
}

/// The per-output L1 sensitivity, noise standard deviation, 95% half-width
/// and ε share, in output units, of a `map` release (`blocks` None) or a
/// sample-aggregate release over `blocks` blocks; reads no data.
pub fn noise_of(
    spec: &MapSpec,
    blocks: Option<usize>,
) -> Result<Vec<(f64, f64, f64, Epsilon)>, WasmError> {
    spec.validate().map_err(WasmError::Rejected)?;
    let k = blocks.unwrap_or(1) as f64;
    Ok(output_noise(&magnitudes(spec, blocks), spec.epsilon)?
        .iter()
        .map(|n| {
            (
                n.l1 as f64 / n.scale / k,
                n.mechanism.std_dev() / n.scale / k,
                n.mechanism.ci_halfwidth() / n.scale / k,
                n.epsilon,
            )
        })
        .collect())
}

/// Adds each output's noise to its fixed-point total and scales back.
fn release(
    noise: &[OutputNoise],
    totals: Vec<i64>,
    k: f64,
    shift: &[f64],
) -> Result<MapRelease, WasmError> {
    let mut r = MapRelease {
        sums: Vec::new(),
        ci95_halfwidth: Vec::new(),
        l1_sensitivity: Vec::new(),
        epsilon: Vec::new(),
    };
    for ((n, total), shift) in noise.iter().zip(totals).zip(shift) {
        let noised = n.mechanism.release(vec![total])?[0];
        r.sums.push(noised as f64 / n.scale / k + shift);
        r.ci95_halfwidth
            .push(n.mechanism.ci_halfwidth() / n.scale / k);
        r.l1_sensitivity.push(n.l1 as f64 / n.scale / k);
        r.epsilon.push(n.epsilon);
    }
    Ok(r)
}

/// Runs `guest` on every unit and releases the noised sum of the clamped
/// outputs. Each unit of `units` has at most `max_rows_per_unit` rows (the
/// schema's bound; a `map_value` guest's input region is sized by it, never
/// by the data).
pub fn run_map(
    guest: &Guest,
    spec: &MapSpec,
    units: &UnitRows,
    max_rows_per_unit: usize,
) -> Result<MapRelease, WasmError> {
    spec.validate().map_err(WasmError::Rejected)?;
    let d = spec.lower.len();
    let noise = output_noise(&magnitudes(spec, None), spec.epsilon)?;
    let mut totals = vec![0i64; d];
    let mut mapper = guest.mapper(max_rows_per_unit, units.width)?;
    for rows in (0..units.units()).map(|i| units.unit(i)) {
        let out = mapper.map(rows, d).unwrap_or_else(|| spec.default.clone());
        for i in 0..d {
            let v = out[i].clamp(spec.lower[i], spec.upper[i]);
            totals[i] += (v * noise[i].scale).round() as i64;
        }
    }
    release(&noise, totals, 1.0, &vec![0.0; d])
}

/// A `sample-aggregate` job (GUPT): units are split into `blocks` disjoint
/// blocks by a secret keyed hash, the guest maps each block's rows (all its
/// units' rows together) to a vector, the host clamps each vector to the
/// bounds (the default replaces a failed block) and releases their average
/// with noise. One unit lies in one block, so it moves the sum of block
/// outputs by at most `upper - lower` per output and the average by that
/// over `blocks`: the guest may compute anything (a trimmed mean, a model
/// fit) on its block.
#[derive(Debug, Clone)]
pub struct SampleAggregateSpec {
    pub bounds: MapSpec,
    pub blocks: usize,
}

/// Most blocks a sample-aggregate job may ask for.
pub const MAX_BLOCKS: usize = 100_000;

/// Runs `guest` on every block and releases the noised average of the
/// clamped block outputs.
pub fn run_sample_aggregate(
    guest: &Guest,
    spec: &SampleAggregateSpec,
    units: &UnitRows,
) -> Result<MapRelease, WasmError> {
    use std::hash::BuildHasher;
    let b = &spec.bounds;
    b.validate().map_err(WasmError::Rejected)?;
    if spec.blocks == 0 || spec.blocks > MAX_BLOCKS {
        return Err(WasmError::Rejected(format!(
            "blocks must be between 1 and {MAX_BLOCKS}"
        )));
    }
    let d = b.lower.len();
    // Fresh random keys: the assignment depends on no value and nobody can
    // predict it.
    let secret = std::collections::hash_map::RandomState::new();
    let mut block_rows: Vec<Vec<f64>> = vec![Vec::new(); spec.blocks];
    for i in 0..units.units() {
        let block = (secret.hash_one(i) % spec.blocks as u64) as usize;
        block_rows[block].extend_from_slice(units.unit(i));
    }
    let noise = output_noise(&magnitudes(b, Some(spec.blocks)), b.epsilon)?;
    let mut totals = vec![0i64; d];
    for rows in &block_rows {
        let out = guest
            .map_unit(rows, units.width, d)
            .unwrap_or_else(|| b.default.clone());
        for i in 0..d {
            // Shifted by the lower bound so each block adds within [0, width].
            let v = out[i].clamp(b.lower[i], b.upper[i]) - b.lower[i];
            totals[i] += (v * noise[i].scale).round() as i64;
        }
    }
    release(&noise, totals, spec.blocks as f64, &b.lower)
}
