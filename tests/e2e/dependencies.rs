//! Architecture invariants on dependencies (docs/ARCHITECTURE.md): each
//! engine is named by exactly one crate, the crates that must never run a
//! query, a guest or a mechanism link no engine, and sluice-types stays
//! light. Every workspace member (from `cargo metadata`) needs a row in
//! [`RULES`], so a new crate without one fails here.

use std::collections::BTreeMap;
use std::process::Command;

/// Each engine with the one crate that names it, and that crate.
const DATAFUSION: &[&str] = &["datafusion", "sluice-sql"];
const WASMTIME: &[&str] = &["wasmtime", "sluice-wasm"];
const OPENDP: &[&str] = &["opendp", "sluice-dp"];
/// What reads rows: ingest (Arrow, Parquet), training and the sandbox.
const ROWS: &[&str] = &[
    "arrow",
    "parquet",
    "sluice-ingest",
    "sluice-learn",
    "sluice-sandbox",
];
/// What the vocabulary must not pull in: runtimes, HTTP, databases,
/// cryptography, and every other crate of ours.
const HEAVY: &[&str] = &[
    "tokio",
    "axum",
    "hyper",
    "reqwest",
    "sqlx",
    "ring",
    "sluice-crypto",
    "sluice-store",
    "sluice-server",
    "sluice-client",
];

/// What the console's presentation crate must not reach: data access,
/// keys, HTTP. Its pages get their values from the server's console
/// routes, which ask the API (docs/console.md).
const NO_ACCESS: &[&str] = &[
    "sluice-store",
    "sluice-server",
    "sluice-crypto",
    "sqlx",
    "axum",
    "tokio",
    "reqwest",
];

/// Per workspace member, what must not appear among its normal and build
/// dependencies, directly or transitively, with every feature on.
const RULES: &[(&str, &[&[&str]])] = &[
    ("sluice-types", &[DATAFUSION, WASMTIME, OPENDP, ROWS, HEAVY]),
    ("sluice-crypto", &[DATAFUSION, WASMTIME, OPENDP, ROWS]),
    ("sluice-dp", &[DATAFUSION, WASMTIME, ROWS]),
    ("sluice-store", &[DATAFUSION, WASMTIME, OPENDP, ROWS]),
    ("sluice-ingest", &[DATAFUSION, WASMTIME, OPENDP]),
    ("sluice-sql", &[WASMTIME]),
    ("sluice-wasm", &[DATAFUSION]),
    ("sluice-learn", &[DATAFUSION, WASMTIME]),
    (
        "sluice-console",
        &[DATAFUSION, WASMTIME, OPENDP, ROWS, NO_ACCESS],
    ),
    ("sluice-server", &[DATAFUSION, WASMTIME, OPENDP, ROWS]),
    ("sluice-client", &[DATAFUSION, WASMTIME, OPENDP, ROWS]),
    ("sluice-testkit", &[DATAFUSION, WASMTIME, OPENDP, ROWS]),
    // The executor and the binary that contains it link everything.
    ("sluice-sandbox", &[]),
    ("sluice-cli", &[]),
];

/// What some trees must hold, so that a tree that came out empty or wrong
/// cannot pass.
const REAL: &[(&str, &str)] = &[
    ("sluice-server", "sluice-store"),
    ("sluice-sql", "datafusion"),
    ("sluice-sandbox", "wasmtime"),
];

/// sluice-types' direct dependencies: serialisation and encoding only.
const TYPES_MAY_USE: &[&str] = &["base64", "serde", "serde_json", "schemars", "thiserror"];

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .arg("--offline")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every workspace member with its direct dependencies: (name, whether
/// only a dev-dependency).
fn members() -> BTreeMap<String, Vec<(String, bool)>> {
    let metadata: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"])).unwrap();
    let mut members = BTreeMap::new();
    for p in metadata["packages"].as_array().unwrap() {
        let mut deps: BTreeMap<String, bool> = BTreeMap::new();
        for d in p["dependencies"].as_array().unwrap() {
            let dev = d["kind"] == "dev";
            let name = d["name"].as_str().unwrap().to_owned();
            *deps.entry(name).or_insert(true) &= dev;
        }
        members.insert(
            p["name"].as_str().unwrap().to_owned(),
            deps.into_iter().collect(),
        );
    }
    members
}

/// The package names in `krate`'s tree of normal and build dependencies.
fn tree(krate: &str) -> Vec<String> {
    let text = cargo(&[
        "tree",
        "-p",
        krate,
        "-e",
        "normal,build",
        "--all-features",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_crate_keeps_to_its_dependency_rule() {
    let members = members();
    let rules: BTreeMap<&str, &[&[&str]]> = RULES.iter().copied().collect();
    let unruled: Vec<&String> = members
        .keys()
        .filter(|m| !rules.contains_key(m.as_str()))
        .collect();
    assert!(
        unruled.is_empty(),
        "add a row to RULES in tests/e2e/dependencies.rs for {unruled:?}"
    );
    assert!(
        rules.keys().all(|r| members.contains_key(*r)),
        "RULES names a crate that is not a workspace member: {:?}",
        rules.keys().collect::<Vec<_>>()
    );

    let mut broken = Vec::new();
    for (krate, forbidden) in &rules {
        let tree = tree(krate);
        assert_eq!(
            tree.first().map(String::as_str),
            Some(*krate),
            "the tree should be real: {tree:?}"
        );
        if let Some((_, needed)) = REAL.iter().find(|(k, _)| k == krate) {
            assert!(
                tree.iter().any(|p| p == needed),
                "{krate}'s tree lacks {needed}: the rules would check nothing"
            );
        }
        for name in forbidden.iter().copied().flatten() {
            if tree.iter().any(|p| p == name) {
                broken.push(format!("{krate} depends on {name}"));
            }
        }
    }
    // Each engine is named only by its own crate, in any kind of dependency.
    for engine in [DATAFUSION, WASMTIME, OPENDP] {
        let (name, owner) = (engine[0], engine[1]);
        for (krate, deps) in &members {
            if krate != owner && deps.iter().any(|(d, _)| d == name) {
                broken.push(format!("{krate} names {name}, which only {owner} may"));
            }
        }
    }
    // Its tests may use more than the library.
    for (dep, dev_only) in &members["sluice-types"] {
        if !dev_only && !TYPES_MAY_USE.contains(&dep.as_str()) {
            broken.push(format!("sluice-types depends on {dep}"));
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}
