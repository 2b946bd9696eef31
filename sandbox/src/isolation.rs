//! Process isolation of `sluice sandbox`, in two steps:
//!
//! 1. [`apply_limits`], before the task is read: resource limits and a fresh
//!    network namespace; for an ingest task, [`limit_ingest`] then lowers
//!    them to what parsing an upload needs.
//! 2. [`confine`], once the task is known and before any thread exists (both
//!    Landlock and seccomp bind the calling thread and its future children):
//!    the filesystem shrinks to the task's own files (Landlock), TCP and
//!    abstract sockets and signals out of the sandbox are refused (Landlock),
//!    and no program or process can be started, nor IP, netlink or packet
//!    sockets opened (seccomp).
//!
//! Each protection the kernel lacks is reported by name; the caller logs it
//! to the operator (see docs/threat-model.md for what remains then).

use std::collections::BTreeMap;
use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};
use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, setrlimit};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// CPU seconds a task may use (the parent also enforces a wall-clock deadline).
pub const CPU_SECONDS: u64 = 600;
/// Largest file a task may write (a stored Parquet version).
pub const FILE_SIZE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Address space: DataFusion's pool is capped at 2 GiB; allow headroom for
/// the runtime, the binary, thread stacks and wasmtime's reserved (not
/// committed) instance slots.
pub const ADDRESS_SPACE_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// Sets resource limits and enters a fresh network namespace (no interface
/// but a downed loopback). Returns the protections that could not be set.
pub fn apply_limits() -> Vec<String> {
    let mut missing = Vec::new();
    for (res, v) in [
        (Resource::RLIMIT_CPU, CPU_SECONDS),
        (Resource::RLIMIT_FSIZE, FILE_SIZE_BYTES),
        (Resource::RLIMIT_AS, ADDRESS_SPACE_BYTES),
        (Resource::RLIMIT_CORE, 0),
    ] {
        if let Err(e) = setrlimit(res, v, v) {
            missing.push(format!("setrlimit {res:?}: {e}"));
        }
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
        missing.push(format!("network isolation unavailable ({e})"));
    }
    missing
}

/// Lowers the address space and CPU time to the ingest limits
/// (`IngestLimits::process_memory_bytes` and `process_cpu_seconds`): parsing
/// an upload needs neither wasmtime's reserved instance slots nor
/// DataFusion's pool, so a file that gets past the ingest limits still
/// cannot take more memory or time than this. Process-wide, and limits can
/// only go down: call it only in the sandbox process, once the task is
/// known to be an ingest. Returns the limits that could not be set.
pub fn limit_ingest() -> Vec<String> {
    let limits = sluice_ingest::IngestLimits::default();
    let mut missing = Vec::new();
    for (res, v) in [
        (Resource::RLIMIT_AS, limits.process_memory_bytes),
        (Resource::RLIMIT_CPU, limits.process_cpu_seconds),
    ] {
        if let Err(e) = setrlimit(res, v, v) {
            missing.push(format!("setrlimit {res:?} for ingest: {e}"));
        }
    }
    missing
}

/// The files a task may touch: dataset versions it reads, and for ingest the
/// one directory it writes its new version into.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileAccess {
    pub read: Vec<PathBuf>,
    pub write_dir: Option<PathBuf>,
}

/// Confines the calling thread and its future children: see the module doc.
/// Must run before any other thread is started.
pub fn confine(access: &FileAccess) -> Vec<String> {
    let mut missing = Vec::new();
    match restrict_files_and_network(access) {
        Ok(RulesetStatus::FullyEnforced) => {}
        Ok(RulesetStatus::PartiallyEnforced) => {
            missing.push("landlock is partial on this kernel (older ABI)".into())
        }
        Ok(RulesetStatus::NotEnforced) => {
            missing.push("file isolation unavailable (no landlock)".into())
        }
        Err(e) => missing.push(format!("file isolation unavailable ({e})")),
    }
    if let Err(e) = forbid_processes_and_sockets() {
        missing.push(format!("process isolation unavailable ({e})"));
    }
    missing
}

