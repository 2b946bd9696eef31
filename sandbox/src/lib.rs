//! The sandbox executor: the only code that reads rows. It runs as a
//! separate process (`sluice sandbox`, started by the server for each task),
//! takes one [`SandboxTask`] as a JSON line on stdin (an upload's bytes
//! follow it for ingest), and writes one [`SandboxResponse`] as JSON on
//! stdout. Nothing else leaves: errors that arise after rows are read become
//! a generic failure category; their detail goes to stderr, the operator log.
//!
//! Before reading anything it drops what it does not need: it enters a fresh
//! network namespace (no interfaces but a downed loopback) where the OS
//! allows, and sets resource limits (CPU time, file size, address space).
//! Once it knows its task, and before starting any thread, it confines
//! itself to that task's files and forbids new processes (see
//! [`isolation`]).

mod isolation;
mod module;
mod train;
mod wasm;

use std::io::{Read, Write};

use sluice_crypto::Pseudonymizer;
use sluice_types::sandbox::{Diagnostic, Failure, SandboxResponse, SandboxTask};

pub use isolation::{FileAccess, apply_limits, confine};

/// Largest request line (task JSON) accepted on stdin.
const MAX_TASK_BYTES: usize = 16 * 1024 * 1024;

/// Reports `d` on stderr, the operator log; never anything else there.
pub(crate) fn report(d: Diagnostic) {
    eprintln!("{}", d.line());
}

/// The diagnostic for a protection [`apply_limits`] or [`confine`] could
/// not set up.
fn missing_protection(what: &str) -> Diagnostic {
    if what.starts_with("setrlimit") {
        Diagnostic::ResourceLimitsIncomplete
    } else if what.starts_with("network") {
        Diagnostic::NoNetworkIsolation
    } else if what.starts_with("landlock is partial") {
        Diagnostic::PartialFileIsolation
    } else if what.starts_with("file") {
        Diagnostic::NoFileIsolation
    } else {
        Diagnostic::NoSeccomp
    }
}

/// Entry point of `sluice sandbox`: returns the process exit code.
pub fn main_entry() -> i32 {
    // A panic message can quote the value being processed: report only
    // that a panic happened.
    std::panic::set_hook(Box::new(|_| report(Diagnostic::Panicked)));
    let mut missing = apply_limits();
    let mut input = Vec::new();
    if std::io::stdin()
        .lock()
        .take((MAX_TASK_BYTES as u64) + (1 << 30))
        .read_to_end(&mut input)
        .is_err()
    {
        report(Diagnostic::MalformedTask);
        return 2;
    }
    let split = input
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(input.len());
    let task: Option<SandboxTask> = (split <= MAX_TASK_BYTES)
        .then(|| serde_json::from_slice(&input[..split]).ok())
        .flatten();
    let Some(task) = task else {
        report(Diagnostic::MalformedTask);
        return 2;
    };
    let payload = input.get(split + 1..).unwrap_or(&[]);
    let Ok(access) = file_access(&task) else {
        report(Diagnostic::OutputDirFailed);
        return 2;
    };
    if matches!(task, SandboxTask::Ingest(_)) {
        missing.extend(isolation::limit_ingest());
    }
    missing.extend(confine(&access));
    for what in &missing {
        report(missing_protection(what));
    }
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        report(Diagnostic::RuntimeFailed);
        return 2;
    };
    let response = runtime.block_on(run(task, payload));
    let out = serde_json::to_vec(&response).expect("response serialises");
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(&out).and_then(|_| stdout.flush()).is_err() {
        return 2;
    }
    0
}

/// Runs one task. Public so that tests can drive it in-process. Released
/// outputs carry only finite numbers, which JSON can hold exactly.
pub async fn run(task: SandboxTask, payload: &[u8]) -> SandboxResponse {
    match run_task(task, payload).await {
        SandboxResponse::Released { mut outputs } => {
            outputs.make_finite();
            SandboxResponse::Released { outputs }
        }
        other => other,
    }
}

