"""Job manifests: from a TOML file or text, a dict, or keyword arguments.

A manifest says what runs (SQL, a WASM module, a model to train), on which
datasets, under which data-use agreements, at what ε (docs/manifest.schema.json).
The server receives it as TOML. A WASM module is carried in the manifest as
base64; ``module = "file:<path>"`` in a TOML file (relative to the file) or
a path given to :meth:`Manifest.wasm` is read and embedded, as the CLI does.

:meth:`Manifest.digest` is the SHA-256 of the manifest's canonical JSON in
the form the server digests (``sluice manifest digest``): what reviews bind
to and what a release's ``manifest_digest`` names.
"""

from __future__ import annotations

import base64
import copy
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .canonical import digest_of

__all__ = ["Manifest", "ManifestLike", "ManifestError"]


class ManifestError(ValueError):
    """A manifest that cannot be read or put in the server's form here,
    before any request: a missing field, an unknown one, a module file
    that cannot be read."""


# Training hyperparameters the server fills in when absent (docs/learn.md);
# the digest covers them.
_HYPER_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "learning_rate": 1.0,
    "momentum": 0.9,
    "clip_norm": 1.0,
    "l2": 1e-4,
    "holdout": 0.2,
}
_HYPER_INTS = {"epochs"}

_TOP = {"version", "title", "purpose", "agreement", "datasets", "job", "privacy"}
_JOB_FIELDS = {
    "sql": {"kind", "query"},
    "wasm": {
        "kind",
        "module",
        "mode",
        "columns",
        "outputs",
        "blocks",
        "fuel_per_unit",
        "fuel_per_block",
        "memory_pages",
    },
    "train": {"kind", "model", "query", "label", "hyper", "module"},
}
_PRIVACY = {"epsilon", "delta", "split", "max_rows_per_unit"}


