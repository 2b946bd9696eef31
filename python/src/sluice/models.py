"""Typed views of the API's answers (crates/sluice-types/src/api.rs).

Each view keeps the JSON it came from in ``raw``, so a field this client
does not know yet is still at hand. ε and δ amounts, which the API states
as exact decimal strings, are floats here; timestamps are timezone-aware
:class:`~datetime.datetime` objects.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from .canonical import digest_of

__all__ = [
    "User",
    "CreatedUser",
    "PublicKey",
    "DatasetVersion",
    "Dataset",
    "VersionAdded",
    "Budget",
    "Job",
    "Estimate",
    "Application",
    "Agreement",
    "parse_time",
    "FINAL_STATES",
]

#: Job states that never change again.
FINAL_STATES = frozenset({"released", "rejected", "failed", "cancelled"})


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp (``2026-01-01T00:00:00.123Z``) as an aware
    datetime; None stays None."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _amount(text: Any) -> float:
    return float(text) if text not in (None, "") else 0.0


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "User":
        return cls(id=d["id"], name=d["name"], role=d["role"], raw=d)


@dataclass(frozen=True)
class CreatedUser:
    """A new account and its token, shown once."""

    user: User
    token: str = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CreatedUser":
        return cls(user=User.from_json(d["user"]), token=d["token"])


@dataclass(frozen=True)
class PublicKey:
    """The platform's release-signing key (hex) and its id."""

    key_id: str
    public_key_hex: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PublicKey":
        return cls(key_id=d["key_id"], public_key_hex=d["public_key_hex"])


@dataclass(frozen=True)
class DatasetVersion:
    version: str
    created_at: datetime | None
    source_format: str


@dataclass(frozen=True)
class Dataset:
    """A catalog entry: the fields a provider describes (art. 14), the
    schema with its column roles, bounds and domains, and the versions."""

    id: str
    name: str
    title: str
    description: str
    provider: str
    open_category: str
    format: str
    data_type: str
    update_frequency: str
    schema: Mapping[str, Any] = field(repr=False)
    versions: list[DatasetVersion] = field(repr=False)
    created_at: datetime | None = field(repr=False)
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Dataset":
        return cls(
            id=d["id"],
            name=d["name"],
            title=d["title"],
            description=d.get("description", ""),
            provider=d["provider"],
            open_category=d["open_category"],
            format=d["format"],
            data_type=d.get("data_type", ""),
            update_frequency=d.get("update_frequency", ""),
            schema=d.get("schema", {}),
            versions=[
                DatasetVersion(v["version"], parse_time(v.get("created_at")), v.get("source_format", ""))
                for v in d.get("versions", [])
            ],
            created_at=parse_time(d.get("created_at")),
            raw=d,
        )

    @property
    def latest_version(self) -> str | None:
        """The content hash of the newest version, if any."""
        return self.versions[-1].version if self.versions else None

    @property
    def columns(self) -> list[Mapping[str, Any]]:
        """The schema's columns: name, role, type, bounds or domain."""
        return list(self.schema.get("columns", []))


@dataclass(frozen=True)
class VersionAdded:
    """An uploaded version and its quality report (for the provider)."""

    dataset: str
    version: str
    report: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "VersionAdded":
        return cls(dataset=d["dataset"], version=d["version"], report=d["report"])


@dataclass(frozen=True)
class Budget:
    """The caller's own ε on a dataset, and the δ spent."""

    dataset: str
    granted: float
    spent: float
    remaining: float
    delta_spent: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Budget":
        return cls(
            dataset=d["dataset"],
            granted=_amount(d["user_granted"]),
            spent=_amount(d["user_spent"]),
            remaining=_amount(d["user_remaining"]),
            delta_spent=_amount(d.get("user_delta_spent")),
            raw=d,
        )


