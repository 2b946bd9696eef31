"""A signed release: DP outputs with their 95% intervals, the ε and δ they
cost, provenance and the citation of every dataset (art. 24).

The values a :class:`Release` shows are read from the signed envelope's
payload, never from the convenience ``body`` the API sends beside it, so
what :meth:`Release.verify` checks is exactly what is shown.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from typing import Any, Mapping, Sequence

from .canonical import parse_json
from .errors import VerificationError
from .manifest import Manifest, ManifestLike
from .verify import verify_release

# Column kinds whose cells are public values (no noise, no interval).
_PUBLIC_KINDS = ("group_key", "constant")

__all__ = ["Release"]


def _cell_parts(cell: Any) -> tuple[Any, float | None, float | None, float | None]:
    """(value, lower, upper, rank_error95) of a cell: a noisy value has an
    interval, a quantile a rank error, a derived value neither; anything
    else is a group key (``None``: no value released)."""
    if isinstance(cell, dict) and "value" in cell and isinstance(cell["value"], (int, float)):
        ci = cell.get("ci95")
        if isinstance(ci, list) and len(ci) == 2:
            return cell["value"], ci[0], ci[1], None
        if "rank_error95" in cell:
            return cell["value"], None, None, cell["rank_error95"]
        return cell["value"], None, None, None
    return cell, None, None, None


class Release:
    """A release as returned by ``GET /v1/jobs/{id}/release``.

    >>> release.verify(client.public_key())   # offline check of the signature
    >>> release.to_pandas()                   # value, lower, upper per output
    >>> release.epsilon, release.citation
    """

    def __init__(self, raw: Mapping[str, Any]) -> None:
        envelope = raw.get("envelope", raw)
        if not isinstance(envelope, Mapping) or not isinstance(envelope.get("payload"), str):
            raise VerificationError("not a release envelope")
        try:
            body = parse_json(base64.b64decode(envelope["payload"], validate=True))
        except ValueError as e:
            raise VerificationError(f"the release payload is not JSON: {e}") from None
        if not isinstance(body, dict) or not isinstance(body.get("outputs"), dict):
            raise VerificationError("the release payload is not a release body")
        self.envelope: dict[str, Any] = dict(envelope)
        #: The signed body, decoded (checked by :meth:`verify`).
        self.body: dict[str, Any] = body
        #: The key id it last verified against, or None.
        self.verified_by: str | None = None

    # -- loading and saving -------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Release":
        """Reads a release file (as ``sluice job submit -o`` or :meth:`save`
        writes it, or a bare envelope)."""
        with open(path, "rb") as f:
            return cls(parse_json(f.read()))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the envelope (and the body) as JSON, for ``sluice verify``."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"envelope": self.envelope, "body": self.body}, f, indent=2, ensure_ascii=False)

    # -- verification ---------------------------------------------------------

    def verify(self, public_key: Any, *, manifest: ManifestLike | None = None) -> "Release":
        """Checks offline that the platform signed this release: the
        Ed25519 signature over the payload, and that the payload is the
        canonical JSON of a release body. ``public_key`` is the key's hex,
        its raw bytes, or a :class:`~sluice.models.PublicKey`. With
        ``manifest``, also checks that the release answers that manifest
        (its digest). Returns the release; raises
        :class:`~sluice.errors.VerificationError`."""
        key = getattr(public_key, "public_key_hex", public_key)
        body = verify_release(self.envelope, key)
        if body != self.body:  # cannot happen: both decode the same bytes
            raise VerificationError("the signed body differs from the one shown")
        if manifest is not None:
            digest = Manifest.of(manifest).digest()
            if digest != self.manifest_digest:
                raise VerificationError(
                    f"the release answers manifest {self.manifest_digest[:12]}…, not this one ({digest[:12]}…)"
                )
        from .verify import key_id_of, public_key_bytes

        self.verified_by = key_id_of(public_key_bytes(key))
        return self

    # -- fields ------------------------------------------------------------------

    @property
    def job_id(self) -> str:
        return self.body["job_id"]

    @property
    def title(self) -> str:
        return self.body["title"]

    @property
    def manifest_digest(self) -> str:
        return self.body["manifest_digest"]

    @property
    def created_at(self) -> str:
        return self.body["created_at"]

    @property
    def epsilon(self) -> float:
        """The ε this release spent (exactly the manifest's)."""
        return self.body["epsilon_spent"] / 1e9

    @property
    def delta(self) -> float:
        """The δ spent (non-zero only when group keys came from the data)."""
        return self.body["delta_spent"] / 1e18

    @property
    def confidence_level(self) -> float:
        return float(self.body["confidence_level"])

    @property
    def datasets(self) -> list[dict[str, Any]]:
        """Each dataset read: name, id, version (content hash), provider, citation."""
        return list(self.body["datasets"])

    @property
    def citations(self) -> list[str]:
        """One ready citation per dataset (art. 24)."""
        return [d["citation"] for d in self.body["datasets"]]

    @property
    def citation(self) -> str:
        """The citation to give, one line per dataset."""
        return "\n".join(self.citations)

    @property
    def mechanism(self) -> str:
        """How the outputs were noised and how the budget was split."""
        return self.body["outputs"]["mechanism"]

    @property
    def columns(self) -> list[dict[str, Any]]:
        """Output columns: name, kind (``group_key``, ``aggregate`` or
        ``constant``), the
        aggregate function and the ε share of each aggregate."""
        return list(self.body["outputs"]["columns"])

    @property
    def rows(self) -> list[list[Any]]:
        """The released cells, row by row, as signed."""
        return list(self.body["outputs"]["rows"])

    # -- tables ------------------------------------------------------------------

    def _table(self) -> tuple[list[str], dict[str, list[Any]]]:
        """Column names and values: a group key is one column; an aggregate
        ``x`` is ``x`` (value), ``x_lower`` and ``x_upper`` (its 95%
        interval), plus ``x_rank_error95`` when it holds quantiles."""
        columns = self.columns
        rows = self.rows
        names: list[str] = []
        data: dict[str, list[Any]] = {}
        for i, col in enumerate(columns):
            name = col["name"]
            parts = [_cell_parts(r[i]) if i < len(r) else (None, None, None, None) for r in rows]
            # Public columns, and labels or truth values computed from
            # released aggregates (no interval), are plain value columns.
            if col.get("kind") in _PUBLIC_KINDS or any(isinstance(p[0], (str, bool)) for p in parts):
                names.append(name)
                data[name] = [p[0] for p in parts]
                continue
            nan = math.nan
            values = [p[0] if isinstance(p[0], (int, float)) else nan for p in parts]
            names += [name, f"{name}_lower", f"{name}_upper"]
            data[name] = [float(v) for v in values]
            data[f"{name}_lower"] = [float(p[1]) if p[1] is not None else nan for p in parts]
            data[f"{name}_upper"] = [float(p[2]) if p[2] is not None else nan for p in parts]
            if any(p[3] is not None for p in parts):
                names.append(f"{name}_rank_error95")
                data[f"{name}_rank_error95"] = [float(p[3]) if p[3] is not None else nan for p in parts]
        return names, data

    def to_pandas(self) -> Any:
        """The outputs as a :class:`pandas.DataFrame`: group keys as
        columns; each aggregate ``x`` as ``x``, ``x_lower``, ``x_upper``
        (NaN where no interval is stated: quantiles, derived values). The
        frame's ``attrs`` hold the job id, ε, δ and citation."""
        import pandas as pd

        names, data = self._table()
        frame = pd.DataFrame({n: data[n] for n in names}, columns=names)
        frame.attrs.update(
            {
                "job_id": self.job_id,
                "title": self.title,
                "epsilon": self.epsilon,
                "delta": self.delta,
                "citation": self.citation,
                "verified_by": self.verified_by,
            }
        )
        return frame

    def to_arrow(self) -> Any:
        """The outputs as a :class:`pyarrow.Table` (columns as in
        :meth:`to_pandas`), with the job id, ε, δ, citation and manifest
        digest in the schema's metadata. Needs ``pyarrow``
        (``pip install 'sluice[arrow]'``)."""
        try:
            import pyarrow as pa
        except ImportError:
            raise ImportError("Release.to_arrow needs pyarrow: pip install 'sluice[arrow]'") from None
        names, data = self._table()
        table = pa.table({n: data[n] for n in names}) if names else pa.table({})
        return table.replace_schema_metadata(
            {
                "sluice.job_id": self.job_id,
                "sluice.title": self.title,
                "sluice.epsilon": repr(self.epsilon),
                "sluice.delta": repr(self.delta),
                "sluice.citation": self.citation,
                "sluice.manifest_digest": self.manifest_digest,
            }
        )

    # -- display ------------------------------------------------------------------

    def __repr__(self) -> str:
        state = f"verified by key {self.verified_by}" if self.verified_by else "not verified"
        return (
            f"<Release {self.job_id} {self.title!r}: {len(self.rows)} row(s), "
            f"ε {self.epsilon:g}, δ {self.delta:g}, {state}>"
        )

    def _repr_html_(self) -> str:
        """A table of the outputs with their intervals, the ε spent, the
        citation and whether the signature was verified. Every text from
        the release is escaped: titles and keys are data."""
        e = html.escape
        level = f"{self.confidence_level:.0%}"
        head = "".join(
            f"<th>{e(c['name'])}" + (f" <small>({level} interval)</small>" if c.get("kind") not in _PUBLIC_KINDS else "")
            + "</th>"
            for c in self.columns
        )
        body_rows = []
        for row in self.rows:
            cells = []
            for i, col in enumerate(self.columns):
                value, lo, hi, rank = _cell_parts(row[i] if i < len(row) else None)
                if col.get("kind") in _PUBLIC_KINDS or not isinstance(value, (int, float)):
                    cells.append(f"<td>{e(_text(value))}</td>")
                    continue
                extra = ""
                if lo is not None and hi is not None:
                    extra = f" <small>[{e(_num(lo))}, {e(_num(hi))}]</small>"
                elif rank is not None:
                    extra = f" <small>(rank error ≤ {e(_num(rank))})</small>"
                cells.append(f"<td style='text-align:right'>{e(_num(value))}{extra}</td>")
            body_rows.append("<tr>" + "".join(cells) + "</tr>")
        verified = (
            f"signature verified (key {e(self.verified_by)})"
            if self.verified_by
            else "signature not verified yet: call .verify(public_key)"
        )
        citations = "".join(f"<li>{e(c)}</li>" for c in self.citations)
        return (
            "<div class='sluice-release'>"
            f"<p><b>{e(self.title)}</b> <small>job {e(self.job_id)}, {e(self.created_at)}</small></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>"
            f"<p>ε spent {e(f'{self.epsilon:g}')}"
            + (f", δ {e(f'{self.delta:g}')}" if self.delta else "")
            + f"; {e(verified)}</p>"
            f"<p>Cite:</p><ul>{citations}</ul>"
            f"<details><summary>mechanism</summary><p>{e(self.mechanism)}</p></details>"
            "</div>"
        )


def _num(x: float) -> str:
    return f"{x:,.6g}" if isinstance(x, float) else str(x)


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def releases_frame(releases: Sequence[Release]) -> Any:
    """One row per release: job, title, ε, δ, created, citation."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "job_id": r.job_id,
                "title": r.title,
                "epsilon": r.epsilon,
                "delta": r.delta,
                "created_at": r.created_at,
                "citation": r.citation,
            }
            for r in releases
        ]
    )
