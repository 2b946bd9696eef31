//! Limits. A decompression bomb of every compressed format is refused,
//! naming the limit, within 5 s, by a process that runs under the
//! address-space limit the sandbox sets for ingest; and the limits shared by
//! every format (cell size, rows, columns, parsed size) hold for each.

mod bombs;

use std::process::Command;
use std::time::{Duration, Instant};

use bombs::{Piece, Run};
use sluice_ingest::{IngestLimits, Limit, ingest_with_limits};

use super::*;

/// A correctness bound, not a benchmark: a bomb is refused before it is
/// expanded, so even a debug build refuses it in well under this.
const REFUSAL: Duration = Duration::from_secs(5);
/// Peak resident memory of the refusing process: the bomb is never
/// expanded (the largest one is about 50 MiB on disk, the test binary and
/// its heap take the rest).
const PEAK_RSS: u64 = 512 * 1024 * 1024;
const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;

const NOTE: &str = r#"
[[columns]]
name = "note"
type = "text"
"#;

/// Set in the child process: the test to run and the file to ingest.
const CHILD_TEST: &str = "SLUICE_INGEST_BOMB_TEST";
const CHILD_FILE: &str = "SLUICE_INGEST_BOMB_FILE";

/// How the child process refused a bomb.
#[derive(Debug)]
struct Refusal {
    limit: String,
    message: String,
    elapsed: Duration,
    /// VmHWM and VmPeak of the child, in bytes.
    peak_rss: u64,
    peak_vm: u64,
}

/// Builds the bomb, then ingests it in a child process (this test binary,
/// running only `test`) under `RLIMIT_AS` = the ingest process memory
/// limit, as the sandbox does, and checks that it is refused within
/// [`REFUSAL`] naming `limit` with `text`, and how much memory it took.
/// In the child (`test` in [`CHILD_TEST`]), runs the ingest instead.
fn check_bomb(
    test: &str,
    format: DataFormat,
    limits: IngestLimits,
    bomb: impl FnOnce() -> Vec<u8>,
    limit: Limit,
    text: &str,
) {
    if std::env::var(CHILD_TEST).as_deref() == Ok(test) {
        child(format, &limits);
        return;
    }
    let bytes = bomb();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb");
    std::fs::write(&path, &bytes).unwrap();
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_TEST, test)
        .env(CHILD_FILE, &path)
        .output()
        .unwrap();
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{test}: the child failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest may print the test's name on the same line.
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("BOMB ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("{test}: the child ran no ingest: {stdout}"));
    let mut fields = line.splitn(5, ' ');
    let mut number = || fields.next().unwrap().parse::<u64>().unwrap();
    let (micros, peak_rss, peak_vm) = (number(), number(), number());
    let limit_name = fields.next().unwrap().to_owned();
    let r = Refusal {
        limit: limit_name,
        message: fields.next().unwrap_or_default().to_owned(),
        elapsed: Duration::from_micros(micros),
        peak_rss,
        peak_vm,
    };
    eprintln!(
        "{test}: {} bytes on disk; refused in {:?} (child wall time {wall:?}), peak RSS {} MiB, peak VM {} MiB: {}",
        bytes.len(),
        r.elapsed,
        r.peak_rss >> 20,
        r.peak_vm >> 20,
        r.message
    );
    assert_eq!(r.limit, format!("{limit:?}"), "{test}: {r:?}");
    assert!(r.message.contains(text), "{test}: {r:?}");
    assert!(
        r.message.ends_with(&format!("(limit: {limit})")),
        "{test}: {r:?}"
    );
    assert!(r.elapsed < REFUSAL, "{test}: {r:?}");
    // The child ran under RLIMIT_AS: had it needed more, it would have
    // aborted and failed above.
    assert!(r.peak_rss < PEAK_RSS, "{test}: {r:?}");
}

/// The child's side: ingest the file under the process memory limit and
/// print one line: micros, VmHWM, VmPeak, the limit, the message.
fn child(format: DataFormat, limits: &IngestLimits) {
    use nix::sys::resource::{Resource, setrlimit};
    let input = std::fs::read(std::env::var(CHILD_FILE).unwrap()).unwrap();
    let v = limits.process_memory_bytes;
    setrlimit(Resource::RLIMIT_AS, v, v).unwrap();
    let started = Instant::now();
    let outcome = ingest_with_limits(&input, format, &schema(NOTE), &key(), limits);
    let elapsed = started.elapsed();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib = |field: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    let (limit, message) = match outcome {
        Ok(_) => ("accepted".to_owned(), String::new()),
        Err(e @ IngestError::Limit { limit, .. }) => (format!("{limit:?}"), e.to_string()),
        Err(e) => ("other".to_owned(), e.to_string()),
    };
    println!(
        "BOMB {} {} {} {limit} {message}",
        elapsed.as_micros(),
        kib("VmHWM:"),
        kib("VmPeak:")
    );
}

