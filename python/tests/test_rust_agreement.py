"""This package's canonical JSON, manifest digests and verification agree
byte for byte with the Rust implementation, shown with the real binary:

- every release the server signs verifies here, and its payload is this
  package's canonical encoding of what it parses to; ``sluice verify``
  agrees;
- random release bodies (over a million floats of every shape, exact ties
  included, and random nested values) encoded and signed here verify with
  ``sluice verify``, which re-encodes the payload with the Rust writer and
  refuses it unless the bytes are the same; payloads that are not
  canonical are refused by both, with the same reason;
- random manifests digest here as ``sluice manifest digest`` digests them;
- audit logs hashed here verify with ``sluice audit verify``, and the
  server's log verifies here.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import sluice
from conftest import PURPOSE, Researcher, Server, run_sluice
from generators import SPECIAL_FLOATS, Rng, is_exact_tie, random_cell, release_body, wasm_module
from sluice.canonical import canonical_json, parse_json
from sluice.verify import CHECKPOINT_PAYLOAD_TYPE, GENESIS, RELEASE_PAYLOAD_TYPE, audit_entry_hash, pae


class Signer:
    """A platform key of the test's own: Rust verifies what it signs."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_hex = raw.hex()
        self.key_id = sluice.key_id_of(raw)

    def envelope(self, payload: bytes, payload_type: str = RELEASE_PAYLOAD_TYPE) -> dict[str, Any]:
        sig = self.key.sign(pae(payload_type, payload))
        return {
            "payloadType": payload_type,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": self.key_id, "sig": base64.b64encode(sig).decode()}],
        }


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


def rust_verify(path: Path, public_hex: str) -> tuple[bool, str]:
    result = run_sluice("verify", str(path), "--public-key", public_hex, check=False)
    return result.returncode == 0, result.stdout + result.stderr


# -- releases signed by the server ---------------------------------------------------


def test_every_release_the_server_signs_is_canonical_here_and_verifies_in_both(
    alice: Researcher, server: Server, tmp_path: Path
) -> None:
    # A job of its own, so there is a release whatever ran before.
    alice.client.sql(
        "SELECT educ, COUNT(*) AS n, AVG(income) AS mean_income FROM pums GROUP BY educ",
        datasets=["pums"], epsilon=0.4, agreement=alice.agreement, progress=False,
    )
    releases = alice.client.releases()
    assert releases
    for release in releases:
        payload = base64.b64decode(release.envelope["payload"])
        assert canonical_json(parse_json(payload)) == payload, release.job_id
        body = sluice.verify_release(release.envelope, server.public_key_hex)
        path = tmp_path / f"{release.job_id}.json"
        release.save(path)
        ok, said = rust_verify(path, server.public_key_hex)
        assert ok and f"job {release.job_id}" in said, said
        assert body == release.body


def test_a_changed_byte_of_a_release_fails_in_both(alice: Researcher, server: Server, tmp_path: Path) -> None:
    release = alice.client.sql(
        "SELECT COUNT(*) AS n FROM pums", datasets=["pums"], epsilon=0.1,
        agreement=alice.agreement, progress=False,
    )
    text = json.dumps(release.envelope).encode()
    rust_sample = set(random.Random(7).sample(range(len(text)), 40))
    for i in range(len(text)):
        bad = bytearray(text)
        bad[i] ^= 0x01
        try:
            envelope = json.loads(bytes(bad))
            sluice.verify_release(envelope, server.public_key_hex)
            accepted = True
        except (ValueError, sluice.VerificationError, AttributeError, TypeError):
            accepted = False
        # A flip inside a JSON escape or key name can leave the same
        # envelope: only a different one must fail.
        same = _same_json(bytes(bad), text)
        assert accepted == same, (i, bytes(bad[max(0, i - 20) : i + 20]))
        if i in rust_sample:
            path = tmp_path / "flipped.json"
            path.write_bytes(bytes(bad))
            ok, said = rust_verify(path, server.public_key_hex)
            assert ok == accepted, (i, said)


def _same_json(a: bytes, b: bytes) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False