fn restrict_files_and_network(access: &FileAccess) -> Result<RulesetStatus, String> {
    // Every right the crate knows is handled, so anything not granted below
    // is denied; on an older kernel the crate drops what it cannot enforce
    // and reports the ruleset as partial.
    let abi = ABI::V6;
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| fail(&e))?
        .handle_access(AccessNet::from_all(abi))
        .map_err(|e| fail(&e))?
        .scope(Scope::from_all(abi))
        .map_err(|e| fail(&e))?
        .create()
        .map_err(|e| fail(&e))?;
    for path in &access.read {
        // A missing input is not ours to report: the job's own open fails.
        let Ok(fd) = PathFd::new(path) else { continue };
        let file_rights: BitFlags<AccessFs> = AccessFs::ReadFile.into();
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, file_rights))
            .map_err(|e| fail(&e))?;
    }
    if let Some(dir) = &access.write_dir {
        let fd = PathFd::new(dir).map_err(|e| fail(&e))?;
        // Create, write, sync and rename a temporary file into place, and
        // remove it on failure; no directories, links, devices or execution.
        let rights: BitFlags<AccessFs> = AccessFs::ReadFile
            | AccessFs::ReadDir
            | AccessFs::WriteFile
            | AccessFs::MakeReg
            | AccessFs::RemoveFile
            | AccessFs::Truncate;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, rights))
            .map_err(|e| fail(&e))?;
    }
    let status = ruleset.restrict_self().map_err(|e| fail(&e))?;
    Ok(status.ruleset)
}

fn forbid_processes_and_sockets() -> Result<(), String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let always = Vec::<SeccompRule>::new;
    let arg_eq = |index: u8, value: u64| {
        SeccompRule::new(vec![
            SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
                .expect("valid condition"),
        ])
        .expect("non-empty rule")
    };
    // clone() without CLONE_THREAD makes a process; threads stay allowed.
    let clone_process = SeccompRule::new(vec![
        SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )
        .expect("valid condition"),
    ])
    .expect("non-empty rule");
    let denied: BTreeMap<i64, Vec<SeccompRule>> = [
        (libc::SYS_execve, always()),
        (libc::SYS_execveat, always()),
        (libc::SYS_fork, always()),
        (libc::SYS_vfork, always()),
        (libc::SYS_clone, vec![clone_process]),
        (libc::SYS_ptrace, always()),
        (libc::SYS_process_vm_readv, always()),
        (libc::SYS_process_vm_writev, always()),
        (libc::SYS_unshare, always()),
        (libc::SYS_setns, always()),
        (libc::SYS_mount, always()),
        (libc::SYS_io_uring_setup, always()),
        (libc::SYS_bpf, always()),
        (libc::SYS_perf_event_open, always()),
        (
            libc::SYS_socket,
            [
                libc::AF_INET,
                libc::AF_INET6,
                libc::AF_NETLINK,
                libc::AF_PACKET,
            ]
            .into_iter()
            .map(|family| arg_eq(0, family as u64))
            .collect(),
        ),
    ]
    .into_iter()
    .collect();
    let deny: BpfProgram = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|e| e.to_string())?;
    // clone3 passes its flags in memory, out of a filter's reach: answer
    // ENOSYS so that the C library falls back to clone(), checked above.
    let clone3: BpfProgram = SeccompFilter::new(
        [(libc::SYS_clone3, always())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|e| e.to_string())?;
    // Landlock already set no_new_privs where it ran; seccomp needs it too.
    nix::sys::prctl::set_no_new_privs().map_err(|e| e.to_string())?;
    seccompiler::apply_filter(&clone3).map_err(|e| e.to_string())?;
    seccompiler::apply_filter(&deny).map_err(|e| e.to_string())
}
