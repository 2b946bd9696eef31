//! The Python client's own tests (python/tests, pytest) against this
//! build's `sluice` binary, so `cargo test --workspace` runs them too.
//!
//! The interpreter is `$SLUICE_PYTHON`, else the virtualenv at
//! `~/.cache/sluice/venv` (`.ci/run` creates it; created here from
//! python/requirements-test.txt when missing, as the wasm32 target is added
//! by the WASM tests). The package is installed into it with pip from
//! ./python on every run, which is what a user does.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, created with the pinned test requirements if missing.
fn python() -> PathBuf {
    if let Some(explicit) = std::env::var_os("SLUICE_PYTHON") {
        return PathBuf::from(explicit);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    let venv = Path::new(&home).join(".cache/sluice/venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "creating the venv (is python3 with venv installed? .ci/run installs it)",
        );
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "-q", "-r"])
                .arg(repo().join("python/requirements-test.txt")),
            "installing python/requirements-test.txt",
        );
    }
    python
}

fn run(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// The venv's python with ./python installed, as a user installs it: a
/// wheel built from the repository path (no build isolation, so the pinned
/// hatchling in the venv builds it offline). Once per test run: the tests
/// share the venv.
fn python_with_sluice() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let python = python();
            run(
                Command::new(&python)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "-q",
                        "--no-deps",
                        "--no-build-isolation",
                    ])
                    .arg("--force-reinstall")
                    .arg(repo().join("python")),
                "pip install ./python",
            );
            python
        })
        .clone()
}

#[test]
fn the_python_client_passes_its_tests_against_this_build() {
    let python = python_with_sluice();
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo().join("python/tests"))
        .current_dir(repo().join("python"))
        .env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"))
        .env_remove("SLUICE_TOKEN")
        .env_remove("SLUICE_URL")
        .output()
        .expect("starting pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // pytest's exit codes: 0 passed, 1 failures, 2 interrupted, 3 internal
    // error, 4 usage error, 5 no tests collected; only 0 is a pass.
    assert_eq!(out.status.code(), Some(0), "pytest failed:\n{text}");
    println!("{text}");
}

/// The README's Python path: `sluice demo --serve`, then the example
/// script with the environment the demo prints.
#[test]
fn the_python_example_runs_against_the_demo_server() {
    let python = python_with_sluice();
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting sluice demo --serve");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = demo.stdout.take().unwrap();
    let _demo = Kill(demo);
    let mut env = Vec::new();
    let mut printed = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        printed.push_str(&line);
        printed.push('\n');
        if let Some((name, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            env.push((name.to_owned(), value.to_owned()));
            if name == "SLUICE_KEY_FILE" {
                break;
            }
        }
    }
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "SLUICE_URL",
            "SLUICE_TOKEN",
            "SLUICE_PROVIDER_TOKEN",
            "SLUICE_KEY_FILE"
        ],
        "the demo printed:\n{printed}"
    );
    let out = Command::new(&python)
        .arg(repo().join("examples/python/researcher.py"))
        .envs(env)
        .output()
        .expect("starting the example");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the example failed:\n{text}");
    assert!(text.contains("as bob on http://127.0.0.1:"), "{text}");
    assert!(text.contains("accepted: True"), "{text}");
    assert!(text.contains("verified by key"), "{text}");
}
