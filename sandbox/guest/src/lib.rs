//! Guest SDK for Sluice WASM jobs (see docs/wasm.md for the ABI).
//!
//! A guest gets one privacy unit's rows (or, in sample-aggregate mode, one
//! block's rows) and emits one vector of numbers. The host clamps it to the
//! manifest's bounds, aggregates over units and adds noise; a panic, trap
//! or missing output gives the unit the manifest's default.
//!
//! ```ignore
//! sluice_guest::map!(|unit: &sluice_guest::Unit| {
//!     let n = unit.rows().count() as f64;
//!     vec![n]
//! });
//! ```
//!
//! In DP training's `gradient` mode the guest also reads the model's
//! parameters and returns the unit's gradient (see [`gradient!`]).

#[link(wasm_import_module = "sluice")]
unsafe extern "C" {
    #[link_name = "column_count"]
    fn sluice_column_count() -> i32;
    #[link_name = "row_count"]
    fn sluice_row_count() -> i32;
    #[link_name = "read_rows"]
    fn sluice_read_rows(dst: i32, max_values: i32) -> i32;
    #[link_name = "emit"]
    fn sluice_emit(src: i32, len: i32) -> i32;
    #[link_name = "param_count"]
    fn sluice_param_count() -> i32;
    #[link_name = "read_params"]
    fn sluice_read_params(dst: i32, max_values: i32) -> i32;
}

/// The current unit's rows: row-major numbers, `columns` per row, in the
/// order of the manifest's input columns.
pub struct Unit {
    pub columns: usize,
    pub values: Vec<f64>,
}

impl Unit {
    /// Reads the current unit's rows from the host.
    pub fn read() -> Unit {
        // SAFETY: the host functions take and return plain integers; the
        // host checks that [ptr, ptr + 8 * len) lies in this memory.
        unsafe {
            let columns = sluice_column_count().max(0) as usize;
            let rows = sluice_row_count().max(0) as usize;
            let mut values = vec![0f64; rows * columns];
            let n = sluice_read_rows(values.as_mut_ptr() as usize as i32, values.len() as i32);
            values.truncate(n.max(0) as usize);
            Unit { columns, values }
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        self.values.chunks_exact(self.columns.max(1))
    }

    /// Column `c` of every row.
    pub fn column(&self, c: usize) -> impl Iterator<Item = f64> + '_ {
        self.rows().filter_map(move |r| r.get(c).copied())
    }
}

/// In `gradient` mode: the model's current parameters (intercept first).
/// They are public: the previous steps' noised releases.
pub fn params() -> Vec<f64> {
    // SAFETY: as in `Unit::read`.
    unsafe {
        let mut values = vec![0f64; sluice_param_count().max(0) as usize];
        let n = sluice_read_params(values.as_mut_ptr() as usize as i32, values.len() as i32);
        values.truncate(n.max(0) as usize);
        values
    }
}

/// Sends the unit's output vector; false if the host refused it (wrong
/// length). Only the first accepted output counts; a second makes the
/// unit's output malformed.
pub fn emit(output: &[f64]) -> bool {
    // SAFETY: as in `Unit::read`.
    unsafe { sluice_emit(output.as_ptr() as usize as i32, output.len() as i32) == 0 }
}

/// Defines the guest's `map` export from a function `&Unit -> Vec<f64>`.
#[macro_export]
macro_rules! map {
    ($f:expr) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn map() {
            let unit = $crate::Unit::read();
            let f: fn(&$crate::Unit) -> Vec<f64> = $f;
            $crate::emit(&f(&unit));
        }
    };
}

/// Defines the guest's `map_value` export from a function
/// `(&[f64], usize) -> f64`: the unit's values (row-major, the manifest's
/// columns in order) and an output's index, to that output. The host then
/// runs every unit in one instance, which is much faster than `map!`'s
/// fresh instance per unit, but only if the function provably cannot
/// change the module's state: no writes to memory (so no allocation, no
/// `Vec`, no mutable statics), no host calls, no panics that format a
/// message (prefer iterators to indexing). A module that could is refused
/// with the instruction and function named; use `map!` for such code.
#[macro_export]
macro_rules! map_value {
    ($f:expr) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn map_value(address: i32, count: i32, output: i32) -> f64 {
            // SAFETY: the host passes `count` f64s it wrote at `address` in
            // this module's memory, valid for the duration of the call.
            let values = unsafe {
                core::slice::from_raw_parts(address as usize as *const f64, count.max(0) as usize)
            };
            let f: fn(&[f64], usize) -> f64 = $f;
            f(values, output.max(0) as usize)
        }
    };
}

/// Defines the guest's `gradient` export (DP training, docs/learn.md) from a
/// function `(&Unit, &[f64]) -> Vec<f64>`: the unit's rows (each row the
/// intercept's 1, the features scaled to [-1, 1], then the label) and the
/// parameters, to the unit's gradient, one number per parameter. The host
/// clips it to the manifest's `clip_norm` and adds noise.
#[macro_export]
macro_rules! gradient {
    ($f:expr) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn gradient() {
            let unit = $crate::Unit::read();
            let params = $crate::params();
            let f: fn(&$crate::Unit, &[f64]) -> Vec<f64> = $f;
            $crate::emit(&f(&unit, &params));
        }
    };
}
