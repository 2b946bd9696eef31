"""Manifests from TOML files, dicts and keywords, offline. That their
digests are the server's is tests/test_rust_agreement.py."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

from sluice import Manifest, ManifestError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "examples" / "jobs"


def test_a_toml_file_embeds_its_wasm_module_relative_to_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the module is found beside the manifest, not here
    m = Manifest.load(JOBS / "older_share.toml")
    module = (JOBS / "older_share.wasm").read_bytes()
    assert base64.b64decode(m.data["job"]["module"]) == module
    sent = tomllib.loads(m.to_toml())
    assert sent["job"]["module"] == base64.b64encode(module).decode()
    assert sent["job"]["outputs"][1] == {"name": "persons_65_plus", "lower": 0.0, "upper": 1.0, "default": 0.0}


def test_a_missing_module_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text((JOBS / "older_share.toml").read_text().replace("older_share.wasm", "absent.wasm"))
    with pytest.raises(ManifestError, match="absent.wasm"):
        Manifest.load(path)


def test_keywords_dicts_and_toml_make_the_same_manifest() -> None:
    by_file = Manifest.load(JOBS / "income_by_sex.toml")
    d = by_file.data
    by_keywords = Manifest.sql(
        d["job"]["query"], datasets=["pums"], epsilon=1, purpose=d["purpose"], title=d["title"]
    )
    assert by_keywords.normalized() == by_file.normalized()
    assert by_keywords.digest() == by_file.digest()
    assert Manifest.of(dict(d)).digest() == by_file.digest()
    assert Manifest.of(str(JOBS / "income_by_sex.toml")).digest() == by_file.digest()
    assert Manifest.of(by_file.to_toml()).digest() == by_file.digest()


def test_the_normalized_form_is_the_servers() -> None:
    m = Manifest.from_dict(
        {
            "version": 1,
            "title": "t",
            "purpose": "p",
            "agreement": ["agr_1"],
            "datasets": ["pums"],
            "job": {"kind": "train", "model": "logistic", "query": "SELECT a, b FROM pums", "label": "b",
                    "hyper": {"epochs": 5}},
            "privacy": {"epsilon": 2, "delta": 1e-6},
        }
    )
    assert m.normalized() == {
        "version": 1,
        "title": "t",
        "purpose": "p",
        "agreement": "agr_1",  # one agreement serialises as a string
        "datasets": ["pums"],
        "job": {
            "kind": "train",
            "model": "logistic",
            "query": "SELECT a, b FROM pums",
            "label": "b",
            "hyper": {"epochs": 5, "learning_rate": 1.0, "momentum": 0.9, "clip_norm": 1.0, "l2": 1e-4, "holdout": 0.2},
        },
        "privacy": {"epsilon": 2.0, "delta": 1e-6},
    }
    assert isinstance(m.normalized()["privacy"]["epsilon"], float)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.pop("title"), "missing field `title`"),
        (lambda d: d.update(titel="x"), "unknown field `titel`"),
        (lambda d: d["job"].update(kind="python"), "unknown job kind"),
        (lambda d: d["privacy"].update(epsilon="1"), "privacy.epsilon"),
    ],
)
def test_a_malformed_manifest_is_named_before_any_request(change, message: str) -> None:
    d = Manifest.load(JOBS / "income_by_sex.toml").data
    change(d)
    with pytest.raises(ManifestError, match=message):
        Manifest(d).digest()


def test_agreements_are_named_once() -> None:
    m = Manifest.sql("SELECT COUNT(*) FROM pums", datasets=["pums"], epsilon=1.0, purpose="p")
    assert m.with_agreements(["a"]).agreements == ["a"]
    assert m.with_agreements(["a", "b"]).normalized()["agreement"] == ["a", "b"]
    with pytest.raises(ManifestError, match="already names"):
        m.with_agreements(["a"]).with_agreements(["b"])


def test_a_wasm_module_from_a_path_or_bytes() -> None:
    module = (JOBS / "older_share.wasm").read_bytes()
    outputs = [{"name": "n", "lower": 0, "upper": 1, "default": 0}]
    a = Manifest.wasm(JOBS / "older_share.wasm", dataset="pums", columns=["age"], outputs=outputs, epsilon=1.0, purpose="p")
    b = Manifest.wasm(module, dataset="pums", columns=["age"], outputs=outputs, epsilon=1.0, purpose="p", title=a.data["title"])
    assert a.digest() == b.digest()
    assert a.normalized()["job"]["outputs"] == [{"name": "n", "lower": 0.0, "upper": 1.0, "default": 0.0}]
