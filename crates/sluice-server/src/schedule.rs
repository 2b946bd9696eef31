//! When a job's outcome becomes visible: predictive mitigation of timing
//! (Askarov, Zhang and Myers, CCS 2010; Zhang, Askarov and Myers, CCS
//! 2011). docs/threat-model.md ("Timing") states the bound this gives.
//!
//! At admission, before the sandbox reads anything, a job gets a
//! prediction `P` from data-independent inputs only: its kind and plan,
//! the manifest's declared limits, the row counts of the dataset versions
//! it reads rounded up to a power of two (public metadata), and a
//! calibration of this machine made on synthetic tasks. Everything its
//! submitter can observe changes only at `admitted + P·2^i` for `i` from
//! the principal's level up (capped at the job's deadline): the job's
//! state and timestamps, its release and its events. A job not done by its
//! due time is a misprediction: its principal's level rises for good, so
//! each principal can be surprised at most `log2(deadline / P)` times over
//! all its jobs. The sandbox is never held for the schedule: it ends when
//! its work ends and the outcome waits in the server.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How jobs are scheduled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingConfig {
    /// Off only to measure what the mitigation costs (benchmarks): then an
    /// outcome is visible as soon as it exists, and timing leaks.
    pub mitigate: bool,
    /// The shortest prediction.
    pub floor: Duration,
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            mitigate: true,
            floor: Duration::from_millis(200),
        }
    }
}

/// What a job will do, known before it reads data.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Sql {
        /// Rows of the versions it reads, each rounded up to a power of two.
        rows: u64,
        /// Tables it reads (joins and unions cost per table).
        tables: u64,
        /// Released cells (0 when keys are selected from the data).
        cells: u64,
    },
    Wasm {
        rows: u64,
        /// Guest runs: one per unit (map) or block (sample-aggregate).
        runs: u64,
        /// The fuel a run is expected to burn.
        fuel_per_run: u64,
    },
    Train {
        rows: u64,
        features: u64,
        epochs: u64,
        /// Fuel per unit and step of a custom gradient module, if any.
        fuel_per_unit: u64,
    },
}

/// Per-row and fixed costs of this machine and build.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// A sandbox's start, confinement and planning: measured at start-up
    /// on a synthetic task, or a conservative default until then.
    pub base: Duration,
    /// Nanoseconds per row and table of a SQL job.
    pub sql_row_ns: f64,
    /// Nanoseconds per released cell (noise and the release).
    pub cell_ns: f64,
    /// Nanoseconds per row handed to a WASM guest, before its own work.
    pub wasm_row_ns: f64,
    /// Nanoseconds per unit of WASM fuel.
    pub fuel_ns: f64,
    /// Nanoseconds per row, feature and epoch of training.
    pub train_ns: f64,
}

impl Default for Calibration {
    /// Debug builds (tests) run the engines about ten times slower.
    fn default() -> Self {
        let slow = if cfg!(debug_assertions) { 10.0 } else { 1.0 };
        Calibration {
            base: Duration::from_millis(if cfg!(debug_assertions) { 600 } else { 150 }),
            sql_row_ns: 100.0 * slow,
            cell_ns: 3_000.0 * slow,
            wasm_row_ns: 300.0 * slow,
            fuel_ns: 2.0 * slow,
            train_ns: 5.0 * slow,
        }
    }
}

/// Rows as predictions see them: the next power of two, so that a
/// prediction changes only when a version's size crosses one.
pub fn rounded_rows(rows: u64) -> u64 {
    rows.max(1).checked_next_power_of_two().unwrap_or(u64::MAX)
}

/// The prediction for `w`: twice the modelled cost, at least the floor.
pub fn predict(w: &Workload, c: &Calibration, config: &TimingConfig) -> Duration {
    let ns = match *w {
        Workload::Sql {
            rows,
            tables,
            cells,
        } => rows as f64 * tables.max(1) as f64 * c.sql_row_ns + cells as f64 * c.cell_ns,
        Workload::Wasm {
            rows,
            runs,
            fuel_per_run,
        } => rows as f64 * c.wasm_row_ns + runs as f64 * fuel_per_run as f64 * c.fuel_ns,
        Workload::Train {
            rows,
            features,
            epochs,
            fuel_per_unit,
        } => {
            rows as f64
                * epochs.max(1) as f64
                * ((features + 1) as f64 * c.train_ns + fuel_per_unit as f64 * c.fuel_ns)
        }
    };
    // Training plans, trains and evaluates: about two small jobs' fixed cost.
    let fixed = match w {
        Workload::Train { .. } => c.base * 2,
        _ => c.base,
    };
    let modelled = fixed + Duration::from_nanos(ns.min(1e18) as u64);
    (modelled * 2).max(config.floor)
}

