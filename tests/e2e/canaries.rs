//! Private values never leak through a side door (issue #13): canary
//! strings planted in conditional data's cells, raw identifiers and
//! person names appear in no API response, no server or sandbox log line,
//! no audit entry and no file outside the pseudonymised store, across the
//! failing paths the suite exercises. The server is the real binary, run as
//! an operator would, with its log at debug level and captured whole.

use std::time::Duration;

use sluice_client::Client;
use sluice_testkit::platform::user;
use sluice_testkit::process::Serve;
use sluice_types::Role;

use crate::{all_files, descriptor, under};

const SCHEMA: &str = r#"
[dataset]
name = "canary"
title = "Canary people"
description = "Conditional data with planted canaries"
provider = "tests"
open_category = "conditional"
format = "csv"
data_type = "table"
update_frequency = "never"
epsilon_cap = 1000.0
user_epsilon = 1000.0

[schema]
max_rows_per_unit = 2
id_space = "person"

[[schema.columns]]
name = "pid"
role = "privacy_unit"
type = "text"

[[schema.columns]]
name = "person_name"
role = "identifier"
type = "text"

[[schema.columns]]
name = "age"
type = "int"
lower = 0
upper = 100

[[schema.columns]]
name = "note"
type = "text"
"#;

/// Canary strings: the test fails if any appears where it must not.
fn canary(kind: &str, i: usize) -> String {
    format!("CNRY{kind}{i:04}Q")
}

fn data_csv() -> String {
    let mut csv = String::from("pid,person_name,age,note\n");
    for i in 0..120 {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            canary("ID", i),
            canary("NAME", i),
            20 + i % 60,
            canary("CELL", i)
        ));
    }
    csv
}

/// Starts `sluice serve` on a free port with its log at debug level.
/// Every line it prints (stdout and stderr, which carries the sandbox's
/// operator log) is kept.
fn serve(data_dir: &std::path::Path) -> Serve {
    Serve::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_sluice")),
        &[std::ffi::OsStr::new("--data-dir"), data_dir.as_os_str()],
        "debug",
    )
}

/// What the submitter or anyone else received, as text.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn add(&mut self, what: impl std::fmt::Debug) {
        self.0.push(format!("{what:?}"));
    }
}

#[tokio::test]
async fn canaries_appear_in_no_response_log_audit_entry_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = serve(&data_dir);
    let admin = Client::new(&server.url, server.admin_token.clone());
    let provider = user(&admin, "provider", Role::Provider).await;
    let alice = user(&admin, "alice", Role::User).await;
    let mut seen = Seen::default();

    provider.create_dataset(&descriptor(SCHEMA)).await.unwrap();
    // Failing uploads: canaries in cells of the wrong type, a wrong header,
    // a cell over the size limit, a truncated XLSX-like file.
    let mut bad_type = data_csv();
    bad_type.push_str(&format!(
        "{},{},{},x\n",
        canary("ID", 900),
        canary("NAME", 900),
        canary("CELL", 900)
    ));
    let mut bad_header = data_csv().replacen("note", &canary("CELL", 901), 1);
    bad_header.push('\n');
    let huge = format!(
        "pid,person_name,age,note\n{},{},30,{}{}\n",
        canary("ID", 902),
        canary("NAME", 902),
        canary("CELL", 902),
        "x".repeat(70_000)
    );
    for body in [
        bad_type,
        bad_header,
        huge,
        format!("{}\u{0}\u{1}", canary("CELL", 903)),
    ] {
        seen.add(provider.upload_version("canary", body.into_bytes()).await);
    }
    seen.add(
        provider
            .upload_version("canary", data_csv().into_bytes())
            .await
            .unwrap(),
    );
    let agreement = crate::agreement(&alice, &provider, &["canary"], 1000.0).await;
    let header = under(&[&agreement]);

    // Jobs whose row expressions would fail on the canary cells, and a
    // WASM guest that traps on every unit: all run to a release or are
    // refused from the query alone.
    let queries = [
        "SELECT COUNT(*) FROM canary WHERE CAST(note AS INT) > 0",
        "SELECT COUNT(CAST(person_name AS BIGINT)) FROM canary",
        "SELECT COUNT(*) FROM canary WHERE CAST(pid AS DOUBLE) IS NULL",
        "SELECT COUNT(*) FROM canary WHERE 1 / (age - 30) > 0",
        "SELECT COUNT(*) FROM canary WHERE to_timestamp(note) IS NULL",
        "SELECT note, COUNT(*) FROM canary GROUP BY note",
        "SELECT COUNT(*) FROM canary WHERE regexp_like(note, note)",
        "SELECT SUM(CAST(note AS INT)) FROM canary",
    ];
    for q in queries {
        let manifest = crate::sql_manifest(&header, "canary", q, 0.01);
        seen.add(alice.estimate_job(&manifest).await);
        match alice.submit_job(&manifest).await {
            Ok(job) => {
                let done = alice
                    .wait_job(&job.id, Duration::from_secs(120))
                    .await
                    .unwrap();
                if done.state == "released" {
                    seen.add(alice.release(&job.id).await.unwrap());
                }
                seen.add(done);
            }
            Err(e) => seen.add(e),
        }
    }
    let trap = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "map") (unreachable)))"#,
    )
    .unwrap();
    let wasm = format!(
        "version = 1\ntitle = \"trap\"\n{header}\ndatasets = [\"canary\"]\n\n[job]\nkind = \"wasm\"\nmode = \"map\"\nmodule = \"{}\"\ncolumns = [\"age\"]\noutputs = [{{ name = \"x\", lower = 0.0, upper = 1.0, default = 0.0 }}]\n\n[privacy]\nepsilon = 0.5\n",
        sluice_types::b64_encode(&trap)
    );
    let job = alice.submit_job(&wasm).await.unwrap();
    seen.add(alice.wait_job(&job.id, Duration::from_secs(120)).await);
    seen.add(alice.preview("canary", 20).await);
    seen.add(
        alice
            .download("canary")
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    );
    seen.add(alice.jobs().await);
    seen.add(admin.audit_log().await.unwrap());
    seen.add(admin.stats().await);
    let (status, body) = alice
        .raw("GET", "/v1/datasets/canary/download?format=csv", None)
        .await
        .unwrap();
    seen.add((status, body));

    // The server's whole log so far, every response, every file outside
    // the stored Parquet versions; raw identifiers and names not even there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = server.log.lock().unwrap().join("\n");
    assert!(log.contains("listening on"), "the log was captured");
    let everywhere = |needle: &str, cells_stored: bool| -> Vec<String> {
        let mut found = Vec::new();
        if log.contains(needle) {
            found.push("the server log".to_owned());
        }
        for (i, s) in seen.0.iter().enumerate() {
            if s.contains(needle) {
                found.push(format!("response {i}: {}", &s[..s.len().min(300)]));
            }
        }
        for f in all_files(dir.path()) {
            let stored = f.extension().is_some_and(|e| e == "parquet");
            if stored && cells_stored {
                // Cells live in the stored version, as the data must.
                continue;
            }
            let bytes = std::fs::read(&f).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(f.display().to_string());
            }
        }
        found
    };
    for i in (0..120).chain(900..904) {
        for kind in ["ID", "NAME", "CELL"] {
            let c = canary(kind, i);
            let found = everywhere(&c, kind == "CELL");
            assert!(found.is_empty(), "{c} found in {found:?}");
        }
    }
    // The prefix alone, which a truncated value could leave.
    let found = everywhere("CNRY", true);
    assert!(found.is_empty(), "{found:?}");
}
