//! The `sluice` binary as the server and an operator start it. Its path
//! comes from the caller: `env!("CARGO_BIN_EXE_sluice")` exists only in
//! sluice-cli's test and bench targets.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a sandbox process answered (stdout) and logged (stderr).
pub struct SandboxRun {
    pub stdout: String,
    pub stderr: String,
}

/// Runs one task in a fresh `sluice sandbox` process, as the server does:
/// the task as one JSON line on stdin, which is then closed; returns once
/// the process has exited.
pub fn sandbox(exe: &Path, task: &str) -> SandboxRun {
    let mut child = Command::new(exe)
        .arg("sandbox")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sluice sandbox");
    let mut stdin = child.stdin.take().expect("piped stdin");
    writeln!(stdin, "{task}").expect("writing the task");
    drop(stdin);
    let out = child.wait_with_output().expect("reading the sandbox");
    SandboxRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `sluice serve` process, killed when dropped. Every line it prints
/// (stdout, and stderr with the sandboxes' operator log) is kept in `log`.
pub struct Serve {
    pub child: Child,
    /// The base URL from its "listening on" line.
    pub url: String,
    /// The first admin's token, printed when the data dir was new.
    pub admin_token: Option<String>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts `exe serve --bind 127.0.0.1:0` with `args` and `SLUICE_LOG`
    /// at `log_level`, and waits (a minute at most) until it listens.
    pub fn start(exe: &Path, args: &[&std::ffi::OsStr], log_level: &str) -> Serve {
        let mut child = Command::new(exe)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .env("SLUICE_LOG", log_level)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sluice serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let err_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                err_log.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let out_log = log.clone();
        std::thread::spawn(move || {
            let mut token = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out_log.lock().unwrap().push(line.clone());
                if line.starts_with("slc_") {
                    token = Some(line.trim().to_owned());
                }
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send((url.trim().to_owned(), token.clone()));
                }
            }
        });
        let (url, admin_token) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("sluice serve did not start listening");
        Serve {
            child,
            url,
            admin_token,
            log,
        }
    }

    /// Kills the server with SIGKILL and waits until it has exited.
    pub fn kill(&mut self) {
        self.child.kill().expect("killing the server");
        self.child.wait().expect("waiting for the server");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
