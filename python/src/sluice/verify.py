"""Offline verification of what the platform signs: releases (DSSE-style
envelopes), audit checkpoints, and the hash chain of the audit log.

Mirrors ``sluice_crypto::verify_release`` and ``verify_checkpoint``
(crates/sluice-crypto/src/lib.rs) and ``sluice_store::verify_audit_chain``:
Ed25519 over the DSSE pre-authentication encoding, key id = the first 16
hex digits of SHA-256 of the raw public key, payloads in canonical JSON.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .canonical import NotCanonical, canonical_json, parse_canonical, sha256_hex
from .errors import VerificationError

__all__ = [
    "RELEASE_PAYLOAD_TYPE",
    "CHECKPOINT_PAYLOAD_TYPE",
    "GENESIS",
    "pae",
    "key_id_of",
    "public_key_bytes",
    "verify_release",
    "verify_checkpoint",
    "audit_entry_hash",
    "verify_audit_chain",
]

RELEASE_PAYLOAD_TYPE = "application/vnd.sluice.release+json; version=1"
CHECKPOINT_PAYLOAD_TYPE = "application/vnd.sluice.audit-checkpoint+json; version=1"
#: The previous hash of the audit log's first entry.
GENESIS = "0" * 64

_U64_MAX = 2**64 - 1


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP
    len(payload) SP payload``, lengths in bytes."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d " % (len(kind), kind, len(payload)) + payload


def key_id_of(public_key: bytes) -> str:
    """The first 16 hex digits of the SHA-256 of the raw 32-byte key."""
    return sha256_hex(public_key)[:16]


def public_key_bytes(public_key: str | bytes) -> bytes:
    """A raw Ed25519 public key from hex (as ``GET /v1/public-key`` and the
    key dir's ``signing.ed25519.pub`` give it) or from its 32 raw bytes."""
    if isinstance(public_key, str):
        try:
            raw = bytes.fromhex(public_key.strip())
        except ValueError:
            raise VerificationError("public key is not hex") from None
    else:
        raw = bytes(public_key)
    if len(raw) != 32:
        raise VerificationError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return raw


def _b64(text: Any, what: str) -> bytes:
    # Canonical base64 only (padding, no stray bits), as Rust's decoder demands:
    # any other spelling of the same bytes is a changed envelope.
    if not isinstance(text, str):
        raise VerificationError(f"{what} is not a string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationError(f"{what} is not valid base64")
    return raw


def _check_signature(public_key: bytes, message: bytes, sig: bytes) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(sig, message)
    except (InvalidSignature, ValueError):
        raise VerificationError("signature does not verify") from None


def verify_release(release: Mapping[str, Any], public_key: str | bytes) -> dict[str, Any]:
    """Verifies a release offline and returns the body it signs.

    ``release`` is the API's ``{"envelope": …, "body": …}`` or a bare
    envelope; only the envelope counts. The payload type must be the
    release's, a signature by ``public_key`` must verify over the DSSE
    encoding, and the payload must be canonical JSON of a release body.
    Raises :class:`~sluice.errors.VerificationError` naming the failure.
    """
    key = public_key_bytes(public_key)
    envelope = release.get("envelope", release) if isinstance(release, Mapping) else release
    if not isinstance(envelope, Mapping):
        raise VerificationError("not a release envelope")
    payload_type = envelope.get("payloadType")
    payload_b64 = envelope.get("payload")
    signatures = envelope.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(payload_b64, str):
        raise VerificationError("not a release envelope")
    if not isinstance(signatures, list) or not all(
        isinstance(s, Mapping) and isinstance(s.get("keyid"), str) and isinstance(s.get("sig"), str)
        for s in signatures
    ):
        raise VerificationError("not a release envelope")
    if payload_type != RELEASE_PAYLOAD_TYPE:
        raise VerificationError(f'unexpected payload type "{payload_type}"')
    payload = _b64(payload_b64, "payload")
    key_id = key_id_of(key)
    signature = next((s for s in signatures if s["keyid"] == key_id), None)
    if signature is None:
        raise VerificationError(f"no signature by key {key_id}")
    _check_signature(key, pae(payload_type, payload), _b64(signature["sig"], "signature"))
    try:
        body = parse_canonical(payload)
    except NotCanonical:
        raise VerificationError("payload is not in canonical form") from None
    problem = _release_body_problem(body)
    if problem:
        raise VerificationError(f"payload is not a release body: {problem}")
    return body


def _release_body_problem(body: Any) -> str | None:
    """What makes ``body`` not a ``sluice_types::ReleaseBody``, as serde
    would refuse it; None when it is one."""

    def is_u64(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U64_MAX

    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def fields(obj: Any, where: str, spec: Mapping[str, Any]) -> str | None:
        if not isinstance(obj, dict):
            return f"{where} is not an object"
        for name, check in spec.items():
            if name not in obj:
                return f"{where}: missing field `{name}`"
            if not check(obj[name]):
                return f"{where}: field `{name}` has the wrong type"
        return None

    is_str = lambda v: isinstance(v, str)  # noqa: E731
    problem = fields(
        body,
        "release body",
        {
            "job_id": is_str,
            "title": is_str,
            "manifest_digest": is_str,
            "datasets": lambda v: isinstance(v, list),
            "outputs": lambda v: isinstance(v, dict),
            "epsilon_spent": is_u64,
            "delta_spent": is_u64,
            "confidence_level": is_number,
            "created_at": is_str,
        },
    )
    if problem:
        return problem
    for d in body["datasets"]:
        problem = fields(
            d,
            "dataset",
            {k: is_str for k in ("name", "id", "version", "provider", "citation")},
        )
        if problem:
            return problem
    outputs = body["outputs"]
    problem = fields(
        outputs,
        "outputs",
        {
            "columns": lambda v: isinstance(v, list),
            "rows": lambda v: isinstance(v, list) and all(isinstance(r, list) for r in v),
            "mechanism": is_str,
            "epsilon": is_u64,
            "delta": is_u64,
        },
    )
    if problem:
        return problem
    for c in outputs["columns"]:
        problem = fields(
            c, "column", {"name": is_str, "kind": lambda v: v in ("group_key", "aggregate", "constant")}
        )
        if problem:
            return problem
        if c.get("aggregate") is not None and not is_str(c["aggregate"]):
            return "column: field `aggregate` has the wrong type"
        if c.get("epsilon") is not None and not is_u64(c["epsilon"]):
            return "column: field `epsilon` has the wrong type"
    # A cell is untagged in Rust: any JSON value is a cell (a key at worst).
    return None


def verify_checkpoint(signed: Mapping[str, Any], public_key: str | bytes) -> None:
    """Verifies a signed audit checkpoint (``GET /v1/audit/checkpoint``)
    against the platform key; raises :class:`VerificationError`."""
    key = public_key_bytes(public_key)
    checkpoint = signed.get("checkpoint")
    if not isinstance(checkpoint, Mapping):
        raise VerificationError("not a checkpoint")
    key_id = key_id_of(key)
    if signed.get("key_id") != key_id:
        raise VerificationError(f"no signature by key {key_id}")
    sig = _b64(signed.get("signature"), "signature")
    # The signed form is the typed checkpoint: exactly these three fields.
    payload = canonical_json(
        {
            "length": checkpoint.get("length"),
            "head": checkpoint.get("head"),
            "created_at": checkpoint.get("created_at"),
        }
    )
    _check_signature(key, pae(CHECKPOINT_PAYLOAD_TYPE, payload), sig)


def audit_entry_hash(
    prev_hash: str, seq: int, at: str, actor: str, action: str, obj: str, details: str
) -> str:
    """``SHA-256(prev_hash ‖ canonical JSON of {seq, at, actor, action,
    object, details})``, ``details`` being the entry's canonical-JSON text."""
    body = canonical_json(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "object": obj,
            "details": details,
        }
    )
    return sha256_hex(prev_hash.encode("utf-8") + body)


def verify_audit_chain(entries: Sequence[Mapping[str, Any]]) -> int:
    """Recomputes the audit log's hash chain from the genesis hash (as
    ``sluice audit verify`` does) and returns the number of entries; raises
    :class:`VerificationError` naming the first bad entry."""
    prev = GENESIS
    for i, e in enumerate(entries):
        seq = e.get("seq")
        if seq != i + 1:
            raise VerificationError(f"audit entry {seq}: expected sequence number {i + 1}")
        if e.get("prev_hash") != prev:
            raise VerificationError(f"audit entry {seq}: previous-hash link is broken")
        expected = audit_entry_hash(
            prev, seq, e["at"], e["actor"], e["action"], e["object"], e["details"]
        )
        if e.get("hash") != expected:
            raise VerificationError(f"audit entry {seq}: hash does not match its content")
        prev = expected
    return len(entries)