class Manifest:
    """A job manifest. Build one with :meth:`load` (a TOML file),
    :meth:`from_toml`, :meth:`from_dict`, :meth:`sql`, :meth:`wasm` or
    :meth:`train`; pass it to :meth:`sluice.Client.estimate` or
    :meth:`sluice.Client.submit` (which also accept a path, TOML text or a
    dict directly).

    ``data`` is the manifest as a dict, WASM modules already embedded as
    base64. A manifest on conditional data names its agreements
    (``agreement``); its ``purpose`` must be theirs: left out, the client
    fills it in from the agreement before sending.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data: dict[str, Any] = copy.deepcopy(dict(data))

    # -- construction -----------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Manifest":
        """Reads a TOML manifest; ``module = "file:<path>"`` is read
        relative to the manifest's folder and embedded."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ManifestError(f"reading {path}: {e.strerror or e}") from None
        return cls.from_toml(text, base_dir=path.parent)

    @classmethod
    def from_toml(cls, text: str, *, base_dir: str | os.PathLike[str] | None = None) -> "Manifest":
        """Parses TOML text; a ``file:`` module is read relative to
        ``base_dir`` (default: the current folder)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ManifestError(f"manifest invalid: {e}") from None
        return cls.from_dict(data, base_dir=base_dir)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None
    ) -> "Manifest":
        """A manifest from a dict of the TOML's shape. A WASM module may be
        base64 text, ``"file:<path>"`` (relative to ``base_dir``), a
        :class:`pathlib.Path` or raw ``bytes``."""
        data = copy.deepcopy(dict(data))
        job = data.get("job")
        if isinstance(job, dict) and "module" in job and job["module"] is not None:
            job["module"] = _embed(job["module"], Path(base_dir) if base_dir else Path.cwd())
        return cls(data)

    @classmethod
    def sql(
        cls,
        query: str,
        *,
        datasets: Sequence[str],
        epsilon: float,
        agreement: str | Sequence[str] | None = None,
        purpose: str | None = None,
        title: str | None = None,
        delta: float | None = None,
        split: Mapping[str, float] | None = None,
        max_rows_per_unit: Mapping[str, int] | None = None,
    ) -> "Manifest":
        """A DP SQL job (docs/dp-sql.md). ``title`` defaults to the query."""
        return cls(
            _assemble(
                title=title or _title_of(query),
                purpose=purpose,
                agreement=agreement,
                datasets=datasets,
                job={"kind": "sql", "query": query},
                privacy=_privacy(epsilon, delta, split, max_rows_per_unit),
            )
        )

    @classmethod
    def wasm(
        cls,
        module: Union[str, os.PathLike[str], bytes],
        *,
        dataset: str,
        columns: Sequence[str],
        outputs: Sequence[Mapping[str, Any]],
        epsilon: float,
        mode: str = "map",
        blocks: int | None = None,
        agreement: str | Sequence[str] | None = None,
        purpose: str | None = None,
        title: str | None = None,
        fuel_per_unit: int | None = None,
        fuel_per_block: int | None = None,
        memory_pages: int | None = None,
        split: Mapping[str, float] | None = None,
        max_rows_per_unit: Mapping[str, int] | None = None,
    ) -> "Manifest":
        """A WASM job (docs/wasm.md). ``module`` is a path to the ``.wasm``
        file (a :class:`str` or :class:`~pathlib.Path`) or its bytes;
        ``outputs`` are dicts with ``name``, ``lower``, ``upper`` and
        ``default``."""
        module_bytes = module if isinstance(module, bytes) else Path(module)
        job: dict[str, Any] = {
            "kind": "wasm",
            "mode": mode,
            "module": _embed(module_bytes, Path.cwd()),
            "columns": list(columns),
            "outputs": [dict(o) for o in outputs],
        }
        for name, value in (
            ("blocks", blocks),
            ("fuel_per_unit", fuel_per_unit),
            ("fuel_per_block", fuel_per_block),
            ("memory_pages", memory_pages),
        ):
            if value is not None:
                job[name] = value
        name = title or (f"WASM {Path(module).name}" if not isinstance(module, bytes) else "WASM job")
        return cls(
            _assemble(
                title=name,
                purpose=purpose,
                agreement=agreement,
                datasets=[dataset],
                job=job,
                privacy=_privacy(epsilon, None, split, max_rows_per_unit),
            )
        )

    @classmethod
    def train(
        cls,
        query: str,
        *,
        label: str,
        datasets: Sequence[str],
        epsilon: float,
        delta: float,
        model: str = "logistic",
        hyper: Mapping[str, Any] | None = None,
        module: Union[str, os.PathLike[str], bytes, None] = None,
        agreement: str | Sequence[str] | None = None,
        purpose: str | None = None,
        title: str | None = None,
    ) -> "Manifest":
        """A DP model trained by gradient descent (docs/learn.md)."""
        job: dict[str, Any] = {"kind": "train", "model": model, "query": query, "label": label}
        if hyper:
            job["hyper"] = dict(hyper)
        if module is not None:
            job["module"] = _embed(module if isinstance(module, bytes) else Path(module), Path.cwd())
        return cls(
            _assemble(
                title=title or f"{model} model of {label}",
                purpose=purpose,
                agreement=agreement,
                datasets=datasets,
                job=job,
                privacy=_privacy(epsilon, delta, None, None),
            )
        )

    @classmethod
    def of(cls, manifest: "ManifestLike") -> "Manifest":
        """Any accepted form as a :class:`Manifest`: a Manifest, a dict, a
        :class:`~pathlib.Path`, or a :class:`str` that is a path when it
        ends in ``.toml`` and holds no newline, TOML text otherwise."""
        if isinstance(manifest, Manifest):
            return manifest
        if isinstance(manifest, Mapping):
            return cls.from_dict(manifest)
        if isinstance(manifest, os.PathLike):
            return cls.load(manifest)
        if isinstance(manifest, str):
            if "\n" not in manifest and manifest.strip().endswith(".toml"):
                return cls.load(manifest.strip())
            return cls.from_toml(manifest)
        raise TypeError(
            f"a manifest is a Manifest, dict, path or TOML text, not {type(manifest).__name__}"
        )

    # -- use ----------------------------------------------------------------

    @property
    def agreements(self) -> list[str]:
        """The agreement ids the manifest names (``agreement``: one or a list)."""
        return _as_list(self.data.get("agreement"))

    @property
    def epsilon(self) -> float:
        return float(self.data.get("privacy", {}).get("epsilon"))

    def with_agreements(self, ids: Iterable[str]) -> "Manifest":
        """This manifest run under ``ids`` (like the CLI's ``--agreement``).
        Refuses to replace agreements the manifest already names."""
        ids = list(ids)
        if not ids:
            return Manifest(self.data)
        if self.data.get("agreement"):
            raise ManifestError(
                "the manifest already names its agreement; give it there or here, not both"
            )
        data = copy.deepcopy(self.data)
        data["agreement"] = ids[0] if len(ids) == 1 else ids
        return Manifest(data)

    def with_purpose(self, purpose: str) -> "Manifest":
        data = copy.deepcopy(self.data)
        data["purpose"] = purpose
        return Manifest(data)

    def to_toml(self) -> str:
        """The TOML text the server receives."""
        return tomli_w.dumps(_without_none(self.data))

    def normalized(self) -> dict[str, Any]:
        """The manifest as the server holds it (``sluice_types::Manifest``
        serialised): defaults filled, optional fields left out when absent,
        numbers as their declared types (``epsilon = 1`` is the float 1.0).
        Raises :class:`ManifestError` on a missing or unknown field."""
        d = self.data
        _no_unknown(d, _TOP, "")
        out: dict[str, Any] = {
            "version": _int(_need(d, "version", ""), "version"),
            "title": _str(_need(d, "title", ""), "title"),
            "purpose": _str(_need(d, "purpose", ""), "purpose"),
            "datasets": [_str(x, "datasets") for x in _list(_need(d, "datasets", ""), "datasets")],
        }
        agreements = [_str(a, "agreement") for a in self.agreements]
        if agreements:
            out["agreement"] = agreements[0] if len(agreements) == 1 else agreements
        out["job"] = _normalized_job(_table(_need(d, "job", ""), "job"))
        out["privacy"] = _normalized_privacy(_table(_need(d, "privacy", ""), "privacy"))
        return out

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`normalized`: the
        digest the server gives the job and a release names."""
        return digest_of(self.normalized())

    def __repr__(self) -> str:
        job = self.data.get("job", {})
        kind = job.get("kind") if isinstance(job, dict) else None
        return f"Manifest(title={self.data.get('title')!r}, kind={kind!r}, datasets={self.data.get('datasets')!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and other.data == self.data


ManifestLike = Union[Manifest, Mapping[str, Any], str, os.PathLike]


def _title_of(query: str) -> str:
    one_line = " ".join(query.split())
    return one_line if len(one_line) <= 80 else one_line[:79] + "…"


def _assemble(
    *,
    title: str,
    purpose: str | None,
    agreement: str | Sequence[str] | None,
    datasets: Sequence[str],
    job: dict[str, Any],
    privacy: dict[str, Any],
) -> dict[str, Any]:
    if isinstance(datasets, str):
        datasets = [datasets]
    data: dict[str, Any] = {"version": 1, "title": title}
    if purpose is not None:
        data["purpose"] = purpose
    agreements = _as_list(agreement)
    if agreements:
        data["agreement"] = agreements[0] if len(agreements) == 1 else agreements
    data["datasets"] = list(datasets)
    data["job"] = job
    data["privacy"] = privacy
    return data


def _privacy(
    epsilon: float,
    delta: float | None,
    split: Mapping[str, float] | None,
    max_rows_per_unit: Mapping[str, int] | None,
) -> dict[str, Any]:
    p: dict[str, Any] = {"epsilon": float(epsilon)}
    if delta is not None:
        p["delta"] = float(delta)
    if split:
        p["split"] = {k: float(v) for k, v in split.items()}
    if max_rows_per_unit:
        p["max_rows_per_unit"] = dict(max_rows_per_unit)
    return p


def _as_list(agreement: Any) -> list[str]:
    if agreement is None:
        return []
    if isinstance(agreement, str):
        return [agreement]
    return list(agreement)


def _embed(module: Any, base_dir: Path) -> str:
    """A module as base64 text: from bytes, a Path, or ``file:<path>``."""
    if isinstance(module, (bytes, bytearray)):
        return base64.b64encode(bytes(module)).decode("ascii")
    if isinstance(module, str) and not module.startswith("file:"):
        return module  # already base64
    path = Path(module[len("file:") :]) if isinstance(module, str) else Path(module)
    if not path.is_absolute():
        path = base_dir / path
    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as e:
        raise ManifestError(f"reading the module {path}: {e.strerror or e}") from None


def _without_none(value: Any) -> Any:
    # TOML has no null: an absent optional field is simply left out.
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _need(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise ManifestError(f"manifest invalid: missing field `{where}{key}`")
    return d[key]


def _no_unknown(d: Mapping[str, Any], known: set[str], where: str) -> None:
    for k in d:
        if k not in known:
            raise ManifestError(f"manifest invalid: unknown field `{where}{k}`")


def _table(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise ManifestError(f"manifest invalid: `{where}` must be a table")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, (list, tuple)):
        raise ManifestError(f"manifest invalid: `{where}` must be a list")
    return list(v)


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise ManifestError(f"manifest invalid: `{where}` must be a string")
    return v


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ManifestError(f"manifest invalid: `{where}` must be an integer")
    return v


def _float(v: Any, where: str) -> float:
    # An integer where a float is declared reads as that float, as in Rust.
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ManifestError(f"manifest invalid: `{where}` must be a number")
    return float(v)


def _normalized_job(job: Mapping[str, Any]) -> dict[str, Any]:
    kind = _str(_need(job, "kind", "job."), "job.kind")
    if kind not in _JOB_FIELDS:
        raise ManifestError(f"manifest invalid: unknown job kind `{kind}` (sql, wasm or train)")
    _no_unknown(job, _JOB_FIELDS[kind], "job.")
    if kind == "sql":
        return {"kind": "sql", "query": _str(_need(job, "query", "job."), "job.query")}
    if kind == "wasm":
        out: dict[str, Any] = {
            "kind": "wasm",
            "module": _str(_need(job, "module", "job."), "job.module"),
            "mode": _str(_need(job, "mode", "job."), "job.mode"),
            "columns": [_str(c, "job.columns") for c in _list(_need(job, "columns", "job."), "job.columns")],
            "outputs": [],
        }
        for o in _list(_need(job, "outputs", "job."), "job.outputs"):
            o = _table(o, "job.outputs")
            _no_unknown(o, {"name", "lower", "upper", "default"}, "job.outputs.")
            out["outputs"].append(
                {
                    "name": _str(_need(o, "name", "job.outputs."), "job.outputs.name"),
                    "lower": _float(_need(o, "lower", "job.outputs."), "job.outputs.lower"),
                    "upper": _float(_need(o, "upper", "job.outputs."), "job.outputs.upper"),
                    "default": _float(_need(o, "default", "job.outputs."), "job.outputs.default"),
                }
            )
        for name in ("blocks", "fuel_per_unit", "fuel_per_block", "memory_pages"):
            if job.get(name) is not None:
                out[name] = _int(job[name], f"job.{name}")
        return out
    hyper_in = _table(job.get("hyper") or {}, "job.hyper")
    _no_unknown(hyper_in, set(_HYPER_DEFAULTS), "job.hyper.")
    hyper = {
        k: (_int if k in _HYPER_INTS else _float)(hyper_in.get(k, default), f"job.hyper.{k}")
        for k, default in _HYPER_DEFAULTS.items()
    }
    out = {
        "kind": "train",
        "model": _str(_need(job, "model", "job."), "job.model"),
        "query": _str(_need(job, "query", "job."), "job.query"),
        "label": _str(_need(job, "label", "job."), "job.label"),
        "hyper": hyper,
    }
    if job.get("module") is not None:
        out["module"] = _str(job["module"], "job.module")
    return out


def _normalized_privacy(p: Mapping[str, Any]) -> dict[str, Any]:
    _no_unknown(p, _PRIVACY, "privacy.")
    out: dict[str, Any] = {"epsilon": _float(_need(p, "epsilon", "privacy."), "privacy.epsilon")}
    if p.get("delta") is not None:
        out["delta"] = _float(p["delta"], "privacy.delta")
    split = _table(p.get("split") or {}, "privacy.split")
    if split:
        out["split"] = {_str(k, "privacy.split"): _float(v, f"privacy.split.{k}") for k, v in split.items()}
    rows = _table(p.get("max_rows_per_unit") or {}, "privacy.max_rows_per_unit")
    if rows:
        out["max_rows_per_unit"] = {
            _str(k, "privacy.max_rows_per_unit"): _int(v, f"privacy.max_rows_per_unit.{k}")
            for k, v in rows.items()
        }
    return out
