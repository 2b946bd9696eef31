//! Architecture invariant: the server never links an engine.

use std::process::Command;

#[test]
fn server_does_not_depend_on_any_engine() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "sluice-server",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(
        tree.contains("sluice-store"),
        "the tree should be real: {tree}"
    );
    for engine in [
        "datafusion",
        "wasmtime",
        "opendp",
        "sluice-sql",
        "sluice-dp",
        "sluice-sandbox",
        "sluice-wasm",
        "sluice-learn",
        "sluice-ingest",
        "parquet",
    ] {
        let hits: Vec<&str> = tree
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(engine))
            .collect();
        assert!(
            hits.is_empty(),
            "sluice-server depends on {engine}: {hits:?}"
        );
    }
}
