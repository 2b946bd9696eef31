//! How much work one upload may cause. The defaults and their reasons are in
//! docs/ingest.md; readers check each bound as they stream, never after
//! materialising what the bound is about.

use std::fmt;
use std::io::{self, Read};

use crate::{IngestError, MAX_INPUT_BYTES};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Bounds on one ingest. The first group is checked by this crate; the last
/// two are for the process that runs it (the sandbox sets them as rlimits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Bytes of the upload as received.
    pub input_bytes: u64,
    /// Bytes a compressed format expands to: all entries of an XLSX zip, all
    /// pages of a Parquet file plus its footer.
    pub decompressed_bytes: u64,
    /// Bytes of a Parquet footer, which is parsed whole into structures
    /// several times its size.
    pub footer_bytes: u64,
    /// Bytes of one text value.
    pub cell_bytes: usize,
    /// Data records (for XLSX: rows of a sheet, header and blank rows too).
    pub rows: u64,
    /// Columns of the file and of the schema.
    pub columns: usize,
    /// Memory the parsed values take before the stored batch is built: the
    /// typed cells, a fixed cost per row, and what the XLSX reader keeps
    /// (shared strings, styles). The batch and the stored file need about as
    /// much again.
    pub parsed_bytes: u64,
    /// Address space of the process that runs ingest (`RLIMIT_AS`).
    pub process_memory_bytes: u64,
    /// CPU seconds of the process that runs ingest (`RLIMIT_CPU`).
    pub process_cpu_seconds: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            input_bytes: MAX_INPUT_BYTES as u64,
            decompressed_bytes: GIB,
            footer_bytes: 16 * MIB,
            cell_bytes: sluice_types::schema::MAX_CELL_BYTES,
            rows: 100_000_000,
            columns: 1_000,
            parsed_bytes: 2 * GIB,
            // input (and its copy) + parsed values + the batch + headroom
            // for the runtime and allocator arenas.
            process_memory_bytes: 8 * GIB,
            process_cpu_seconds: 300,
        }
    }
}

/// Which bound an upload went over; shown as `(limit: <name>)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    InputSize,
    DecompressedSize,
    FooterSize,
    CellSize,
    Rows,
    Columns,
    ParsedSize,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::InputSize => "upload size",
            Limit::DecompressedSize => "decompressed size",
            Limit::FooterSize => "footer size",
            Limit::CellSize => "cell size",
            Limit::Rows => "rows",
            Limit::Columns => "columns",
            Limit::ParsedSize => "parsed size",
        })
    }
}

pub(crate) fn over(limit: Limit, what: String) -> IngestError {
    IngestError::Limit { what, limit }
}

/// Reads at most `cap` bytes from `inner`, and fails (rather than ending) if
/// there is more: a decompressor behind it stops as soon as the cap is
/// passed, having produced at most one buffer more.
pub(crate) struct Capped<R> {
    inner: R,
    left: u64,
    pub over: bool,
}

impl<R: Read> Capped<R> {
    pub fn new(inner: R, cap: u64) -> Self {
        Capped {
            inner,
            left: cap,
            over: false,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One byte more than the cap decides it; nothing is kept.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                self.over = true;
                return Err(io::Error::other("over the cap"));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Proptest settings of this crate's fuzz tests: `cases` unless
/// PROPTEST_CASES says otherwise, a fixed seed unless PROPTEST_RNG_SEED does.
#[cfg(test)]
pub(crate) fn fuzz_config(cases: u32) -> proptest::test_runner::Config {
    let mut c = proptest::test_runner::Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x5_1c3);
    }
    c.failure_persistence = None;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads_up_to_the_cap_and_fails_past_it() {
        let mut out = Vec::new();
        let mut r = Capped::new(&b"abcdef"[..], 6);
        r.read_to_end(&mut out).unwrap();
        assert_eq!((out.as_slice(), r.over), (&b"abcdef"[..], false));
        let mut r = Capped::new(&b"abcdefg"[..], 6);
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        assert!(r.over);
    }

    #[test]
    fn limits_are_named() {
        let e = over(
            Limit::DecompressedSize,
            "the XLSX workbook decompresses to more than 7 bytes".into(),
        );
        assert_eq!(
            e.to_string(),
            "the XLSX workbook decompresses to more than 7 bytes (limit: decompressed size)"
        );
    }
}
