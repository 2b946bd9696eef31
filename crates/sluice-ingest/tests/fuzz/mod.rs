//! Structured fuzzing: valid sample files of every format, mutated (bits
//! flipped, bytes set, inserted, deleted, ranges repeated, the end cut off),
//! must give a stored batch or a clear error: never a panic in this crate's
//! code, never a hang, never a message that shows a value.
//!
//! The cases are bounded so that the whole run takes well under a minute in
//! a debug build, with a fixed seed so that CI is repeatable. A longer or
//! different search: `PROPTEST_CASES=100000 cargo test -p sluice-ingest
//! fuzz`, with `PROPTEST_RNG_SEED=<n>` for other cases.

use std::cell::RefCell;
use std::panic::PanicHookInfo;
use std::sync::{LazyLock, Once};
use std::time::{Duration, Instant};

use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};

use super::*;

/// One case may take this long before it counts as a hang.
const CASE_TIME: Duration = Duration::from_secs(5);

fn config(cases: u32) -> Config {
    // Config::default() reads PROPTEST_CASES and PROPTEST_RNG_SEED.
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x5_1c3);
    }
    // A failure becomes a named regression test, not a file beside this one.
    c.failure_persistence = None;
    c
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Repeat(Index, usize, u8),
    Truncate(Index),
}

/// Bytes that mean something to some format.
const TOKENS: &[&[u8]] = &[
    b",",
    b"\n",
    b"\r\n",
    b"\"",
    b"\"\"",
    b"<",
    b">",
    b"</",
    b"/>",
    b"&",
    b"&amp;",
    b"&#0;",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"null",
    b"1e999",
    b"-0",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\0",
    b"PK\x03\x04",
    b"PAR1",
    b"\xff\xff\xff\x7f",
    b"\x80\x80\x80\x80",
    b"\x00\x00\x00\x80",
    b"<row r=\"1048576\">",
    b"<c r=\"XFD1\">",
    b"t=\"s\"",
    b"<v>99999</v>",
];

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..16),
        prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), bytes()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..64, 1u8..8).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

fn apply(sample: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = sample.to_vec();
    for m in mutations {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        match m {
            Mutation::Flip(i, bit) if !b.is_empty() => {
                let p = at(i, b.len());
                b[p] ^= 1 << bit;
            }
            Mutation::Set(i, v) if !b.is_empty() => {
                let p = at(i, b.len());
                b[p] = *v;
            }
            Mutation::Insert(i, bytes) => {
                let p = at(i, b.len() + 1);
                b.splice(p..p, bytes.iter().copied());
            }
            Mutation::Delete(i, n) if !b.is_empty() => {
                let p = at(i, b.len());
                let end = (p + n).min(b.len());
                b.drain(p..end);
            }
            // A range repeated k more times: lengths and counts go out of step.
            Mutation::Repeat(i, n, k) if !b.is_empty() => {
                let p = at(i, b.len());
                let end = (p + n).min(b.len());
                let range = b[p..end].to_vec();
                for _ in 0..*k {
                    b.splice(end..end, range.iter().copied());
                }
            }
            Mutation::Truncate(i) => {
                let p = at(i, b.len() + 1);
                b.truncate(p);
            }
            _ => {}
        }
    }
    b
}

thread_local! {
    /// Where the last panic on this thread happened.
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Ingest turns a reader's panic into an error, which would hide a panic in
/// this crate's own code from the fuzzer; so a panic hook notes where each
/// panic happened (on its own thread) before the usual report.
fn note_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            PANICKED_AT.with(|p| *p.borrow_mut() = at);
            previous(info);
        }));
    });
}

/// Ingests the mutated file: an error must be clear and show no value, a
/// panic may only come from a parser crate, and the case must not hang.
fn check(format: DataFormat, sample: &[u8], mutations: &[Mutation]) -> Result<(), TestCaseError> {
    note_panics();
    let input = apply(sample, mutations);
    PANICKED_AT.with(|p| p.borrow_mut().take());
    let started = Instant::now();
    let outcome = ingest(&input, format, &schema(SMALL), &key());
    let elapsed = started.elapsed();
    prop_assert!(elapsed < CASE_TIME, "{format:?} took {elapsed:?}");
    if let Some(at) = PANICKED_AT.with(|p| p.borrow_mut().take()) {
        prop_assert!(
            !at.contains("sluice-ingest/src"),
            "{format:?}: this crate panicked at {at}"
        );
    }
    if let Err(e) = outcome {
        let msg = e.to_string();
        prop_assert!(!msg.is_empty());
        for raw in RAW_IDS {
            prop_assert!(!msg.contains(raw), "{format:?}: {msg:?} shows {raw:?}");
        }
    }
    Ok(())
}

fn parquet_with(props: WriterProperties) -> Vec<u8> {
    let original = formats::parquet();
    let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(original),
    )
    .unwrap()
    .build()
    .unwrap()
    .next()
    .unwrap()
    .unwrap();
    let mut out = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

/// Samples built once (immutable): writing them per case would dominate.
static XLSX: LazyLock<Vec<u8>> = LazyLock::new(formats::xlsx);
static PARQUET: LazyLock<Vec<Vec<u8>>> = LazyLock::new(parquet_samples);

/// The Parquet samples: the plain one, and snappy with v2 pages, zstd
/// without dictionaries, gzip.
fn parquet_samples() -> Vec<Vec<u8>> {
    let b = WriterProperties::builder;
    vec![
        formats::parquet(),
        parquet_with(
            b().set_compression(Compression::SNAPPY)
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .build(),
        ),
        parquet_with(
            b().set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_dictionary_enabled(false)
                .build(),
        ),
        parquet_with(
            b().set_compression(Compression::GZIP(GzipLevel::default()))
                .build(),
        ),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn fuzz_csv(m in mutations()) {
        check(DataFormat::Csv, CSV.as_bytes(), &m)?;
    }

    #[test]
    fn fuzz_json(m in mutations(), lines in any::<bool>()) {
        let sample = if lines { formats::json_lines() } else { formats::json_array() };
        check(DataFormat::Json, &sample, &m)?;
    }

    #[test]
    fn fuzz_xml(m in mutations()) {
        check(DataFormat::Xml, &formats::xml(), &m)?;
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn fuzz_xlsx(m in mutations()) {
        check(DataFormat::Xlsx, &XLSX, &m)?;
    }

    #[test]
    fn fuzz_parquet(m in mutations(), which in 0usize..4) {
        check(DataFormat::Parquet, &PARQUET[which], &m)?;
    }
}