fn defaults() -> IngestLimits {
    IngestLimits::default()
}

/// A sheet whose second row holds one inline string of `len` bytes.
fn inline_string_sheet(len: usize) -> Vec<Piece<'static>> {
    vec![
        Piece::Bytes(bombs::SHEET_START.as_bytes()),
        Piece::Bytes(br#"<row r="1"><c r="A1" t="inlineStr"><is><t>note</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>"#),
        Piece::Run(Run { unit: b"a", len }),
        Piece::Bytes(b"</t></is></c></row>"),
        Piece::Bytes(bombs::SHEET_END.as_bytes()),
    ]
}

const ROW: &[u8] = br#"<row><c t="inlineStr"><is><t>x</t></is></c></row>"#;

/// A sheet with a header and `rows` identical one-cell rows.
fn many_rows_sheet(rows: usize) -> Vec<Piece<'static>> {
    vec![
        Piece::Bytes(bombs::SHEET_START.as_bytes()),
        Piece::Bytes(br#"<row><c t="inlineStr"><is><t>note</t></is></c></row>"#),
        Piece::Run(Run {
            unit: ROW,
            len: rows * ROW.len(),
        }),
        Piece::Bytes(bombs::SHEET_END.as_bytes()),
    ]
}

#[test]
fn xlsx_inline_string_bomb_is_refused_by_its_declared_size() {
    check_bomb(
        "limits::xlsx_inline_string_bomb_is_refused_by_its_declared_size",
        DataFormat::Xlsx,
        defaults(),
        || bombs::workbook(bombs::SHEET, inline_string_sheet(GIB), None),
        Limit::DecompressedSize,
        "the XLSX workbook decompresses to more than 1073741824 bytes",
    );
}

#[test]
fn xlsx_inline_string_bomb_with_a_false_size_is_refused_at_its_cap() {
    check_bomb(
        "limits::xlsx_inline_string_bomb_with_a_false_size_is_refused_at_its_cap",
        DataFormat::Xlsx,
        defaults(),
        || bombs::workbook(bombs::SHEET, inline_string_sheet(GIB), Some(4096)),
        Limit::DecompressedSize,
        "the XLSX sheet decompresses to more than the 4096 bytes its zip entry declares",
    );
}

#[test]
fn xlsx_inline_string_within_the_decompressed_size_is_refused_at_the_cell_size() {
    check_bomb(
        "limits::xlsx_inline_string_within_the_decompressed_size_is_refused_at_the_cell_size",
        DataFormat::Xlsx,
        defaults(),
        || bombs::workbook(bombs::SHEET, inline_string_sheet(1000 * MIB), None),
        Limit::CellSize,
        "the XLSX sheet has a value of more than 65536 bytes",
    );
}

