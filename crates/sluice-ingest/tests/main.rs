//! Ingest: formats, errors without values, pseudonymisation, quality
//! reports checked against independent counts, and stored versions.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use sluice_crypto::Pseudonymizer;
use sluice_ingest::{IngestError, ingest, write_version};
use sluice_types::DataFormat;
use sluice_types::schema::DatasetSchema;

fn schema(toml_text: &str) -> DatasetSchema {
    let s: DatasetSchema = toml::from_str(toml_text).unwrap();
    s.validate().unwrap();
    s
}

const SMALL: &str = r#"
max_rows_per_unit = 2
id_space = "person"
[[columns]]
name = "pid"
role = "privacy_unit"
type = "int"
[[columns]]
name = "name"
role = "identifier"
type = "text"
[[columns]]
name = "age"
type = "int"
lower = 0
upper = 100
[[columns]]
name = "score"
type = "float"
[[columns]]
name = "member"
type = "bool"
"#;

fn key() -> Pseudonymizer {
    Pseudonymizer::new(&[7u8; 32])
}

const CSV: &str = "pid,name,age,score,member\n1,Ada Quill,30,1.5,true\n2,Bo Frame,140,,false\n1,Ada Quill,31,2.5,true\n";

fn small_inputs() -> Vec<(DataFormat, Vec<u8>)> {
    let json_array = br#"[{"pid":1,"name":"Ada Quill","age":30,"score":1.5,"member":true},
        {"pid":2,"name":"Bo Frame","age":140,"score":null,"member":false},
        {"pid":1,"name":"Ada Quill","age":31,"score":2.5,"member":true}]"#
        .to_vec();
    let json_lines =
        b"{\"pid\":1,\"name\":\"Ada Quill\",\"age\":30,\"score\":1.5,\"member\":true}\n\
{\"pid\":2,\"name\":\"Bo Frame\",\"age\":140,\"member\":false}\n\
{\"pid\":1,\"name\":\"Ada Quill\",\"age\":31,\"score\":2.5,\"member\":true}\n"
            .to_vec();
    let xml = b"<rows><row><pid>1</pid><name>Ada Quill</name><age>30</age><score>1.5</score><member>true</member></row>\
<row><pid>2</pid><name>Bo Frame</name><age>140</age><score/><member>false</member></row>\
<row><pid>1</pid><name>Ada Quill</name><age>31</age><score>2.5</score><member>true</member></row></rows>"
        .to_vec();
    vec![
        (DataFormat::Csv, CSV.as_bytes().to_vec()),
        (DataFormat::Json, json_array),
        (DataFormat::Json, json_lines),
        (DataFormat::Xml, xml),
        (DataFormat::Xlsx, xlsx_fixture()),
        (DataFormat::Parquet, parquet_fixture()),
    ]
}

fn xlsx_fixture() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["pid", "name", "age", "score", "member"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let rows: [(f64, &str, f64, Option<f64>, bool); 3] = [
        (1.0, "Ada Quill", 30.0, Some(1.5), true),
        (2.0, "Bo Frame", 140.0, None, false),
        (1.0, "Ada Quill", 31.0, Some(2.5), true),
    ];
    for (r, (pid, name, age, score, member)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet.write_number(r, 0, *pid).unwrap();
        sheet.write_string(r, 1, *name).unwrap();
        sheet.write_number(r, 2, *age).unwrap();
        if let Some(s) = score {
            sheet.write_number(r, 3, *s).unwrap();
        }
        sheet.write_boolean(r, 4, *member).unwrap();
    }
    book.save_to_buffer().unwrap()
}

fn parquet_fixture() -> Vec<u8> {
    use std::sync::Arc;
    let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![
        (
            "pid",
            Arc::new(arrow::array::Int32Array::from(vec![1, 2, 1])) as Arc<dyn Array>,
        ),
        (
            "name",
            Arc::new(arrow::array::StringArray::from(vec![
                "Ada Quill",
                "Bo Frame",
                "Ada Quill",
            ])),
        ),
        (
            "age",
            Arc::new(arrow::array::Int64Array::from(vec![30, 140, 31])),
        ),
        (
            "score",
            Arc::new(arrow::array::Float64Array::from(vec![
                Some(1.5),
                None,
                Some(2.5),
            ])),
        ),
        (
            "member",
            Arc::new(arrow::array::BooleanArray::from(vec![true, false, true])),
        ),
    ])
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

