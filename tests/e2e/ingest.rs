//! Ingest through the API: pseudonymisation leaves no raw identifier on
//! disk, and bad files are rejected with a clear error and store nothing.

use sluice_types::ErrorCode;

use crate::{Platform, all_files, descriptor};

const PEOPLE: &str = r#"
[dataset]
name = "people"
title = "People"
provider = "Registry office"
open_category = "conditional"
format = "csv"
update_frequency = "monthly"

[schema]
max_rows_per_unit = 2
id_space = "person"

[[schema.columns]]
name = "national_id"
role = "privacy_unit"
type = "text"

[[schema.columns]]
name = "phone"
role = "identifier"
type = "text"

[[schema.columns]]
name = "age"
type = "int"
lower = 0
upper = 120
"#;

fn raw_ids(n: usize) -> (Vec<String>, Vec<String>) {
    let ids = (0..n).map(|i| format!("NID-7731-ALPHA-{i:05}")).collect();
    let phones = (0..n).map(|i| format!("+1-555-01{i:05}")).collect();
    (ids, phones)
}

#[tokio::test]
async fn raw_identifiers_are_found_nowhere_under_the_data_dir() {
    let p = Platform::start().await;
    let (ids, phones) = raw_ids(300);
    let mut csv = String::from("national_id,phone,age\n");
    for (i, (id, phone)) in ids.iter().zip(&phones).enumerate() {
        csv.push_str(&format!("{id},{phone},{}\n", 20 + i % 50));
        if i % 3 == 0 {
            // a second row for some people
            csv.push_str(&format!("{id},{phone},{}\n", 21 + i % 50));
        }
    }
    p.provider
        .create_dataset(&descriptor(PEOPLE))
        .await
        .unwrap();
    let added = p
        .provider
        .upload_version("people", csv.into_bytes())
        .await
        .unwrap();
    assert_eq!(added.report.rows, 400);
    // A job reads the pseudonymised data, so logs and the ledger see activity too.
    let agreement = crate::agreement(&p.alice, &p.provider, &["people"], 10.0).await;
    let job = crate::run_job(
        &p.alice,
        &crate::sql_manifest(
            &crate::under(&[&agreement]),
            "people",
            "SELECT COUNT(*) FROM people",
            0.5,
        ),
    )
    .await;
    assert_eq!(job.state, "released", "{:?}", job.message);

    let files = all_files(&p.data_dir());
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "parquet"))
    );
    assert!(
        files
            .iter()
            .any(|f| f.file_name().is_some_and(|n| n == "sluice.db"))
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for raw in ids.iter().chain(&phones) {
            assert!(
                !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
                "{raw} found in {}",
                f.display()
            );
        }
    }
}

#[tokio::test]
async fn bad_files_are_rejected_with_a_clear_error_and_store_nothing() {
    let p = Platform::start().await;
    p.provider
        .create_dataset(&descriptor(PEOPLE))
        .await
        .unwrap();
    let cases: &[(&str, &str)] = &[
        ("national_id,phone,age\nA,1,30\nB,2\n", "row"),
        ("national_id,phone,age\nA,1,thirty\n", "age"),
        (
            // A column the schema does not declare is named by position: its
            // header could be a value run into the header row.
            "national_id,phone,age,secret_column\nA,1,30,x\n",
            "column number 4",
        ),
        ("", "empty"),
        ("national_id,phone,age\n", "no data rows"),
    ];
    for (body, expect) in cases {
        let err = p
            .provider
            .upload_version("people", body.as_bytes().to_vec())
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(ErrorCode::IngestRejected),
            "{body:?}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.to_lowercase().contains(expect),
            "{body:?}: {msg} should mention {expect}"
        );
        assert!(
            !msg.contains("thirty"),
            "the error must not echo values: {msg}"
        );
    }
    let entry = p.provider.dataset("people").await.unwrap();
    assert!(entry.versions.is_empty());
    let stored: Vec<_> = all_files(&p.data_dir().join("datasets"));
    assert!(stored.is_empty(), "{stored:?}");
}