#[test]
fn xlsx_shared_string_bomb_is_refused_at_the_cell_size() {
    let table = || {
        vec![
            Piece::Bytes(br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="2" uniqueCount="2"><si><t>note</t></si><si><t>"#),
            Piece::Run(Run {
                unit: b"b",
                len: 1000 * MIB,
            }),
            Piece::Bytes(b"</t></si></sst>"),
        ]
    };
    check_bomb(
        "limits::xlsx_shared_string_bomb_is_refused_at_the_cell_size",
        DataFormat::Xlsx,
        defaults(),
        || bombs::workbook(bombs::SHARED_STRINGS, table(), None),
        Limit::CellSize,
        "the XLSX shared string table has a value of more than 65536 bytes",
    );
}

#[test]
fn xlsx_many_rows_bomb_is_refused_by_its_declared_size() {
    check_bomb(
        "limits::xlsx_many_rows_bomb_is_refused_by_its_declared_size",
        DataFormat::Xlsx,
        defaults(),
        || bombs::workbook(bombs::SHEET, many_rows_sheet(3 * GIB / 2 / ROW.len()), None),
        Limit::DecompressedSize,
        "the XLSX workbook decompresses to more than 1073741824 bytes",
    );
}

/// Within the decompressed size, rows are counted as the sheet streams.
/// (With the default 100 million rows the scan would take 600 MB of
/// `<row/>`, seconds in a release build but too long in a debug one.)
#[test]
fn xlsx_many_rows_are_refused_at_the_rows_limit_as_they_stream() {
    let limits = IngestLimits {
        rows: 10_000,
        ..defaults()
    };
    check_bomb(
        "limits::xlsx_many_rows_are_refused_at_the_rows_limit_as_they_stream",
        DataFormat::Xlsx,
        limits,
        || bombs::workbook(bombs::SHEET, many_rows_sheet(500 * MIB / ROW.len()), None),
        Limit::Rows,
        "the XLSX sheet has more than 10000 rows",
    );
}

#[test]
fn parquet_snappy_bomb_is_refused_by_its_declared_size() {
    check_bomb(
        "limits::parquet_snappy_bomb_is_refused_by_its_declared_size",
        DataFormat::Parquet,
        defaults(),
        || {
            let page = bombs::one_value_page(b'A', |n| bombs::snappy_run(b'A', n), None);
            bombs::parquet(bombs::snappy(), vec![page], 1, None)
        },
        Limit::DecompressedSize,
        "the Parquet file decompresses to more than 1073741824 bytes",
    );
}

#[test]
fn parquet_zstd_bomb_is_refused_by_its_declared_size() {
    check_bomb(
        "limits::parquet_zstd_bomb_is_refused_by_its_declared_size",
        DataFormat::Parquet,
        defaults(),
        || {
            let page = bombs::one_value_page(b'A', |n| bombs::zstd_run(b'A', n), None);
            bombs::parquet(bombs::zstd(), vec![page], 1, None)
        },
        Limit::DecompressedSize,
        "the Parquet file decompresses to more than 1073741824 bytes",
    );
}

/// The footer says the chunk is small; its page header tells the truth.
#[test]
fn parquet_zstd_bomb_with_a_false_footer_is_refused_by_its_page_header() {
    check_bomb(
        "limits::parquet_zstd_bomb_with_a_false_footer_is_refused_by_its_page_header",
        DataFormat::Parquet,
        defaults(),
        || {
            let page = bombs::one_value_page(b'A', |n| bombs::zstd_run(b'A', n), None);
            bombs::parquet(bombs::zstd(), vec![page], 1, Some(100))
        },
        Limit::DecompressedSize,
        "the Parquet pages decompress to more than 1073741824 bytes",
    );
}

/// Footer and page header both say 1000 bytes; the GZIP stream inflates to
/// a gibibyte, which the parquet crate's decoder would read to the end.
#[test]
fn parquet_gzip_bomb_with_false_sizes_is_refused_at_its_cap() {
    check_bomb(
        "limits::parquet_gzip_bomb_with_false_sizes_is_refused_at_its_cap",
        DataFormat::Parquet,
        defaults(),
        || {
            let page = bombs::one_value_page(
                b'A',
                |n| bombs::gzip(&[Piece::Run(Run { unit: b"A", len: n })]),
                Some(1000),
            );
            bombs::parquet(bombs::gzip_codec(), vec![page], 1, Some(1000))
        },
        Limit::DecompressedSize,
        "a Parquet GZIP page decompresses to more than the 1000 bytes its header declares",
    );
}

/// 200 million rows in a few bytes: one dictionary value, every row an
/// RLE run of key 0 (bit width 0).
fn rle_rows(rows: u32) -> Vec<u8> {
    use bytes::Bytes;
    use parquet::basic::Encoding;
    use parquet::column::page::{CompressedPage, Page};
    let dictionary = Page::DictionaryPage {
        buf: Bytes::from_static(&[1, 0, 0, 0, b'x']),
        num_values: 1,
        encoding: Encoding::PLAIN,
        is_sorted: false,
    };
    let mut keys = vec![0u8]; // bit width
    let mut run = u64::from(rows) << 1;
    while run >= 0x80 {
        keys.push(run as u8 | 0x80);
        run >>= 7;
    }
    keys.push(run as u8);
    let data = Page::DataPage {
        buf: Bytes::from(keys.clone()),
        num_values: rows,
        encoding: Encoding::RLE_DICTIONARY,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    };
    let pages = vec![
        CompressedPage::new(dictionary, 5),
        CompressedPage::new(data, keys.len()),
    ];
    bombs::parquet(
        parquet::basic::Compression::UNCOMPRESSED,
        pages,
        i64::from(rows),
        None,
    )
}

#[test]
fn parquet_rle_rows_bomb_is_refused_at_the_rows_limit() {
    check_bomb(
        "limits::parquet_rle_rows_bomb_is_refused_at_the_rows_limit",
        DataFormat::Parquet,
        defaults(),
        || rle_rows(200_000_000),
        Limit::Rows,
        "the Parquet file has 200000000 rows, more than 100000000",
    );
}

/// The same construction with few rows is a valid file: the bomb above is
/// refused for its rows, not for being malformed.
#[test]
fn rle_rows_file_is_valid_when_small() {
    let got = run(&rle_rows(5), DataFormat::Parquet, &schema(NOTE)).unwrap();
    assert_eq!(got.report.rows, 5);
    let notes = got.batch.column(0).as_string::<i32>();
    assert!((0..5).all(|i| notes.value(i) == "x"));
}

/// So are the hand-made one-value pages, at a size that can be read.
#[test]
fn hand_made_pages_are_valid_when_small() {
    let value = |b: u8| u32::from_le_bytes([b; 4]) as usize;
    // 0x02020202 is 34 MB: small enough to read.
    let b = 2u8;
    let n = 4 + value(b);
    let limits = IngestLimits {
        cell_bytes: n,
        ..defaults()
    };
    let files = [
        bombs::parquet(
            bombs::snappy(),
            vec![bombs::one_value_page(b, |n| bombs::snappy_run(b, n), None)],
            1,
            None,
        ),
        bombs::parquet(
            bombs::zstd(),
            vec![bombs::one_value_page(b, |n| bombs::zstd_run(b, n), None)],
            1,
            None,
        ),
        bombs::parquet(
            bombs::gzip_codec(),
            vec![bombs::one_value_page(
                b,
                |n| bombs::gzip(&[Piece::Run(Run { unit: &[2], len: n })]),
                None,
            )],
            1,
            None,
        ),
    ];
    for file in files {
        let got =
            ingest_with_limits(&file, DataFormat::Parquet, &schema(NOTE), &key(), &limits).unwrap();
        let notes = got.batch.column(0).as_string::<i32>();
        assert_eq!(notes.value(0).len(), value(b));
        assert!(notes.value(0).bytes().all(|c| c == b));
    }
}

/// A workbook made by [`bombs::workbook`] from a small sheet reads as
/// expected, so the bombs are refused for their size alone.
#[test]
fn hand_made_workbooks_are_valid_when_small() {
    let got = run(
        &bombs::workbook(bombs::SHEET, inline_string_sheet(1000), None),
        DataFormat::Xlsx,
        &schema(NOTE),
    )
    .unwrap();
    assert_eq!(
        got.batch.column(0).as_string::<i32>().value(0),
        "a".repeat(1000)
    );
    let got = run(
        &bombs::workbook(bombs::SHEET, many_rows_sheet(5000), None),
        DataFormat::Xlsx,
        &schema(NOTE),
    )
    .unwrap();
    assert_eq!(got.report.rows, 5000);
}

mod shared {
    use super::*;

    fn limits() -> IngestLimits {
        IngestLimits {
            cell_bytes: 16,
            rows: 3,
            columns: 2,
            ..defaults()
        }
    }

    /// The file `cells` (a header "note", then each value a row) in `format`.
    fn file(format: DataFormat, header: &[&str], rows: &[Vec<&str>]) -> Vec<u8> {
        match format {
            DataFormat::Csv => {
                let mut s = header.join(",");
                for r in rows {
                    s.push('\n');
                    s.push_str(&r.join(","));
                }
                s.into_bytes()
            }
            DataFormat::Json => {
                let records: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        header
                            .iter()
                            .zip(r)
                            .map(|(h, v)| ((*h).to_owned(), serde_json::json!(v)))
                            .collect::<serde_json::Map<_, _>>()
                            .into()
                    })
                    .collect();
                serde_json::to_vec(&records).unwrap()
            }
            DataFormat::Xml => {
                let mut s = String::from("<rows>");
                for r in rows {
                    s.push_str("<row>");
                    for (h, v) in header.iter().zip(r) {
                        s.push_str(&format!("<{h}>{v}</{h}>"));
                    }
                    s.push_str("</row>");
                }
                s.push_str("</rows>");
                s.into_bytes()
            }
            DataFormat::Xlsx => {
                let mut book = rust_xlsxwriter::Workbook::new();
                let sheet = book.add_worksheet();
                for (c, h) in header.iter().enumerate() {
                    sheet.write_string(0, c as u16, *h).unwrap();
                }
                for (r, row) in rows.iter().enumerate() {
                    for (c, v) in row.iter().enumerate() {
                        sheet.write_string(r as u32 + 1, c as u16, *v).unwrap();
                    }
                }
                book.save_to_buffer().unwrap()
            }
            DataFormat::Parquet => {
                let columns: Vec<(&str, ArrayRef)> = header
                    .iter()
                    .enumerate()
                    .map(|(c, h)| {
                        let values: Vec<&str> = rows.iter().map(|r| r[c]).collect();
                        (
                            *h,
                            Arc::new(arrow::array::StringArray::from(values)) as ArrayRef,
                        )
                    })
                    .collect();
                let batch = RecordBatch::try_from_iter(columns).unwrap();
                let mut out = Vec::new();
                let mut w =
                    parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
                w.write(&batch).unwrap();
                w.close().unwrap();
                out
            }
        }
    }

    const FORMATS: [DataFormat; 5] = [
        DataFormat::Csv,
        DataFormat::Json,
        DataFormat::Xml,
        DataFormat::Xlsx,
        DataFormat::Parquet,
    ];

    fn refused(
        format: DataFormat,
        bytes: &[u8],
        s: &DatasetSchema,
        limits: &IngestLimits,
    ) -> (Limit, String) {
        match ingest_with_limits(bytes, format, s, &key(), limits) {
            Err(e @ IngestError::Limit { limit, .. }) => (limit, e.to_string()),
            other => panic!("{format:?}: {other:?}"),
        }
    }

    #[test]
    fn a_long_value_is_refused_by_every_format_without_showing_it() {
        let long = "s3cr3t".repeat(3);
        let rows = vec![vec!["fine"], vec![long.as_str()]];
        for format in FORMATS {
            let (limit, msg) = refused(
                format,
                &file(format, &["note"], &rows),
                &schema(NOTE),
                &limits(),
            );
            assert_eq!(limit, Limit::CellSize, "{format:?}: {msg}");
            assert!(!msg.contains("s3cr3t"), "{format:?}: {msg}");
            // XLSX's shared strings are measured before the sheet is read.
            if format != DataFormat::Xlsx {
                assert_eq!(
                    msg,
                    "row 2, column \"note\" has a value of more than 16 bytes (limit: cell size)",
                    "{format:?}"
                );
            }
        }
        let ok = vec![vec!["sixteen bytes ok"]];
        for format in FORMATS {
            assert!(
                ingest_with_limits(
                    &file(format, &["note"], &ok),
                    format,
                    &schema(NOTE),
                    &key(),
                    &limits()
                )
                .is_ok(),
                "{format:?}"
            );
        }
    }

    #[test]
    fn rows_over_the_limit_are_refused_by_every_format() {
        let rows: Vec<Vec<&str>> = (0..4).map(|_| vec!["x"]).collect();
        for format in FORMATS {
            let (limit, msg) = refused(
                format,
                &file(format, &["note"], &rows),
                &schema(NOTE),
                &limits(),
            );
            assert_eq!(limit, Limit::Rows, "{format:?}: {msg}");
        }
        for format in FORMATS {
            let three = &rows[..3];
            assert!(
                ingest_with_limits(
                    &file(format, &["note"], three),
                    format,
                    &schema(NOTE),
                    &key(),
                    &limits()
                )
                .is_ok(),
                "{format:?}"
            );
        }
    }

    #[test]
    fn columns_over_the_limit_are_refused() {
        // Formats with a header: the file's columns, before names are matched.
        let rows = vec![vec!["1", "2", "3"]];
        for format in [DataFormat::Csv, DataFormat::Xlsx, DataFormat::Parquet] {
            let (limit, msg) = refused(
                format,
                &file(format, &["a", "b", "c"], &rows),
                &schema(NOTE),
                &limits(),
            );
            assert_eq!(limit, Limit::Columns, "{format:?}: {msg}");
        }
        // Keyed formats take only declared columns: the schema is checked.
        let wide = schema(&["note", "b", "c"].map(|c| NOTE.replace("note", c)).concat());
        assert_eq!(wide.columns.len(), 3);
        for format in FORMATS {
            let (limit, msg) = refused(
                format,
                &file(format, &["note", "b", "c"], &rows),
                &wide,
                &limits(),
            );
            assert_eq!(limit, Limit::Columns, "{format:?}: {msg}");
            assert!(
                msg.contains("the schema declares 3 columns, more than 2"),
                "{msg}"
            );
        }
    }

    #[test]
    fn parsed_size_is_counted_as_values_arrive() {
        let limits = IngestLimits {
            parsed_bytes: 1000,
            ..defaults()
        };
        // 64 bytes a row and 24 + 32 for each short text cell: 120 a row.
        let rows: Vec<Vec<&str>> = (0..9).map(|_| vec!["x"]).collect();
        for format in FORMATS {
            let bytes = file(format, &["note"], &rows);
            let (limit, msg) = refused(format, &bytes, &schema(NOTE), &limits);
            assert_eq!(limit, Limit::ParsedSize, "{format:?}: {msg}");
            let eight = file(format, &["note"], &rows[..8]);
            if format != DataFormat::Xlsx {
                assert!(ingest_with_limits(&eight, format, &schema(NOTE), &key(), &limits).is_ok());
            }
        }
    }

    /// Files written by the parquet crate with every codec ingest reads and
    /// both page versions: the page-header walk agrees with the writer.
    #[test]
    fn parquet_with_every_codec_and_page_version_is_read() {
        use parquet::basic::Compression;
        use parquet::file::properties::{WriterProperties, WriterVersion};
        let values: Vec<Option<&str>> = (0..3000)
            .map(|i| (i % 7 != 0).then_some(if i % 2 == 0 { "even" } else { "odd" }))
            .collect();
        let batch = RecordBatch::try_from_iter(vec![(
            "note",
            Arc::new(arrow::array::StringArray::from(values.clone())) as ArrayRef,
        )])
        .unwrap();
        for codec in [
            Compression::UNCOMPRESSED,
            bombs::snappy(),
            bombs::zstd(),
            bombs::gzip_codec(),
        ] {
            for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
                for dictionary in [true, false] {
                    let props = WriterProperties::builder()
                        .set_compression(codec)
                        .set_writer_version(version)
                        .set_dictionary_enabled(dictionary)
                        .set_data_page_row_count_limit(500)
                        .build();
                    let mut out = Vec::new();
                    let mut w =
                        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
                            .unwrap();
                    w.write(&batch).unwrap();
                    w.close().unwrap();
                    let what = format!("{codec:?} {version:?} dictionary {dictionary}");
                    let got = run(&out, DataFormat::Parquet, &schema(NOTE))
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    let notes = got.batch.column(0).as_string::<i32>();
                    let back: Vec<Option<&str>> = (0..notes.len())
                        .map(|i| notes.is_valid(i).then(|| notes.value(i)))
                        .collect();
                    assert_eq!(back, values, "{what}");
                }
            }
        }
    }

    #[test]
    fn unboundable_parquet_codecs_and_nested_columns_are_refused() {
        use parquet::basic::{BrotliLevel, Compression};
        // Refused from the footer, before any page is read.
        for (codec, name) in [
            (Compression::BROTLI(BrotliLevel::default()), "BROTLI"),
            (Compression::LZ4, "LZ4 (Hadoop)"),
            (Compression::LZO, "LZO"),
        ] {
            let page = bombs::one_value_page(b'A', |n| vec![b'A'; n.min(16)], Some(16));
            let file = bombs::parquet(codec, vec![page], 1, None);
            let e = run(&file, DataFormat::Parquet, &schema(NOTE)).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("unsupported Parquet feature: the {name} codec")),
                "{e}"
            );
        }
        let list = arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Int32Type, _, _>(
            vec![Some(vec![Some(1)])],
        );
        let nested =
            RecordBatch::try_from_iter(vec![("note", Arc::new(list) as ArrayRef)]).unwrap();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, nested.schema(), None).unwrap();
        w.write(&nested).unwrap();
        w.close().unwrap();
        let e = run(&out, DataFormat::Parquet, &schema(NOTE)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parquet file is malformed: column \"note\" is nested (a list, map or struct); ingest reads flat columns only"
        );
    }
}
