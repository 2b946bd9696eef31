//! A job's WASM module (a WASM job's `map` or a training job's custom
//! `gradient`): decoded, digested and compiled here, never in the server,
//! and described to reviewers by its digest, size, imports and exports.

use sluice_wasm::{Entry, Guest, Limits, WasmError};

/// A compiled, checked module and the SHA-256 of its bytes.
pub(crate) struct Module {
    pub guest: Guest,
    pub digest: String,
}

/// Compiles the base64 `module` for `entry` under `limits`; the error is a
/// reason to reject the job (it depends on the module only).
pub(crate) fn compile(module: &str, limits: Limits, entry: Entry) -> Result<Module, String> {
    let bytes = sluice_types::b64_decode(module).ok_or("the module is not base64")?;
    let digest = sluice_crypto::sha256_hex(&bytes);
    let guest = Guest::compile_entry(&bytes, limits, entry).map_err(problem)?;
    Ok(Module { guest, digest })
}

/// A module problem as a reason to reject the job.
pub(crate) fn problem(e: WasmError) -> String {
    match e {
        WasmError::Rejected(r) => r,
        e => format!("the module could not be compiled: {e}"),
    }
}

impl Module {
    /// What reviewers see of the module: never data.
    pub(crate) fn describe(&self) -> String {
        let info = self.guest.info();
        format!(
            "WASM module sha256 {}, {} bytes, imports [{}], exports [{}]",
            self.digest,
            info.size,
            info.imports.join(", "),
            info.exports.join(", "),
        )
    }
}