#[test]
fn every_format_gives_the_same_batch_and_report() {
    let s = schema(SMALL);
    let inputs = small_inputs();
    let reference = ingest(inputs[0].1.as_slice(), inputs[0].0, &s, &key()).unwrap();
    assert_eq!(reference.batch.num_rows(), 3);
    assert_eq!(reference.report.rows, 3);
    assert_eq!(reference.report.column("age").unwrap().out_of_bounds, 1);
    assert_eq!(reference.report.column("score").unwrap().nulls, 1);
    assert_eq!(reference.report.column("name").unwrap().duplicate_values, 1);
    assert_eq!(reference.report.units_over_max_rows, 0);
    for (format, bytes) in &inputs[1..] {
        let got = ingest(bytes, *format, &s, &key()).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(got.batch, reference.batch, "{format:?}");
        assert_eq!(got.report, reference.report, "{format:?}");
    }
}

#[test]
fn rows_are_clustered_by_privacy_unit() {
    let s = schema(SMALL);
    let got = ingest(CSV.as_bytes(), DataFormat::Csv, &s, &key()).unwrap();
    let pids = got.batch.column(0).as_string::<i32>();
    let ages = got.batch.column(2).as_primitive::<Int64Type>();
    let units: Vec<&str> = (0..3).map(|i| pids.value(i)).collect();
    assert!(units.windows(2).all(|w| w[0] <= w[1]), "{units:?}");
    // The two rows of unit 1 are adjacent.
    let ada = key().pseudonym("person", "1");
    let positions: Vec<usize> = (0..3).filter(|&i| pids.value(i) == ada).collect();
    assert_eq!(positions.len(), 2);
    assert_eq!(positions[1], positions[0] + 1);
    let ages_of_ada: HashSet<i64> = positions.iter().map(|&i| ages.value(i)).collect();
    assert_eq!(ages_of_ada, HashSet::from([30, 31]));
}

#[test]
fn identifiers_are_pseudonymised_and_never_kept() {
    let s = schema(SMALL);
    let dir = tempfile::tempdir().unwrap();
    let got = ingest(CSV.as_bytes(), DataFormat::Csv, &s, &key()).unwrap();
    for col in [0, 1] {
        let a = got.batch.column(col).as_string::<i32>();
        for i in 0..a.len() {
            let v = a.value(i);
            assert_eq!(v.len(), 32);
            assert!(!v.contains("Ada") && !v.contains("Bo Frame"));
        }
    }
    assert_eq!(
        got.batch.column(1).as_string::<i32>().value(0),
        key().pseudonym("person", "Ada Quill")
    );
    let stored = write_version(&got.batch, dir.path()).unwrap();
    let bytes = std::fs::read(&stored.path).unwrap();
    for raw in ["Ada Quill", "Bo Frame"] {
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
            "{raw} in the Parquet file"
        );
    }
    let other = Pseudonymizer::new(&[8u8; 32]);
    assert_ne!(
        other.pseudonym("person", "1"),
        key().pseudonym("person", "1")
    );
}

