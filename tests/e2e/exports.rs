//! CSV exports are safe to open in a spreadsheet: a provider's cells and a
//! release's group keys that start like a formula arrive as text, the
//! bounding column is not exported, and the JSON forms keep raw values.

use crate::{Platform, descriptor, manifest, run_job};

const FORMULAS: &str = r#"
[dataset]
name = "formulas"
title = "Cells that look like formulas"
provider = "Test office"
open_category = "unconditional"
format = "csv"
update_frequency = "never"

[schema]
max_rows_per_unit = 2
id_space = "person"

[[schema.columns]]
name = "pid"
role = "privacy_unit"
type = "int"

[[schema.columns]]
name = "note"
type = "text"
domain = ["=1+1", "+A1", "-2", "@SUM(A1)"]

[[schema.columns]]
name = "n"
type = "int"
lower = -10
upper = 10
"#;

const CELLS: [&str; 4] = ["=1+1", "+A1", "-2", "@SUM(A1)"];

async fn published() -> Platform {
    let p = Platform::start().await;
    p.provider
        .create_dataset(&descriptor(FORMULAS))
        .await
        .unwrap();
    let mut csv = String::from("pid,note,n\n");
    for i in 0..40 {
        csv.push_str(&format!("{},{},{}\n", i / 2, CELLS[i % 4], i as i64 - 20));
    }
    p.provider
        .upload_version("formulas", csv.into_bytes())
        .await
        .unwrap();
    p
}

/// Splits CRLF-ended lines of unquoted-newline CSV.
fn lines(csv: &str) -> Vec<&str> {
    let body = csv.strip_suffix("\r\n").expect("CRLF line ends");
    body.split("\r\n").collect()
}

#[tokio::test]
async fn dataset_csv_neutralises_formula_cells_and_json_keeps_them() {
    let p = published().await;
    let csv = p.alice.download_csv("formulas").await.unwrap();
    let rows = lines(&csv);
    assert_eq!(rows[0], "\"pid\",\"note\",\"n\"", "no bounding column");
    assert_eq!(rows.len(), 41);
    let mut notes = std::collections::BTreeMap::new();
    for row in &rows[1..] {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 3, "{row}");
        // The pseudonym of pid: text, quoted, never a formula.
        assert!(fields[0].starts_with('"') && fields[0].len() == 34, "{row}");
        *notes.entry(fields[1]).or_insert(0) += 1;
        // Numbers stay numbers, negative ones too.
        assert!(fields[2].parse::<i64>().is_ok(), "{row}");
    }
    let want: std::collections::BTreeMap<&str, i32> = [
        ("\"'+A1\"", 10),
        ("\"'-2\"", 10),
        ("\"'=1+1\"", 10),
        ("\"'@SUM(A1)\"", 10),
    ]
    .into();
    assert_eq!(notes, want);
    assert!(!csv.contains("__sluice_unit_row"));
    // JSON keeps raw values.
    let preview = p.alice.preview("formulas", 40).await.unwrap();
    let raw: std::collections::BTreeSet<&str> = preview
        .rows
        .iter()
        .map(|r| r["note"].as_str().unwrap())
        .collect();
    assert_eq!(raw, CELLS.into_iter().collect());
    // The Parquet form is still the stored file; an unknown format is refused.
    assert!(
        p.alice
            .download("formulas")
            .await
            .unwrap()
            .starts_with(b"PAR1")
    );
    let (status, body) = p
        .alice
        .raw("GET", "/v1/datasets/formulas/download?format=xlsx", None)
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn release_csv_neutralises_keys_and_the_cli_writes_it() {
    let p = published().await;
    let token = p
        .admin
        .create_user("carol", sluice_types::Role::User)
        .await
        .unwrap()
        .token;
    let carol = p.admin.with_token(token.clone());
    let job = run_job(
        &carol,
        &manifest(
            "formulas",
            "SELECT note, COUNT(*) AS rows_n, SUM(n) AS total FROM formulas GROUP BY note",
            1.0,
        ),
    )
    .await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let csv = carol.release_csv(&job.id).await.unwrap();
    let rows = lines(&csv);
    assert_eq!(
        rows[0],
        "\"note\",\"rows_n\",\"rows_n_ci95_low\",\"rows_n_ci95_high\",\"total\",\"total_ci95_low\",\"total_ci95_high\""
    );
    let release = carol.release(&job.id).await.unwrap();
    assert_eq!(rows.len(), 1 + release.body.outputs.rows.len());
    let mut keys = Vec::new();
    for (row, cells) in rows[1..].iter().zip(&release.body.outputs.rows) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 7, "{row}");
        keys.push(fields[0]);
        for f in &fields[1..] {
            f.parse::<f64>().unwrap_or_else(|_| panic!("{row}"));
        }
        let sluice_types::Cell::Noisy { value, ci95 } = &cells[1] else {
            panic!("{cells:?}")
        };
        assert_eq!(fields[1].parse::<f64>().unwrap(), *value);
        assert_eq!(fields[2].parse::<f64>().unwrap(), ci95[0]);
    }
    keys.sort();
    assert_eq!(keys, ["\"'+A1\"", "\"'-2\"", "\"'=1+1\"", "\"'@SUM(A1)\""]);
    // Not the owner's: 404 like the JSON release.
    let (status, _) = p
        .bob
        .raw("GET", &format!("/v1/jobs/{}/release.csv", job.id), None)
        .await
        .unwrap();
    assert_eq!(status, 404);

    // The CLI: `job release ID --csv` prints it, `-o x.csv` writes it.
    // (Awaited, not blocking: the server runs on this test's runtime.)
    let sluice = async |args: &[&str]| {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .env("SLUICE_URL", &p.url)
            .env("SLUICE_TOKEN", &token)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = sluice(&["job", "release", &job.id, "--csv"]).await;
    assert_eq!(printed, csv.replace("\r\n", "\n"));
    let file = p.dir.path().join("release.csv");
    sluice(&["job", "result", &job.id, "-o", file.to_str().unwrap()]).await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), csv);
}
