//! The sandbox's isolation, checked from inside a real `sluice sandbox`
//! process by the debug-only probe task instead of trusting the design.

use std::io::Read;
use std::path::Path;

/// Runs one probe task in a fresh sandbox process; returns its response and
/// what it logged.
fn probe(task: serde_json::Value) -> (serde_json::Value, String) {
    let run = sluice_testkit::process::sandbox(
        Path::new(env!("CARGO_BIN_EXE_sluice")),
        &task.to_string(),
    );
    let (out, err) = (run.stdout, run.stderr);
    // This machine supports every protection; a regression that loses one
    // must fail here rather than pass with a weaker sandbox.
    assert!(
        !err.contains("unavailable") && !err.contains("partial"),
        "this machine could not isolate the sandbox: {err}"
    );
    (serde_json::from_str(&out).expect(&err), err)
}

/// The probe tries to connect to a listener on this machine's loopback and
/// to a public address.
#[test]
fn a_sandbox_process_cannot_open_a_network_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let local = listener.local_addr().unwrap().to_string();
    // The same connection from this (unsandboxed) test process works: the
    // probe can tell the difference.
    assert!(std::net::TcpStream::connect(&local).is_ok());
    let (response, err) = probe(serde_json::json!({
        "task": "probe", "connect": [local, "1.1.1.1:53"]
    }));
    assert_eq!(response["status"], "probed");
    assert_eq!(
        response["connected"],
        serde_json::json!([false, false]),
        "{err}"
    );
}

/// A job's input is readable; its sibling dataset files, the data directory,
/// system files and the sandbox's own binary are not; nothing is writable;
/// no process can be started.
#[test]
fn a_sandbox_process_reads_only_its_inputs_writes_nothing_and_starts_no_process() {
    let data = tempfile::tempdir().unwrap();
    let dataset = data.path().join("datasets/a");
    std::fs::create_dir_all(&dataset).unwrap();
    let input = dataset.join("v1.parquet");
    let sibling = dataset.join("v2.parquet");
    let other = data.path().join("datasets/other.parquet");
    for f in [&input, &sibling, &other] {
        std::fs::write(f, b"PAR1 stand-in bytes").unwrap();
    }
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let reads = [
        s(&input),
        s(&sibling),
        s(&other),
        s(&dataset),
        "/etc/hostname".into(),
        "/proc/self/environ".into(),
        env!("CARGO_BIN_EXE_sluice").into(),
    ];
    // Every path is readable from this (unsandboxed) test process.
    for path in &reads {
        let readable = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut [0u8; 1]))
            .is_ok()
            || std::fs::read_dir(path).is_ok();
        assert!(readable, "{path} must be readable outside the sandbox");
    }
    let escape = std::env::temp_dir().join(format!("sluice-probe-escape-{}", std::process::id()));
    let writes = [s(&dataset.join("planted.parquet")), s(&input), s(&escape)];
    let (response, err) = probe(serde_json::json!({
        "task": "probe",
        "inputs": [s(&input)],
        "read": reads,
        "write": writes,
        "spawn": true,
    }));
    assert_eq!(response["status"], "probed", "{err}");
    assert_eq!(
        response["read"],
        serde_json::json!([true, false, false, false, false, false, false]),
        "only the input is readable: {reads:?}"
    );
    assert_eq!(
        response["written"],
        serde_json::json!([false, false, false]),
        "{writes:?}"
    );
    assert_eq!(response["spawned"], false);
    assert!(!dataset.join("planted.parquet").exists());
    assert!(!escape.exists());
    assert_eq!(std::fs::read(&input).unwrap(), b"PAR1 stand-in bytes");
}