# -- random releases signed here ---------------------------------------------------------

FLOATS_CHECKED = 1_000_000
ROWS_PER_FILE = 4_000
CELLS_PER_ROW = 16


def _floats_in(value: Any) -> list[float]:
    out: list[float] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            out.append(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return out


def test_random_releases_encoded_and_signed_here_verify_in_rust(signer: Signer, tmp_path: Path) -> None:
    rng = Rng(0x5EEDF10A7)
    floats = 0
    ties = 0
    files = 0
    first = True
    while floats < FLOATS_CHECKED:
        body = release_body(rng, ROWS_PER_FILE, CELLS_PER_ROW)
        if first:
            body["outputs"]["rows"].insert(0, [{"value": x} for x in SPECIAL_FLOATS])
            first = False
        found = _floats_in(body)
        floats += len(found)
        ties += sum(map(is_exact_tie, found[:20_000]))
        payload = canonical_json(body)
        assert sluice.verify_release(signer.envelope(payload), signer.public_hex) == parse_json(payload)
        path = tmp_path / f"random-{files}.json"
        path.write_text(json.dumps({"envelope": signer.envelope(payload)}))
        ok, said = rust_verify(path, signer.public_hex)
        if not ok:
            pytest.fail(_first_disagreement(body, signer, tmp_path) + "\n" + said)
        files += 1
    assert floats >= FLOATS_CHECKED and ties >= 20, (floats, ties)


def _first_disagreement(body: dict[str, Any], signer: Signer, tmp_path: Path) -> str:
    """Narrows a refused body down to one cell, for the failure message."""
    rows = body["outputs"]["rows"]
    cells = [cell for row in rows for cell in row]

    def refused(part: list[Any]) -> bool:
        trial = dict(body, outputs=dict(body["outputs"], rows=[part]))
        path = tmp_path / "narrow.json"
        path.write_text(json.dumps({"envelope": signer.envelope(canonical_json(trial))}))
        return not rust_verify(path, signer.public_hex)[0]

    if not refused(cells):
        return "Rust refuses the body but no part of its cells alone"
    while len(cells) > 1:
        half = cells[: len(cells) // 2]
        cells = half if refused(half) else cells[len(cells) // 2 :]
    cell = cells[0]
    return f"Rust refuses the cell {cell!r}, encoded here as {canonical_json(cell)!r}"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": 1}',
        b'{"b":1,"a":2}',
        b"[1e16]",
        b"[1E+16]",
        b"[1.50]",
        b"[-0]",
        b'["\\u00e9"]',
        b'["\\/"]',
        b"[100000000000000000000]",
        b"[1.0E-7]",
        b'["\\u001B"]',
        b" [1]",
    ],
)
def test_payloads_that_are_not_canonical_are_refused_by_both(signer: Signer, tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "not-canonical.json"
    path.write_text(json.dumps(signer.envelope(payload)))
    ok, said = rust_verify(path, signer.public_hex)
    assert not ok and "payload is not in canonical form" in said, said
    with pytest.raises(sluice.VerificationError, match="payload is not in canonical form"):
        sluice.verify_release(signer.envelope(payload), signer.public_hex)


def test_a_canonical_payload_that_is_not_a_release_body_is_refused_by_both(signer: Signer, tmp_path: Path) -> None:
    rng = Rng(3)
    body = release_body(rng, 2, 2)
    for broken in (
        {k: v for k, v in body.items() if k != "title"},
        dict(body, epsilon_spent=1.5),
        dict(body, outputs=dict(body["outputs"], columns=[{"name": "x", "kind": "other"}])),
    ):
        payload = canonical_json(broken)
        path = tmp_path / "not-a-body.json"
        path.write_text(json.dumps(signer.envelope(payload)))
        ok, said = rust_verify(path, signer.public_hex)
        assert not ok and "payload is not a release body" in said, said
        with pytest.raises(sluice.VerificationError, match="payload is not a release body"):
            sluice.verify_release(signer.envelope(payload), signer.public_hex)


@pytest.mark.parametrize("depth,accepted", [(127, True), (128, False)])
def test_nesting_depth_is_limited_alike(signer: Signer, tmp_path: Path, depth: int, accepted: bool) -> None:
    body = release_body(Rng(5), 1, 1)
    # body (1) > outputs (2) > rows (3) > row (4) > the cell's own arrays.
    cell: Any = 0
    for _ in range(depth - 4):
        cell = [cell]
    body["outputs"]["rows"] = [[cell]]
    payload = canonical_json(body)
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(signer.envelope(payload)))
    assert rust_verify(path, signer.public_hex)[0] == accepted
    try:
        sluice.verify_release(signer.envelope(payload), signer.public_hex)
        assert accepted
    except sluice.VerificationError:
        assert not accepted


# -- manifest digests ----------------------------------------------------------------------


def _random_manifest(rng: Rng) -> sluice.Manifest:
    """A valid manifest of any kind whose floats are of every shape the
    manifest's limits allow."""

    def positive(limit: float) -> float:
        while True:
            x = abs(rng.float())
            if 2.2250738585072014e-308 <= x <= limit:
                return x

    def within(limit: float) -> float:
        while True:
            x = rng.float()
            if abs(x) <= limit:
                return x

    kind = rng.below(3)
    agreement = [f"agr_{rng.next():x}" for _ in range(rng.below(3))]
    # A leading letter: the title and purpose must not be blank.
    header = {"version": 1, "title": "t" + rng.text(), "purpose": "p" + rng.text(), "datasets": ["pums"]}
    if agreement:
        header["agreement"] = agreement[0] if len(agreement) == 1 and rng.below(2) else agreement
    privacy: dict[str, Any] = {"epsilon": positive(1000.0)}
    if kind == 0:
        job: dict[str, Any] = {"kind": "sql", "query": "SELECT COUNT(*) FROM pums " + rng.text()}
        privacy["split"] = {f"m{i}{rng.text()}": positive(1e6) for i in range(rng.below(200))}
        if rng.below(2):
            privacy["delta"] = positive(1e-2)
        if rng.below(2):
            privacy["max_rows_per_unit"] = {"pums": 1 + rng.below(5)}
    elif kind == 1:
        outputs = []
        for i in range(1 + rng.below(300)):
            a, b = sorted((within(1e12), within(1e12)))
            default = a if rng.below(2) else b
            outputs.append({"name": f"o{i}", "lower": a, "upper": b, "default": default})
        job = {"kind": "wasm", "mode": "map", "module": wasm_module(rng), "columns": ["age", "income"], "outputs": outputs}
        if rng.below(2):
            job["fuel_per_unit"] = 1 + rng.below(100_000_000)
        if rng.below(2):
            job["memory_pages"] = 1 + rng.below(1024)
    else:
        hyper: dict[str, Any] = {}
        if rng.below(2):
            hyper["learning_rate"] = positive(100.0)
        if rng.below(2):
            hyper["momentum"] = within(1.0) % 1.0
        if rng.below(2):
            hyper["clip_norm"] = positive(1e6)
        if rng.below(2):
            hyper["l2"] = abs(within(100.0))
        if rng.below(2):
            hyper["epochs"] = 1 + rng.below(10_000)
        job = {"kind": "train", "model": "logistic", "query": "SELECT age, married FROM pums", "label": "married"}
        if hyper:
            job["hyper"] = hyper
        privacy["delta"] = positive(1e-5)
    return sluice.Manifest.from_dict(dict(header, job=job, privacy=privacy))


def test_manifest_digests_are_the_cli_s(tmp_path: Path) -> None:
    from conftest import REPO

    examples = sorted((REPO / "examples" / "jobs").glob("*.toml"))
    rng = Rng(0xD16E57)
    manifests = [(p.name, sluice.Manifest.load(p), p) for p in examples]
    for i in range(60):
        m = _random_manifest(rng)
        path = tmp_path / f"m{i}.toml"
        path.write_text(m.to_toml())
        manifests.append((f"random {i}", m, path))
    floats = 0
    for name, m, path in manifests:
        floats += len(_floats_in(m.normalized()))
        said = run_sluice("manifest", "digest", str(path)).stdout.strip()
        assert said == m.digest(), (name, m.to_toml()[:2000])
    assert floats > 5_000, floats


def test_submitted_jobs_carry_the_digest_computed_here(alice: Researcher) -> None:
    m = sluice.Manifest.sql(
        "SELECT race, SUM(income) AS s FROM pums GROUP BY race", datasets=["pums"], epsilon=0.25,
        agreement=alice.agreement, purpose=PURPOSE, split={"sum(pums.income)": 0.1 + 0.2},
    )
    job = alice.client.submit(m, wait=False)
    assert job.manifest_digest == m.digest()
    assert alice.client.estimate(m).manifest_digest == m.digest()
    alice.client.wait(job.id, progress=False)


# -- agreements and the audit log ------------------------------------------------------------


def test_agreement_content_hashes_are_computed_alike(admin: sluice.Client, alice: Researcher) -> None:
    agreements = admin.agreements()
    assert agreements
    for a in agreements:
        assert a.content_matches_hash(), a.id


def test_the_server_audit_log_verifies_here_and_in_rust(admin: sluice.Client, server: Server, tmp_path: Path) -> None:
    log = admin.audit_log()
    checkpoint = admin.audit_checkpoint()
    assert sluice.verify_audit_chain(log) >= checkpoint["checkpoint"]["length"] > 0
    sluice.verify_checkpoint(checkpoint, server.public_key_hex)
    (tmp_path / "log.json").write_text(json.dumps(log))
    (tmp_path / "cp.json").write_text(json.dumps(checkpoint))
    said = run_sluice(
        "audit", "verify", str(tmp_path / "log.json"), "--checkpoint", str(tmp_path / "cp.json"),
        "--public-key", server.public_key_hex,
    ).stdout
    assert f"audit log verifies: {len(log)} entries" in said


def test_audit_logs_hashed_here_verify_in_rust(signer: Signer, tmp_path: Path) -> None:
    rng = Rng(0xA0D17)
    entries = []
    prev = GENESIS
    for seq in range(1, 3001):
        fields = {
            "seq": seq,
            "at": "2026-01-01T00:00:00.000Z",
            "actor": rng.text(),
            "action": rng.text(),
            "object": rng.text(),
            # Details are stored as canonical-JSON text; any string is hashed alike.
            "details": canonical_json(rng.value(3)).decode() if rng.below(2) else rng.text(),
        }
        digest = audit_entry_hash(prev, seq, fields["at"], fields["actor"], fields["action"], fields["object"], fields["details"])
        entries.append(dict(fields, prev_hash=prev, hash=digest))
        prev = digest
    checkpoint = {"length": len(entries), "head": prev, "created_at": "2026-01-01T00:00:00Z"}
    signed = {
        "checkpoint": checkpoint,
        "key_id": signer.key_id,
        "signature": base64.b64encode(
            signer.key.sign(pae(CHECKPOINT_PAYLOAD_TYPE, canonical_json(checkpoint)))
        ).decode(),
    }
    sluice.verify_checkpoint(signed, signer.public_hex)
    assert sluice.verify_audit_chain(entries) == len(entries)
    log, cp = tmp_path / "log.json", tmp_path / "cp.json"
    log.write_text(json.dumps(entries, ensure_ascii=False))
    cp.write_text(json.dumps(signed))
    said = run_sluice("audit", "verify", str(log), "--checkpoint", str(cp), "--public-key", signer.public_hex).stdout
    assert "audit log verifies: 3000 entries" in said

    # One changed character: both name the same entry.
    entries[1499]["details"] += " "
    log.write_text(json.dumps(entries, ensure_ascii=False))
    result = run_sluice("audit", "verify", str(log), check=False)
    assert result.returncode != 0 and "audit entry 1500: hash does not match" in result.stderr, result.stderr
    with pytest.raises(sluice.VerificationError, match="audit entry 1500: hash does not match"):
        sluice.verify_audit_chain(entries)
