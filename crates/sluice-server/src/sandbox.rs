//! Starting sandbox processes. The server writes one task (and, for ingest,
//! the upload's bytes) to the child's stdin and reads one response from its
//! stdout, under a wall-clock deadline and an output size cap. The child's
//! stderr is the operator log; it is never shown to users.

use std::process::Stdio;

use sluice_types::sandbox::{SandboxResponse, SandboxTask};
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

pub async fn run(
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
        .stderr(Stdio::inherit())
        .env_clear()
        .kill_on_drop(true)
        .spawn()
        .map_err(SpawnError::Start)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
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
    let (out, status) = match tokio::time::timeout(state.config.sandbox_timeout, io).await {
        Ok(r) => r.map_err(SpawnError::Start)?,
        Err(_) => return Err(SpawnError::Deadline), // kill_on_drop ends the child
    };
    if out.len() as u64 > MAX_OUTPUT_BYTES {
        return Err(SpawnError::OutputTooLarge);
    }
    if !status.success() {
        return Err(SpawnError::Exit(status.to_string()));
    }
    serde_json::from_slice(&out).map_err(|e| SpawnError::Malformed(e.to_string()))
}