/// The principal whose predictions a misprediction raises: the user under
/// the set of agreements a job runs under ("" for none).
pub fn principal_of(agreements: &[String]) -> String {
    let mut ids: Vec<&str> = agreements.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.join(",")
}

/// A running job's schedule: its outcome is visible at
/// `admitted + base·2^level`, capped at `admitted + cap`.
#[derive(Debug, Clone)]
pub struct Schedule {
    admitted: Instant,
    admitted_wall: SystemTime,
    base: Duration,
    level: u32,
    cap: Duration,
}

impl Schedule {
    pub fn new(base: Duration, level: u32, cap: Duration) -> Schedule {
        Schedule {
            admitted: Instant::now(),
            admitted_wall: SystemTime::now(),
            base,
            level,
            cap,
        }
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    /// From admission to the due time.
    pub fn offset(&self) -> Duration {
        let factor = 1u32.checked_shl(self.level.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// When the outcome becomes visible, unless the job is not done by then.
    pub fn due(&self) -> Instant {
        self.admitted + self.offset()
    }

    /// [`Schedule::due`] as wall-clock time, for what users read.
    pub fn due_wall(&self) -> SystemTime {
        self.admitted_wall + self.offset()
    }

    /// The job's deadline: no later due time exists.
    pub fn deadline(&self) -> Instant {
        self.admitted + self.cap
    }

    pub fn at_deadline(&self) -> bool {
        self.offset() >= self.cap
    }

    /// After a misprediction: the next due time, at `level` (the
    /// principal's new level, at least one above the job's).
    pub fn raise_to(&mut self, level: u32) {
        self.level = level.max(self.level + 1);
    }

    /// The most levels a principal can climb before predictions reach the
    /// deadline: the bound on mispredictions.
    pub fn max_level(base: Duration, cap: Duration) -> u32 {
        let mut level = 0;
        while base.saturating_mul(1u32.checked_shl(level).unwrap_or(u32::MAX)) < cap && level < 31 {
            level += 1;
        }
        level
    }
}

/// Rows of the synthetic table calibration runs on.
const CALIBRATION_ROWS: usize = 1000;

/// Measures this machine on a synthetic job, with no private data: ingests
/// a generated table into a scratch directory, then times three runs of a
/// small DP query over it, end to end (sandbox start, confinement,
/// planning, reading, noise). The slowest run becomes the base cost, and
/// the per-row defaults scale with it.
pub async fn calibrate(state: crate::SharedState) {
    use sluice_types::sandbox::{
        IngestTask, QueryTask, SandboxResponse, SandboxTable, SandboxTask,
    };
    use sluice_types::schema::{ColumnRole, ColumnSpec, ColumnType, DatasetSchema};
    let dir = state.config.data_dir.join("calibration");
    let mut value = ColumnSpec::new("v", ColumnRole::Attribute, ColumnType::Int);
    value.lower = Some(0.0);
    value.upper = Some(100.0);
    let schema = DatasetSchema {
        max_rows_per_unit: 2,
        id_space: "calibration".into(),
        columns: vec![
            ColumnSpec::new("pid", ColumnRole::PrivacyUnit, ColumnType::Text),
            value,
        ],
    };
    let mut csv = String::from("pid,v\n");
    for i in 0..CALIBRATION_ROWS {
        csv.push_str(&format!("p{},{}\n", i / 2, i % 101));
    }
    // Synthetic identifiers under a throwaway key: nothing links to real ones.
    let key = sluice_crypto::random_id("k");
    let key_hex = sluice_crypto::sha256_hex(key.as_bytes());
    let ingest = SandboxTask::Ingest(IngestTask {
        format: sluice_types::DataFormat::Csv,
        schema: schema.clone(),
        output_dir: dir.to_string_lossy().into_owned(),
        pseudonym_key_hex: key_hex,
    });
    let file = match crate::sandbox::run(&state, &ingest, csv.as_bytes()).await {
        Ok(SandboxResponse::Ingested { file_name, .. }) => dir.join(file_name),
        _ => {
            tracing::warn!("timing calibration could not prepare its table; defaults stay");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    let query = SandboxTask::Execute(QueryTask {
        query: "SELECT COUNT(*), SUM(v) FROM calibration".into(),
        tables: vec![SandboxTable {
            name: "calibration".into(),
            path: file.to_string_lossy().into_owned(),
            schema,
            bound_verified: false,
            public: false,
            in_bounds: vec![],
        }],
        epsilon: sluice_types::privacy::Epsilon::from_units(1_000_000_000),
        delta: sluice_types::privacy::Delta::ZERO,
        split: Default::default(),
    });
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let start = Instant::now();
        match crate::sandbox::run(&state, &query, &[]).await {
            Ok(SandboxResponse::Released { .. }) => slowest = slowest.max(start.elapsed()),
            _ => {
                tracing::warn!("timing calibration query failed; defaults stay");
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = state.calibration.write().expect("calibration");
    *c = c.scaled_to(slowest);
    tracing::info!(
        base_ms = c.base.as_millis() as u64,
        "timing calibrated on a synthetic job"
    );
}

impl Calibration {
    /// This calibration with `base` measured: per-row costs scale with it
    /// (a machine twice as slow at a small job is about twice as slow per
    /// row), within a factor of eight either way.
    pub fn scaled_to(self, base: Duration) -> Calibration {
        let factor = (base.as_secs_f64() / self.base.as_secs_f64()).clamp(0.125, 8.0);
        Calibration {
            base,
            sql_row_ns: self.sql_row_ns * factor,
            cell_ns: self.cell_ns * factor,
            wasm_row_ns: self.wasm_row_ns * factor,
            fuel_ns: self.fuel_ns * factor,
            train_ns: self.train_ns * factor,
        }
    }
}

/// `t` as RFC 3339 UTC with whole seconds, like every timestamp users read.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    sluice_types::time::rfc3339(secs)
}

/// `t` as RFC 3339 UTC with milliseconds: a due time, to poll it exactly.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = sluice_types::time::rfc3339(d.as_secs() as i64);
    format!("{}.{:03}Z", whole.trim_end_matches('Z'), d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_double_per_level_and_stop_at_the_deadline() {
        let mut s = Schedule::new(Duration::from_millis(300), 2, Duration::from_secs(4));
        assert_eq!(s.offset(), Duration::from_millis(1200));
        s.raise_to(0);
        assert_eq!(s.level(), 3, "a misprediction always climbs");
        assert_eq!(s.offset(), Duration::from_millis(2400));
        s.raise_to(3);
        assert_eq!(s.offset(), Duration::from_secs(4), "capped at the deadline");
        assert!(s.at_deadline());
        assert_eq!(
            Schedule::max_level(Duration::from_millis(300), Duration::from_secs(4)),
            4
        );
    }

    #[test]
    fn predictions_use_rounded_rows_and_the_floor() {
        assert_eq!(rounded_rows(1000), 1024);
        assert_eq!(rounded_rows(1024), 1024);
        assert_eq!(rounded_rows(0), 1);
        let c = Calibration {
            base: Duration::from_millis(100),
            sql_row_ns: 1000.0,
            cell_ns: 0.0,
            wasm_row_ns: 0.0,
            fuel_ns: 1.0,
            train_ns: 0.0,
        };
        let config = TimingConfig::default();
        let small = Workload::Sql {
            rows: 1,
            tables: 1,
            cells: 1,
        };
        // 2 × (100 ms + 1 µs), just above the floor.
        assert_eq!(predict(&small, &c, &config), Duration::from_micros(200_002));
        let tiny = Calibration {
            base: Duration::from_millis(10),
            ..c
        };
        assert_eq!(predict(&small, &tiny, &config), config.floor);
        let big = Workload::Sql {
            rows: 1 << 20,
            tables: 2,
            cells: 1,
        };
        // 2 × (100 ms + 2^21 rows-tables × 1 µs).
        assert_eq!(
            predict(&big, &c, &config),
            Duration::from_nanos(2 * (100_000_000 + 2_097_152_000))
        );
        let wasm = Workload::Wasm {
            rows: 1024,
            runs: 1024,
            fuel_per_run: 1_000_000,
        };
        assert!(predict(&wasm, &c, &config) > Duration::from_secs(2));
        assert_eq!(principal_of(&["b".into(), "a".into(), "b".into()]), "a,b");
    }

    #[test]
    fn due_times_print_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(rfc3339_millis(t), "1970-01-01T00:00:01.500Z");
        assert_eq!(rfc3339(t), "1970-01-01T00:00:01Z");
    }
}
