//! Digests, canonical encoding, Ed25519 signatures of releases, and keyed
//! pseudonyms (HMAC-SHA256), all through `ring`.
//!
//! This crate holds the platform's keys in memory and writes them only to the
//! key directory, never next to the data. It does no other I/O and knows
//! nothing about storage or engines.

mod canonical;
mod keys;

use ring::rand::SecureRandom;
use ring::{digest, hmac, rand, signature};
use sluice_types::audit::{AuditCheckpoint, CHECKPOINT_PAYLOAD_TYPE, SignedCheckpoint};
use sluice_types::release::{RELEASE_PAYLOAD_TYPE, ReleaseBody, Signature, SignedRelease};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

pub use canonical::{canonical_json, canonical_json_string, canonical_value, parse_canonical};
pub use keys::{KeyError, PlatformKeys};

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Incremental SHA-256 for large files.
pub struct Sha256(digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Sha256(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256 {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes)
    }
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

/// Digest of any serialisable value's canonical JSON.
pub fn digest_of<T: serde::Serialize>(value: &T) -> String {
    sha256_hex(&canonical_json(value))
}

/// A server-generated identifier: `prefix` + 128 random bits in hex.
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random source");
    format!("{prefix}_{}", hex::encode(bytes))
}

/// A bearer token (shown once) and the hash that is stored instead of it.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random source");
    let token = format!("slc_{}", hex::encode(bytes));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Keyed pseudonyms for identifiers. Equal raw values in the same id space map
/// to equal pseudonyms (so datasets join inside the sandbox); without the key
/// nobody can link a pseudonym back, even by enumerating raw values.
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl Pseudonymizer {
    pub fn new(key_bytes: &[u8; 32]) -> Self {
        Pseudonymizer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes),
        }
    }

    /// 128-bit pseudonym as 32 hex characters.
    pub fn pseudonym(&self, id_space: &str, raw: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"sluice-pseudonym-v1\0");
        ctx.update(id_space.as_bytes());
        ctx.update(b"\0");
        ctx.update(raw.as_bytes());
        hex::encode(&ctx.sign().as_ref()[..16])
    }

    /// A secret sort key for the `index`-th source row of unit `unit`: the
    /// order in which a unit's rows are kept when its rows are bounded. It
    /// depends on no value, cannot be predicted without the key, and is the
    /// same for the same upload (so versions stay content-addressed).
    pub fn row_order_key(&self, unit: &str, index: u64) -> u64 {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"sluice-row-order-v1\0");
        ctx.update(unit.as_bytes());
        ctx.update(b"\0");
        ctx.update(&index.to_le_bytes());
        let tag = ctx.sign();
        u64::from_le_bytes(tag.as_ref()[..8].try_into().expect("8 bytes"))
    }
}

/// DSSE pre-authentication encoding: binds the payload type to the payload.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("unexpected payload type \"{0}\"")]
    PayloadType(String),
    #[error("payload is not valid base64")]
    Base64,
    #[error("no signature by key {0}")]
    NoSignatureForKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("payload is not a release body: {0}")]
    Body(String),
    #[error("payload is not in canonical form")]
    NotCanonical,
}

/// Signs a release body (canonical JSON) with the platform key.
///
/// JSON has no NaN or infinity, so a body is first made finite (see
/// [`finite_release_body`]); what is signed is always a payload that
/// [`verify_release`] accepts and decodes.
pub fn sign_release(keys: &PlatformKeys, body: &ReleaseBody) -> SignedRelease {
    let payload = canonical_json(&*finite_release_body(body));
    let sig = keys.sign(&pae(RELEASE_PAYLOAD_TYPE, &payload));
    SignedRelease {
        payload_type: RELEASE_PAYLOAD_TYPE.to_owned(),
        payload: B64.encode(&payload),
        signatures: vec![Signature {
            keyid: keys.key_id(),
            sig: B64.encode(sig),
        }],
    }
}

/// `body` with every non-finite number replaced, so that its canonical JSON
/// decodes back into a release body: a cell whose value is not finite
/// becomes `null` (a key cell: no value released); a noisy cell whose
/// interval, or a quantile whose rank error, is not finite keeps its value
/// as a derived cell (a value without a stated error). Borrowed unchanged
/// when every number is finite, as every release the platform makes is.
///
/// # Panics
///
/// When the confidence level is not finite: it is the platform's constant.
pub fn finite_release_body(body: &ReleaseBody) -> std::borrow::Cow<'_, ReleaseBody> {
    assert!(
        body.confidence_level.is_finite(),
        "a release's confidence level must be a finite number"
    );
    if body.outputs.is_finite() {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut body = body.clone();
    body.outputs.make_finite();
    std::borrow::Cow::Owned(body)
}

/// Verifies an envelope offline against a public key (raw 32 bytes) and
/// returns the body it signs. The payload must be canonical JSON as a JSON
/// value (parsed exactly, re-encoded, byte for byte the same) before it is
/// decoded as a release body, so a check of the form never depends on how
/// the typed body re-serialises.
pub fn verify_release(
    envelope: &SignedRelease,
    public_key: &[u8],
) -> Result<ReleaseBody, VerifyError> {
    if envelope.payload_type != RELEASE_PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType(envelope.payload_type.clone()));
    }
    let payload = B64
        .decode(envelope.payload.as_bytes())
        .map_err(|_| VerifyError::Base64)?;
    let key_id = key_id_of(public_key);
    let sig = envelope
        .signatures
        .iter()
        .find(|s| s.keyid == key_id)
        .ok_or(VerifyError::NoSignatureForKey(key_id))?;
    let sig = B64
        .decode(sig.sig.as_bytes())
        .map_err(|_| VerifyError::Base64)?;
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(&pae(&envelope.payload_type, &payload), &sig)
        .map_err(|_| VerifyError::BadSignature)?;
    let value = parse_canonical(&payload).ok_or(VerifyError::NotCanonical)?;
    serde_json::from_value(value).map_err(|e| VerifyError::Body(e.to_string()))
}

/// Signs an audit checkpoint with the platform key.
pub fn sign_checkpoint(keys: &PlatformKeys, checkpoint: &AuditCheckpoint) -> SignedCheckpoint {
    let payload = canonical_json(checkpoint);
    SignedCheckpoint {
        checkpoint: checkpoint.clone(),
        key_id: keys.key_id(),
        signature: B64.encode(keys.sign(&pae(CHECKPOINT_PAYLOAD_TYPE, &payload))),
    }
}

/// Verifies a checkpoint's signature against a raw public key.
pub fn verify_checkpoint(signed: &SignedCheckpoint, public_key: &[u8]) -> Result<(), VerifyError> {
    let key_id = key_id_of(public_key);
    if signed.key_id != key_id {
        return Err(VerifyError::NoSignatureForKey(key_id));
    }
    let sig = B64
        .decode(signed.signature.as_bytes())
        .map_err(|_| VerifyError::Base64)?;
    let payload = canonical_json(&signed.checkpoint);
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(&pae(CHECKPOINT_PAYLOAD_TYPE, &payload), &sig)
        .map_err(|_| VerifyError::BadSignature)
}

/// Key id: the first 16 hex digits of the SHA-256 of the raw public key.
pub fn key_id_of(public_key: &[u8]) -> String {
    sha256_hex(public_key)[..16].to_owned()
}

#[cfg(test)]
mod tests;
