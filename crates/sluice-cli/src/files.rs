//! Manifest and release files, one place for the commands and the demo: a
//! manifest read with its WASM module embedded, agreements named from
//! `--agreement`, a manifest checked offline, a signed release written to
//! `-o` and verified offline.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sluice_types::{Manifest, Release, ReleaseBody, SignedRelease};

fn parse(text: &str) -> Result<toml::Table> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!("manifest invalid: {}", e.message()))
}

/// Reads a manifest file; a WASM job's `module = "file:<path>"` (relative to
/// the manifest) is replaced by that file's bytes in base64, which is what
/// the server stores, digests and runs.
pub fn read_manifest(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    embed_module(&text, |file| {
        let module = dir.join(file);
        std::fs::read(&module).with_context(|| format!("reading the module {}", module.display()))
    })
}

/// `text` with a WASM job's `module = "file:<name>"` replaced by the bytes
/// `load(name)` returns, in base64; any other manifest is returned as it is.
pub fn embed_module(text: &str, load: impl FnOnce(&str) -> Result<Vec<u8>>) -> Result<String> {
    let mut doc = parse(text)?;
    let file = doc
        .get("job")
        .and_then(|j| j.get("module"))
        .and_then(|m| m.as_str())
        .and_then(|m| m.strip_prefix("file:"))
        .map(str::to_owned);
    let Some(file) = file else {
        return Ok(text.to_owned());
    };
    let bytes = load(&file)?;
    if let Some(job) = doc.get_mut("job").and_then(|j| j.as_table_mut()) {
        job.insert(
            "module".into(),
            toml::Value::String(sluice_types::b64_encode(&bytes)),
        );
    }
    Ok(toml::to_string(&doc)?)
}

/// The manifest text with `agreement` set to `ids` (from `--agreement`):
/// one manifest file then serves every agreement it may run under. A
/// manifest that already names agreements is left alone, and asking for
/// both is an error rather than a silent choice.
pub fn name_agreements(text: &str, ids: &[String]) -> Result<String> {
    if ids.is_empty() {
        return Ok(text.to_owned());
    }
    let mut doc = parse(text)?;
    if doc.contains_key("agreement") {
        bail!("the manifest already names its agreement; drop --agreement or the manifest's field");
    }
    let value = match ids {
        [one] => toml::Value::String(one.clone()),
        many => toml::Value::Array(many.iter().cloned().map(toml::Value::String).collect()),
    };
    doc.insert("agreement".into(), value);
    Ok(toml::to_string(&doc)?)
}

/// Reads and checks a manifest file offline: every problem at once.
pub fn load_manifest(path: &Path) -> Result<Manifest> {
    let text = read_manifest(path)?;
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("manifest invalid: {}", e.message()))?;
    if let Err(problems) = manifest.validate() {
        bail!("manifest invalid: {}", problems.join("; "));
    }
    Ok(manifest)
}

/// Writes the signed release (`-o`) and says where.
pub fn write_release(out: &Path, release: &Release) -> Result<()> {
    std::fs::write(out, serde_json::to_vec_pretty(release)?)?;
    println!("signed release written to {}", out.display());
    Ok(())
}

/// Verifies a release JSON (either the API's `{envelope, body}` or a bare
/// envelope) against the platform's public key, hex.
pub fn verify_release_text(text: &str, public_key_hex: &str) -> Result<ReleaseBody> {
    let key = hex::decode(public_key_hex.trim()).context("public key is not hex")?;
    let value: serde_json::Value = serde_json::from_str(text).context("release is not JSON")?;
    let envelope = value.get("envelope").cloned().unwrap_or(value);
    let envelope: SignedRelease =
        serde_json::from_value(envelope).context("not a release envelope")?;
    sluice_crypto::verify_release(&envelope, &key).context("release does not verify")
}

/// [`verify_release_text`] on a release file.
pub fn verify_release_file(path: &Path, public_key_hex: &str) -> Result<ReleaseBody> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    verify_release_text(&text, public_key_hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_file_is_embedded_and_other_manifests_are_kept() {
        let plain = "version = 1\n[job]\nkind = \"sql\"\n";
        assert_eq!(embed_module(plain, |_| unreachable!()).unwrap(), plain);
        let wasm = "version = 1\n[job]\nkind = \"wasm\"\nmodule = \"file:m.wasm\"\n";
        let embedded = embed_module(wasm, |name| {
            assert_eq!(name, "m.wasm");
            Ok(b"\0asm".to_vec())
        })
        .unwrap();
        let doc: toml::Table = toml::from_str(&embedded).unwrap();
        assert_eq!(doc["job"]["module"].as_str(), Some("AGFzbQ=="));
    }

    #[test]
    fn agreements_are_named_once() {
        let m = "version = 1\n";
        assert_eq!(name_agreements(m, &[]).unwrap(), m);
        let one = name_agreements(m, &["agr_1".into()]).unwrap();
        assert!(one.contains("agreement = \"agr_1\""), "{one}");
        let two = name_agreements(m, &["a".into(), "b".into()]).unwrap();
        assert!(two.contains("agreement = [\"a\", \"b\"]"), "{two}");
        assert!(name_agreements(&one, &["agr_2".into()]).is_err());
    }
}
