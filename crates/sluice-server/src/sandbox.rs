//! Starting sandbox processes. The server writes one task (and, for ingest,
//! the upload's bytes) to the child's stdin and reads one response from its
//! stdout, under a wall-clock deadline and an output size cap. The child's
//! stderr is read line by line: a line that is exactly one of the fixed
//! diagnostics (`sluice_types::sandbox::Diagnostic`) goes to the operator
//! log; anything else is dropped unread, since an engine's message or a
//! panic could quote data.

use std::process::Stdio;

use sluice_types::sandbox::{Diagnostic, SandboxResponse, SandboxTask};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::AppState;

/// Largest response accepted from a sandbox.
pub const MAX_OUTPUT_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("starting the sandbox: {0}")]
    Start(std::io::Error),
    #[error("sandbox did not finish before its deadline")]
    Deadline,
    #[error("sandbox exited with {0}")]
    Exit(String),
    #[error("sandbox output is over the size cap")]
    OutputTooLarge,
    #[error("sandbox output is malformed: {0}")]
    Malformed(String),
}

/// Runs `task` in a new sandbox, waiting for a free slot first; the
/// deadline (`sandbox_timeout`) counts from the start.
pub async fn run(
    state: &AppState,
    task: &SandboxTask,
    payload: &[u8],
) -> Result<SandboxResponse, SpawnError> {
    let deadline = std::time::Instant::now() + state.config.sandbox_timeout;
    run_until(state, task, payload, deadline).await
}

/// [`run`] with an absolute deadline (a job's, fixed at admission): the
/// wait for a slot counts against it too.
pub async fn run_until(
    state: &AppState,
    task: &SandboxTask,
    payload: &[u8],
    deadline: std::time::Instant,
) -> Result<SandboxResponse, SpawnError> {
    match tokio::time::timeout_at(deadline.into(), run_now(state, task, payload)).await {
        Ok(r) => r,
        Err(_) => Err(SpawnError::Deadline), // kill_on_drop ends the child
    }
}

async fn run_now(
    state: &AppState,
    task: &SandboxTask,
    payload: &[u8],
) -> Result<SandboxResponse, SpawnError> {
    let _slot = state
        .sandbox_slots
        .acquire()
        .await
        .expect("semaphore never closed");
    let mut child = Command::new(&state.config.sandbox_exe)
        .arg("sandbox")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .kill_on_drop(true)
        .spawn()
        .map_err(SpawnError::Start)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let task_kind = task_kind(task);
    tokio::spawn(operator_log(stderr, task_kind));
    let mut line = serde_json::to_vec(task).expect("task serialises");
    line.push(b'\n');
    let io = async {
        let write = async {
            stdin.write_all(&line).await?;
            stdin.write_all(payload).await?;
            stdin.shutdown().await?;
            drop(stdin);
            Ok::<_, std::io::Error>(())
        };
        let read = async {
            let mut out = Vec::new();
            (&mut stdout)
                .take(MAX_OUTPUT_BYTES + 1)
                .read_to_end(&mut out)
                .await?;
            Ok::<_, std::io::Error>(out)
        };
        let (w, r) = tokio::join!(write, read);
        // A child that exits early closes its stdin; that is not our error.
        if let Err(e) = w
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(e);
        }
        let out = r?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((out, status))
    };
    let (out, status) = io.await.map_err(SpawnError::Start)?;
    if out.len() as u64 > MAX_OUTPUT_BYTES {
        return Err(SpawnError::OutputTooLarge);
    }
    if !status.success() {
        return Err(SpawnError::Exit(status.to_string()));
    }
    serde_json::from_slice(&out).map_err(|e| SpawnError::Malformed(e.to_string()))
}

/// Most stderr bytes read from one sandbox; the rest is discarded.
const MAX_STDERR_BYTES: u64 = 64 * 1024;

fn task_kind(task: &SandboxTask) -> &'static str {
    match task {
        SandboxTask::Analyze(_) => "analyze",
        SandboxTask::Execute(_) => "execute",
        SandboxTask::AnalyzeWasm(_) => "analyze_wasm",
        SandboxTask::ExecuteWasm(_) => "execute_wasm",
        SandboxTask::AnalyzeTrain(_) => "analyze_train",
        SandboxTask::ExecuteTrain(_) => "execute_train",
        SandboxTask::Ingest(_) => "ingest",
        SandboxTask::Preview(_) => "preview",
        SandboxTask::Export(_) => "export",
        #[cfg(debug_assertions)]
        SandboxTask::Probe { .. } => "probe",
    }
}

/// Logs the sandbox's recognised diagnostics; drops everything else. Reads
/// to the end, so that a chatty child never blocks on a full pipe.
async fn operator_log(mut stderr: tokio::process::ChildStderr, task: &'static str) {
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut chunk = [0u8; 8192];
    loop {
        match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) if (kept.len() as u64) < MAX_STDERR_BYTES => kept.extend_from_slice(&chunk[..n]),
            Ok(_) => dropped = true,
        }
    }
    for line in kept.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match std::str::from_utf8(line).ok().and_then(Diagnostic::parse) {
            Some(d) if d.is_missing_protection() => {
                tracing::warn!(
                    task,
                    diagnostic = d.code(),
                    "sandbox runs without a protection"
                )
            }
            Some(d) => tracing::warn!(task, diagnostic = d.code(), "sandbox diagnostic"),
            None => dropped = true,
        }
    }
    if dropped {
        tracing::warn!(
            task,
            "sandbox wrote unrecognised output on stderr; dropped unread (it could hold data)"
        );
    }
}