async fn run_task(task: SandboxTask, payload: &[u8]) -> SandboxResponse {
    match task {
        SandboxTask::Analyze(q) => match sluice_sql::analyze(&q).await {
            Ok(a) => match a.estimate() {
                Ok(estimate) => SandboxResponse::Accepted {
                    plan: a.describe(),
                    estimate,
                },
                Err(e) => SandboxResponse::Rejected {
                    reasons: vec![format!("noise cannot be calibrated: {e}")],
                },
            },
            Err(r) => SandboxResponse::Rejected { reasons: r.0 },
        },
        SandboxTask::Execute(q) => match sluice_sql::execute(&q).await {
            Ok(outputs) => SandboxResponse::Released { outputs },
            Err(sluice_sql::ExecError::Rejected(r)) => SandboxResponse::Rejected { reasons: r.0 },
            Err(_) => failed(Failure::Execution),
        },
        #[cfg(debug_assertions)]
        SandboxTask::Probe {
            connect,
            read,
            write,
            spawn,
            ..
        } => probe(&connect, &read, &write, spawn),
        SandboxTask::AnalyzeWasm(t) => wasm::analyze(&t),
        SandboxTask::ExecuteWasm(t) => wasm::execute(&t).await,
        SandboxTask::AnalyzeTrain(t) => train::analyze(&t).await,
        SandboxTask::ExecuteTrain(t) => train::execute(&t).await,
        SandboxTask::Ingest(t) => {
            let key: [u8; 32] = match hex::decode(&t.pseudonym_key_hex)
                .ok()
                .and_then(|k| k.try_into().ok())
            {
                Some(k) => k,
                None => return failed(Failure::BadTask),
            };
            let pseudonymizer = Pseudonymizer::new(&key);
            let ingested = match sluice_ingest::ingest(payload, t.format, &t.schema, &pseudonymizer)
            {
                Ok(i) => i,
                // Ingest errors name columns, row numbers and counts, never values.
                Err(e) => {
                    return SandboxResponse::Rejected {
                        reasons: vec![e.to_string()],
                    };
                }
            };
            match sluice_ingest::write_version(&ingested.batch, std::path::Path::new(&t.output_dir))
            {
                Ok(stored) => SandboxResponse::Ingested {
                    file_name: stored
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    version: stored.version,
                    bytes: stored.bytes,
                    report: ingested.report,
                },
                Err(_) => failed(Failure::Write),
            }
        }
        SandboxTask::Preview(p) => {
            match sluice_ingest::preview(std::path::Path::new(&p.path), p.limit) {
                Ok(rows) => SandboxResponse::Preview { rows },
                Err(_) => failed(Failure::Read),
            }
        }
        SandboxTask::Export(t) => {
            let max = usize::try_from(t.max_bytes).unwrap_or(usize::MAX);
            match sluice_ingest::export_csv(std::path::Path::new(&t.path), max) {
                Ok(csv) => SandboxResponse::Exported { csv },
                Err(e @ sluice_ingest::ExportError::TooLarge { .. }) => SandboxResponse::Rejected {
                    reasons: vec![e.to_string()],
                },
                Err(_) => failed(Failure::Read),
            }
        }
    }
}

/// The files `task` may touch once confined. For ingest the output
/// directory is created first: a confined process could not.
pub fn file_access(task: &SandboxTask) -> std::io::Result<FileAccess> {
    let paths = |tables: &[sluice_types::sandbox::SandboxTable]| {
        tables.iter().map(|t| t.path.clone().into()).collect()
    };
    Ok(match task {
        SandboxTask::Analyze(_) | SandboxTask::AnalyzeWasm(_) | SandboxTask::AnalyzeTrain(_) => {
            FileAccess::default()
        }
        SandboxTask::Execute(q) => FileAccess {
            read: paths(&q.tables),
            write_dir: None,
        },
        SandboxTask::ExecuteTrain(t) => FileAccess {
            read: paths(&t.tables),
            write_dir: None,
        },
        SandboxTask::ExecuteWasm(t) => FileAccess {
            read: paths(std::slice::from_ref(&t.table)),
            write_dir: None,
        },
        SandboxTask::Preview(p) => FileAccess {
            read: vec![p.path.clone().into()],
            write_dir: None,
        },
        SandboxTask::Export(t) => FileAccess {
            read: vec![t.path.clone().into()],
            write_dir: None,
        },
        SandboxTask::Ingest(t) => {
            std::fs::create_dir_all(&t.output_dir)?;
            FileAccess {
                read: Vec::new(),
                write_dir: Some(t.output_dir.clone().into()),
            }
        }
        #[cfg(debug_assertions)]
        SandboxTask::Probe { inputs, .. } => FileAccess {
            read: inputs.iter().map(Into::into).collect(),
            write_dir: None,
        },
    })
}

/// Tries, from inside the confined process, what a hostile job would.
#[cfg(debug_assertions)]
fn probe(connect: &[String], read: &[String], write: &[String], spawn: bool) -> SandboxResponse {
    use std::time::Duration;
    // A file counts as read when a byte comes back, a directory when it lists.
    let read_one = |path: &String| {
        let mut byte = [0u8; 1];
        std::fs::File::open(path).is_ok_and(|mut f| f.read(&mut byte).is_ok())
            || std::fs::read_dir(path).is_ok()
    };
    let write_one = |path: &String| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .is_ok_and(|mut f| f.write_all(b"x").is_ok())
    };
    SandboxResponse::Probed {
        connected: connect
            .iter()
            .map(|addr| {
                addr.parse::<std::net::SocketAddr>().is_ok_and(|a| {
                    std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok()
                })
            })
            .collect(),
        read: read.iter().map(read_one).collect(),
        written: write.iter().map(write_one).collect(),
        spawned: spawn && std::process::Command::new("/bin/true").status().is_ok(),
    }
}

/// A failure after data may have been read: its category and nothing
/// else, neither in the response nor on stderr (an engine's error text
/// can quote a value).
pub(crate) fn failed(category: Failure) -> SandboxResponse {
    report(Diagnostic::Failed(category));
    SandboxResponse::Failed { category }
}
