"""examples/python/researcher.py runs start to end against the server."""

from __future__ import annotations

import os
import subprocess
import sys

import sluice
from conftest import REPO, Server


def test_the_researcher_example_runs(admin: sluice.Client, provider_token: str, server: Server) -> None:
    token = admin.create_user("example-researcher", "user").token
    env = dict(
        os.environ,
        SLUICE_URL=server.url,
        SLUICE_TOKEN=token,
        SLUICE_PROVIDER_TOKEN=provider_token,
        SLUICE_KEY_FILE=str(server.data_dir.parent / "data.keys" / "signing.ed25519.pub"),
    )
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / "researcher.py")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "as example-researcher on" in out
    assert "pums: PUMS census microdata sample" in out
    assert "synthetic rows" in out
    assert "accepted: True, ε 1" in out
    assert f"verified by key {sluice.key_id_of(bytes.fromhex(server.public_key_hex))}" in out
    assert "cite: US Census Bureau (sample)" in out
    assert "budget on pums: granted 100, spent 1, remaining 99" in out
