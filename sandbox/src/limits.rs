//! Process isolation applied at the start of `sluice sandbox`.

use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, setrlimit};

/// CPU seconds a task may use (the parent also enforces a wall-clock deadline).
pub const CPU_SECONDS: u64 = 600;
/// Largest file a task may write (a stored Parquet version).
pub const FILE_SIZE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Address space: DataFusion's pool is capped at 2 GiB; allow headroom for
/// the runtime, the binary and thread stacks.
pub const ADDRESS_SPACE_BYTES: u64 = 16 * 1024 * 1024 * 1024;

pub enum Isolation {
    Full,
    /// Resource limits are set but the network namespace could not be made
    /// (e.g. an unprivileged user without user namespaces).
    Partial(String),
}

pub fn apply_limits() -> Isolation {
    for (res, v) in [
        (Resource::RLIMIT_CPU, CPU_SECONDS),
        (Resource::RLIMIT_FSIZE, FILE_SIZE_BYTES),
        (Resource::RLIMIT_AS, ADDRESS_SPACE_BYTES),
        (Resource::RLIMIT_CORE, 0),
    ] {
        if let Err(e) = setrlimit(res, v, v) {
            eprintln!("sandbox: setrlimit {res:?}: {e}");
        }
    }
    match unshare(CloneFlags::CLONE_NEWNET) {
        Ok(()) => Isolation::Full,
        Err(e) => Isolation::Partial(e.to_string()),
    }
}