@dataclass(frozen=True)
class Job:
    """A job's view. ``due_at`` is when a running job's outcome becomes
    visible: fixed at admission from data-independent inputs, moved later
    only if the job runs over (docs/threat-model.md, "Timing")."""

    id: str
    state: str
    message: str | None
    manifest_digest: str
    epsilon: float
    created_at: datetime | None
    updated_at: datetime | None
    due_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Job":
        return cls(
            id=d["id"],
            state=d["state"],
            message=d.get("message"),
            manifest_digest=d["manifest_digest"],
            epsilon=_amount(d.get("epsilon")),
            created_at=parse_time(d.get("created_at")),
            updated_at=parse_time(d.get("updated_at")),
            due_at=parse_time(d.get("due_at")),
            raw=d,
        )

    @property
    def is_final(self) -> bool:
        """Released, rejected, failed or cancelled: it never changes again."""
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class Estimate:
    """What a manifest would do, from schemas alone: accepted or not (with
    every reason), the exact ε and δ, each column's noise, and when the
    outcome would be visible (``expected_seconds`` after it starts)."""

    accepted: bool
    reasons: list[str]
    manifest_digest: str
    plan: str | None
    epsilon: float | None
    delta: float | None
    rows: int | None
    key_threshold: int | None
    columns: list[Mapping[str, Any]]
    minimum_epsilon: float | None
    expected_seconds: float | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Estimate":
        e = d.get("estimate") or {}
        return cls(
            accepted=bool(d["accepted"]),
            reasons=list(d.get("reasons", [])),
            manifest_digest=d["manifest_digest"],
            plan=d.get("plan"),
            epsilon=e["epsilon"] / 1e9 if "epsilon" in e else None,
            delta=e["delta"] / 1e18 if "delta" in e else None,
            rows=e.get("rows"),
            key_threshold=e.get("key_threshold"),
            columns=list(e.get("columns", [])),
            minimum_epsilon=float(d["minimum_epsilon"]) if d.get("minimum_epsilon") else None,
            expected_seconds=d.get("expected_seconds"),
            raw=d,
        )

    def to_pandas(self) -> Any:
        """Per output column: its aggregate, ε share, noise sd, 95%
        half-width, rank error (quantiles) and note (ratios)."""
        import pandas as pd

        names = ["name", "aggregate", "epsilon", "std_dev", "ci95_halfwidth", "rank_error95", "note"]
        rows = []
        for c in self.columns:
            row = {k: c.get(k) for k in names}
            if row["epsilon"] is not None:
                row["epsilon"] = row["epsilon"] / 1e9
            rows.append(row)
        return pd.DataFrame(rows, columns=names)

    def _repr_html_(self) -> str:
        e = html.escape
        head = (
            f"<p><b>{'accepted' if self.accepted else 'rejected'}</b>"
            + (f", ε {self.epsilon:g}" if self.epsilon is not None else "")
            + (f", δ {self.delta:g}" if self.delta else "")
            + (
                f", outcome visible {self.expected_seconds:.1f} s after it starts"
                if self.expected_seconds is not None
                else ""
            )
            + "</p>"
        )
        reasons = "".join(f"<li>{e(r)}</li>" for r in self.reasons)
        plan = f"<p>{e(self.plan)}</p>" if self.plan else ""
        table = self.to_pandas().to_html(index=False, na_rep="", escape=True) if self.columns else ""
        return head + (f"<ul>{reasons}</ul>" if reasons else "") + plan + table


@dataclass(frozen=True)
class Application:
    """An application for conditional data (art. 20) and its decision."""

    id: str
    applicant: str
    provider: str
    state: str
    application: Mapping[str, Any] = field(repr=False)
    created_at: datetime | None = field(repr=False)
    due_at: datetime | None = field(repr=False)
    overdue: bool = field(repr=False)
    decision: Mapping[str, Any] | None = field(repr=False)
    agreement: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Application":
        return cls(
            id=d["id"],
            applicant=d["applicant"],
            provider=d["provider"],
            state=d["state"],
            application=d.get("application", {}),
            created_at=parse_time(d.get("created_at")),
            due_at=parse_time(d.get("due_at")),
            overdue=bool(d.get("overdue")),
            decision=d.get("decision"),
            agreement=d.get("agreement"),
            raw=d,
        )


@dataclass(frozen=True)
class Agreement:
    """A data-use agreement (art. 21): its content (terms included), the
    SHA-256 of that content's canonical JSON, its period and budget."""

    id: str
    user: str
    provider: str
    datasets: list[str]
    period_start: str
    period_end: str
    active: bool
    epsilon: float
    epsilon_spent: float
    epsilon_remaining: float
    min_epsilon_per_job: float
    content_hash: str = field(repr=False)
    content: Mapping[str, Any] = field(repr=False)
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Agreement":
        return cls(
            id=d["id"],
            user=d["user"],
            provider=d["provider"],
            datasets=list(d.get("datasets", [])),
            period_start=d["period_start"],
            period_end=d["period_end"],
            active=bool(d["active"]),
            epsilon=_amount(d["epsilon"]),
            epsilon_spent=_amount(d["epsilon_spent"]),
            epsilon_remaining=_amount(d["epsilon_remaining"]),
            min_epsilon_per_job=_amount(d.get("min_epsilon_per_job")),
            content_hash=d["content_hash"],
            content=d["content"],
            raw=d,
        )

    @property
    def purpose(self) -> str | None:
        """The purpose a job under this agreement must state."""
        terms = self.content.get("terms") if isinstance(self.content, Mapping) else None
        return terms.get("purpose") if isinstance(terms, Mapping) else None

    def content_matches_hash(self) -> bool:
        """Whether ``content_hash`` is the SHA-256 of the content's
        canonical JSON, as the platform computed it at approval."""
        return digest_of(self.content) == self.content_hash
