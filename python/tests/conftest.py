"""A real ``sluice serve`` for the whole session, on loopback, with the
sample data published as conditional data by a provider.

The binary is ``$SLUICE_BIN``, or the newest of
``$CARGO_TARGET_DIR/debug/sluice`` and ``target/debug/sluice``; without one
the tests fail (build it with ``cargo build -p sluice-cli``).
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

import sluice

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PUMS_DESCRIPTOR = REPO / "examples" / "data" / "pums.toml"
PUMS_CSV = REPO / "examples" / "data" / "PUMS_pid.csv"
APPLICATION = REPO / "examples" / "access" / "application.toml"
TERMS = REPO / "examples" / "access" / "terms.toml"
# The purpose of examples/access/terms.toml, which example manifests state.
PURPOSE = "Income, age and household structure for the city's 2027 equity report"
START_TIMEOUT = 180.0


def sluice_bin() -> Path:
    """The sluice binary the tests drive."""
    explicit = os.environ.get("SLUICE_BIN")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise RuntimeError(f"SLUICE_BIN={explicit} is not a file")
        return path
    candidates = [REPO / "target" / "debug" / "sluice"]
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.insert(0, Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "sluice")
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise RuntimeError(
            "no sluice binary: run `cargo build -p sluice-cli` or set SLUICE_BIN "
            f"(looked at {', '.join(map(str, candidates))})"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def run_sluice(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs an offline ``sluice`` command (verify, manifest digest, audit verify)."""
    result = subprocess.run(
        [str(sluice_bin()), *args], capture_output=True, text=True, timeout=300, env=_offline_env()
    )
    if check and result.returncode != 0:
        raise AssertionError(f"sluice {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def _offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SLUICE_TOKEN", None)
    return env


@dataclass
class Server:
    url: str
    admin_token: str
    public_key_hex: str
    data_dir: Path
    log: Path


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``sluice serve`` on an ephemeral loopback port and a fresh data dir;
    its admin token and URL are read off its first lines of output."""
    root = tmp_path_factory.mktemp("sluice")
    data_dir = root / "data"
    log = root / "server.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [str(sluice_bin()), "serve", "--data-dir", str(data_dir), "--bind", "127.0.0.1:0",
             "--sandbox-timeout", "120"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_offline_env(),
        )
    try:
        token, url = _read_start(process, log)
        key_file = data_dir.parent / "data.keys" / "signing.ed25519.pub"
        yield Server(url, token, key_file.read_text().strip(), data_dir, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_start(process: subprocess.Popen[str], log: Path) -> tuple[str, str]:
    """The admin token (the line after "created the first admin…") and the
    URL ("listening on http://…") from the server's stdout."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    token = None
    expect_token = False
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        if expect_token:
            token, expect_token = line.strip(), False
        elif line.startswith("created the first admin"):
            expect_token = True
        elif line.startswith("listening on "):
            if token is None:
                raise RuntimeError("the server started without printing an admin token")
            return token, line[len("listening on ") :].strip()
    tail = log.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"sluice serve did not start (exit {process.poll()}); its log ends:\n{tail}")


@pytest.fixture(scope="session")
def admin(server: Server) -> sluice.Client:
    return sluice.Client(server.url, server.admin_token)


@pytest.fixture(scope="session")
def provider_token(admin: sluice.Client) -> str:
    """The census bureau's token, having published PUMS as conditional
    data. Its budgets are raised from the example's (10 per user) so that a
    test may spend ε 20 on one count (test_flows)."""
    token = admin.create_user("census-bureau", "provider").token
    descriptor = tomllib.loads(PUMS_DESCRIPTOR.read_text())
    descriptor["dataset"].update(user_epsilon=100.0, epsilon_cap=10_000.0)
    added = admin.with_token(token).publish(descriptor, PUMS_CSV)
    assert added.dataset == "pums" and added.report["rows"] == 1000
    return token


@pytest.fixture(scope="session")
def provider(admin: sluice.Client, provider_token: str) -> sluice.Client:
    return admin.with_token(provider_token)


_names = itertools.count(1)


@dataclass
class Researcher:
    client: sluice.Client
    agreement: str
    name: str


@pytest.fixture(scope="session")
def new_researcher(admin: sluice.Client, provider: sluice.Client) -> Callable[..., Researcher]:
    """Makes a researcher holding an agreement on pums with budget
    ``epsilon``: they apply with the example application, the provider
    approves with the example terms."""

    def make(epsilon: float = 9.0) -> Researcher:
        name = f"researcher-{next(_names)}"
        client = admin.with_token(admin.create_user(name, "user").token)
        application = client.apply(APPLICATION)
        decided = provider.approve(application.id, TERMS, epsilon=epsilon)
        assert decided.state == "approved" and decided.agreement
        return Researcher(client, decided.agreement, name)

    return make


@pytest.fixture(scope="session")
def alice(new_researcher: Callable[..., Researcher]) -> Researcher:
    """A researcher shared by tests that spend little."""
    return new_researcher()


def pytest_report_header(config: pytest.Config) -> str:
    try:
        return f"sluice binary: {sluice_bin()}; python {sys.version.split()[0]}; sluice package: {sluice.__file__}"
    except RuntimeError as e:
        return str(e)