fn err(input: &str, format: DataFormat) -> String {
    match ingest(input.as_bytes(), format, &schema(SMALL), &key()) {
        Ok(_) => panic!("{input:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_files_give_clear_errors_without_values() {
    let cases: &[(&str, DataFormat, &str)] = &[
        (
            "pid,name,age,score,member\n1,Ada Quill,30,1.5,true\n2,Bo Frame,4\n",
            DataFormat::Csv,
            "row 2 has 3 fields but the header has 5",
        ),
        (
            "pid,name,age,score,member\n1,Ada Quill,thirty,1.5,true\n2,Bo Frame,forty,1,maybe\n",
            DataFormat::Csv,
            "column \"age\" (int): 2 row(s), first at row 1, 2; column \"member\" (bool): 1 row(s), first at row 2",
        ),
        (
            "pid,name,age,score,member,secret\n1,Ada Quill,30,1.5,true,x\n",
            DataFormat::Csv,
            "column \"secret\" is not in the schema",
        ),
        (
            "pid,name,age,score\n1,Ada Quill,30,1.5\n",
            DataFormat::Csv,
            "column \"member\" is declared in the schema but missing",
        ),
        ("", DataFormat::Csv, "no data rows"),
        (
            "pid,name,age,score,member\n",
            DataFormat::Csv,
            "no data rows",
        ),
        ("[{\"pid\": 1,", DataFormat::Json, "JSON file is malformed"),
        ("[1, 2]", DataFormat::Json, "record 1 is not an object"),
        (
            "{\"pid\": {\"nested\": \"Ada Quill\"}, \"name\": \"x\", \"age\": 1, \"score\": 1, \"member\": true}",
            DataFormat::Json,
            "column \"pid\"",
        ),
        (
            "<rows><row><pid>1</pid></rows>",
            DataFormat::Xml,
            "XML file is malformed",
        ),
        (
            "PK\u{3}\u{4}garbage",
            DataFormat::Xlsx,
            "XLSX file is malformed",
        ),
        (
            "PAR1garbagePAR1",
            DataFormat::Parquet,
            "Parquet file is malformed",
        ),
    ];
    for (input, format, expected) in cases {
        let msg = err(input, *format);
        assert!(
            msg.contains(expected),
            "{input:?}: {msg:?} should contain {expected:?}"
        );
        for value in ["thirty", "forty", "maybe", "Ada Quill", "nested"] {
            assert!(!msg.contains(value), "{msg:?} echoes a value");
        }
    }
}

#[test]
fn corrupt_parquet_is_an_error_not_a_panic() {
    let good = parquet_fixture();
    let s = schema(SMALL);
    for cut in [4, good.len() / 2, good.len() - 9] {
        let r = ingest(&good[..cut], DataFormat::Parquet, &s, &key());
        assert!(
            matches!(r, Err(IngestError::Malformed { .. })),
            "cut at {cut}"
        );
    }
    for i in (0..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[i] ^= 0xff;
        // Any outcome but a panic is acceptable; a flip in data pages may still parse.
        let _ = ingest(&bad, DataFormat::Parquet, &s, &key());
    }
}

/// The PUMS samples (copied from the shared data into examples/data).
fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(name)
}

const PUMS_LOOSE: &str = r#"
[[columns]]
name = "age"
type = "int"
lower = 0
upper = 100
[[columns]]
name = "sex"
type = "int"
domain = [0, 1]
[[columns]]
name = "educ"
type = "int"
[[columns]]
name = "race"
type = "int"
[[columns]]
name = "income"
type = "int"
lower = 0
upper = 500000
[[columns]]
name = "married"
type = "int"
domain = [0, 1]
[[columns]]
name = "pid"
role = "identifier"
type = "int"
"#;

/// Nulls per column and duplicate rows, counted by plain string handling.
fn independent_counts(text: &str) -> (Vec<(String, u64)>, u64) {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut nulls = vec![0u64; header.len()];
    let mut seen = HashSet::new();
    let mut dupes = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        for (i, f) in fields.iter().enumerate() {
            if f.is_empty() {
                nulls[i] += 1;
            }
        }
        // Compare numerically so "17000.0" equals "17000".
        let normal: Vec<String> = fields
            .iter()
            .map(|f| f.parse::<f64>().map(|x| x.to_string()).unwrap_or_default())
            .collect();
        if !seen.insert(normal) {
            dupes += 1;
        }
    }
    (header.into_iter().zip(nulls).collect(), dupes)
}

#[test]
fn quality_report_matches_independent_counts_on_pums_null_and_dup() {
    let s = schema(PUMS_LOOSE);
    for file in ["PUMS_null.csv", "PUMS_dup.csv"] {
        let text = std::fs::read_to_string(sample(file)).unwrap();
        let (nulls, dupes) = independent_counts(&text);
        let got = ingest(text.as_bytes(), DataFormat::Csv, &s, &key())
            .unwrap()
            .report;
        assert_eq!(got.rows as usize, text.lines().count() - 1, "{file}");
        for (col, n) in &nulls {
            assert_eq!(got.column(col).unwrap().nulls, *n, "{file} nulls in {col}");
        }
        assert_eq!(got.duplicate_rows, dupes, "{file} duplicate rows");
        if file == "PUMS_dup.csv" {
            assert!(dupes > 0, "the dup sample has duplicates");
            // Every duplicated row duplicates its pid too.
            let pid = got.column("pid").unwrap();
            assert!(pid.duplicate_values >= dupes);
        } else {
            assert!(
                nulls.iter().all(|(_, n)| *n > 0),
                "the null sample has nulls in every column"
            );
        }
    }
}

#[test]
fn units_over_the_row_limit_are_counted() {
    let s = schema(&SMALL.replace("max_rows_per_unit = 2", "max_rows_per_unit = 1"));
    let got = ingest(CSV.as_bytes(), DataFormat::Csv, &s, &key()).unwrap();
    assert_eq!(got.report.units_over_max_rows, 1);
}

#[test]
fn versions_are_content_addressed_and_atomic() {
    let s = schema(SMALL);
    let got = ingest(CSV.as_bytes(), DataFormat::Csv, &s, &key()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = write_version(&got.batch, dir.path()).unwrap();
    let b = write_version(&got.batch, dir.path()).unwrap();
    assert_eq!(a, b);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(
        sluice_crypto::sha256_hex(&std::fs::read(&a.path).unwrap()),
        a.version
    );
    // A directory that cannot be created: error, nothing written.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    assert!(write_version(&got.batch, &blocker.join("sub")).is_err());
    let preview = sluice_ingest::preview(&a.path, 2).unwrap();
    assert_eq!(preview.len(), 2);
    let counts: HashMap<&str, usize> = preview[0].keys().map(|k| (k.as_str(), 1)).collect();
    assert_eq!(counts.len(), 5);
}
