"""The HTTP client: one method per thing a researcher (and, for tests and
small set-ups, a provider) does, each returning a typed view or raising
the exception of the API's error code (docs/api.md)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TextIO, Union

import httpx

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .canonical import parse_json
from .errors import (
    ApiError,
    JobFailed,
    JobTimeout,
    QueryRejected,
    SluiceError,
    UnexpectedResponse,
    error_for,
)
from .manifest import Manifest, ManifestError, ManifestLike
from .models import (
    Agreement,
    Application,
    Budget,
    CreatedUser,
    Dataset,
    Estimate,
    Job,
    PublicKey,
    User,
    VersionAdded,
)
from .progress import Progress, in_notebook
from .release import Release

__all__ = ["Client", "DEFAULT_URL"]

#: The CLI's default server address.
DEFAULT_URL = "http://127.0.0.1:7878"

PathLike = Union[str, os.PathLike]
TomlSource = Union[PathLike, Mapping[str, Any]]


def _read_toml(source: TomlSource, what: str) -> dict[str, Any]:
    """A TOML file (path) or an already-parsed dict."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SluiceError(f"reading the {what} {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SluiceError(f"the {what} {path} is not valid TOML: {e}") from None


class Client:
    """A client of one Sluice server, acting as the holder of ``token``.

    >>> client = Client("http://127.0.0.1:7878", token)   # or Client.from_env()
    >>> client.datasets("income")
    >>> release = client.sql("SELECT COUNT(*) AS n FROM pums",
    ...                      datasets=["pums"], epsilon=1.0, agreement="agr_…")
    >>> release.verify(client.public_key()).to_pandas()
    """

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        headers = {"user-agent": "sluice-python"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def from_env(cls, **kwargs: Any) -> "Client":
        """A client from ``SLUICE_URL`` (default ``http://127.0.0.1:7878``)
        and ``SLUICE_TOKEN``, like the CLI."""
        return cls(os.environ.get("SLUICE_URL", DEFAULT_URL), os.environ.get("SLUICE_TOKEN"), **kwargs)

    def with_token(self, token: str) -> "Client":
        """The same server, as another account."""
        return Client(self.url, token, timeout=self._timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, token={'…' if self._token else None})"

    # -- plumbing ----------------------------------------------------------------

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise SluiceError(f"{method} {self.url}{path} failed: {e}") from None
        if response.is_success:
            return response
        try:
            body: Any = parse_json(response.content)
        except (ValueError, UnicodeError):
            body = None
        raise error_for(response.status_code, body)

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self._request(method, path, **kw)
        try:
            return parse_json(response.content)
        except (ValueError, UnicodeError):
            raise UnexpectedResponse(
                f"{method} {path} answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from None

    # -- accounts and keys --------------------------------------------------------

    def health(self) -> bool:
        """Whether the server answers."""
        self._request("GET", "/v1/health")
        return True

    def public_key(self) -> PublicKey:
        """The platform's release-signing key. For offline verification,
        keep a copy obtained out of band (the key dir's
        ``signing.ed25519.pub``) rather than trusting the server you verify."""
        return PublicKey.from_json(self._json("GET", "/v1/public-key"))

    def me(self) -> User:
        return User.from_json(self._json("GET", "/v1/me"))

    def create_user(self, name: str, role: str) -> CreatedUser:
        """Creates an account (admin): role ``provider``, ``user``,
        ``reviewer`` or ``admin``. The token is shown once."""
        return CreatedUser.from_json(self._json("POST", "/v1/users", json={"name": name, "role": role}))

    # -- catalog -------------------------------------------------------------------

    def datasets(
        self,
        query: str | None = None,
        *,
        provider: str | None = None,
        open_category: str | None = None,
        format: str | None = None,
        update_frequency: str | None = None,
    ) -> list[Dataset]:
        """Searches the catalog: free text, and filters on the provider,
        open category (``conditional``, ``unconditional``), format and
        update frequency."""
        params = {
            k: v
            for k, v in (
                ("q", query),
                ("provider", provider),
                ("open_category", open_category),
                ("format", format),
                ("update_frequency", update_frequency),
            )
            if v is not None
        }
        return [Dataset.from_json(d) for d in self._json("GET", "/v1/datasets", params=params)]

    search = datasets

    def dataset(self, name: str) -> Dataset:
        """One catalog entry, with its schema and versions."""
        return Dataset.from_json(self._json("GET", f"/v1/datasets/{_seg(name)}"))

    def preview(self, name: str, limit: int = 10) -> Any:
        """A few rows as a :class:`pandas.DataFrame`: real rows of
        unconditional data, synthetic rows (from the schema only) of
        conditional data; ``frame.attrs["synthetic"]`` says which."""
        import pandas as pd

        view = self._json("GET", f"/v1/datasets/{_seg(name)}/preview", params={"limit": limit})
        rows = view.get("rows", [])
        columns = [c["name"] for c in self.dataset(name).columns if c.get("role") != "privacy_unit"]
        present = [c for c in columns if any(c in r for r in rows)]
        extra = sorted({k for r in rows for k in r} - set(present))
        frame = pd.DataFrame(rows, columns=present + extra)
        frame.attrs["synthetic"] = bool(view.get("synthetic"))
        frame.attrs["dataset"] = name
        return frame

    def budget(self, name: str) -> Budget:
        """Your own ε on a dataset: granted, spent, remaining; δ spent."""
        return Budget.from_json(self._json("GET", f"/v1/datasets/{_seg(name)}/budget"))

    # -- provider: publishing --------------------------------------------------------

    def create_dataset(self, descriptor: TomlSource) -> Dataset:
        """Creates a catalog entry from a descriptor (a TOML file such as
        examples/data/pums.toml, or its dict)."""
        return Dataset.from_json(self._json("POST", "/v1/datasets", json=_read_toml(descriptor, "descriptor")))

    def upload_version(self, name: str, data: PathLike | bytes) -> VersionAdded:
        """Uploads a version of a dataset (the raw file's bytes, or a path
        to it); returns its content hash and quality report."""
        if not isinstance(data, (bytes, bytearray)):
            path = Path(data)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise SluiceError(f"reading {path}: {e.strerror or e}") from None
        return VersionAdded.from_json(
            self._json(
                "POST",
                f"/v1/datasets/{_seg(name)}/versions",
                content=bytes(data),
                headers={"content-type": "application/octet-stream"},
            )
        )

    def publish(self, descriptor: TomlSource, data: PathLike | bytes) -> VersionAdded:
        """Creates the dataset a descriptor describes and uploads its first
        version (``sluice dataset publish``)."""
        entry = self.create_dataset(descriptor)
        return self.upload_version(entry.name, data)

    def quality(self, name: str, version: str) -> Mapping[str, Any]:
        """A version's quality report (its provider)."""
        return self._json("GET", f"/v1/datasets/{_seg(name)}/versions/{_seg(version)}/quality")

    # -- applications and agreements ---------------------------------------------------

    def apply(self, application: TomlSource | None = None, **fields: Any) -> Application:
        """Applies for conditional data (art. 20), from a TOML file (such
        as examples/access/application.toml), a dict, or keyword fields:
        ``title``, ``reason``, ``type`` (``dataset`` or ``api``),
        ``datasets``, ``period_start``, ``period_end`` (``YYYY-MM-DD``),
        ``result_form``, ``scenario``, ``pledge``. Keywords override the
        file's fields. An incomplete application is refused with every
        problem (:class:`~sluice.errors.BadRequest`)."""
        body = _read_toml(application, "application") if application is not None else {}
        body.update(fields)
        return Application.from_json(self._json("POST", "/v1/applications", json=body))

    def applications(self, *, overdue: bool = False) -> list[Application]:
        """Your applications (users), those for you to decide (providers),
        or all (admin)."""
        params = {"overdue": "true" if overdue else "false"}
        return [Application.from_json(a) for a in self._json("GET", "/v1/applications", params=params)]

    def application(self, id: str) -> Application:
        return Application.from_json(self._json("GET", f"/v1/applications/{_seg(id)}"))

    def approve(self, application_id: str, terms: TomlSource | None = None, **fields: Any) -> Application:
        """Approves an application (its provider) with the agreement's
        terms: a TOML file (examples/access/terms.toml), a dict, or keyword
        fields (``purpose``, ``scope``, ``manner``, ``prohibitions``,
        ``credit_commitment``, ``liability``, ``dispute_resolution``,
        ``epsilon``, ``min_epsilon_per_job``); keywords override the file."""
        body = _read_toml(terms, "terms") if terms is not None else {}
        body.update(fields)
        return self._decide(application_id, {"approve": True, "terms": body})

    def refuse(self, application_id: str, *, reasons: str, legal_basis: str) -> Application:
        """Refuses an application (its provider), with the reasons and the
        legal basis."""
        return self._decide(
            application_id, {"approve": False, "reasons": reasons, "legal_basis": legal_basis}
        )

    def _decide(self, application_id: str, decision: Mapping[str, Any]) -> Application:
        return Application.from_json(
            self._json("POST", f"/v1/applications/{_seg(application_id)}/decision", json=decision)
        )

    def wait_for_approval(
        self, application_id: str, *, timeout: float | None = None, poll: float = 2.0
    ) -> Agreement:
        """Waits until the provider decides an application; returns the
        agreement an approval created, or raises :class:`SluiceError` when
        it was refused (with the provider's reasons). There is no event
        stream for applications, so this asks every ``poll`` seconds."""
        start = time.monotonic()
        while True:
            app = self.application(application_id)
            if app.state == "approved" and app.agreement:
                return self.agreement(app.agreement)
            if app.state == "refused":
                d = app.decision or {}
                raise SluiceError(
                    f"application {app.id} was refused: {d.get('reasons', '')} (legal basis: {d.get('legal_basis', '')})"
                )
            if timeout is not None and time.monotonic() - start > timeout:
                raise SluiceError(f"application {app.id} is still {app.state} after {timeout:.0f} s")
            time.sleep(poll)

    def agreements(self) -> list[Agreement]:
        """Data-use agreements you are a party to."""
        return [Agreement.from_json(a) for a in self._json("GET", "/v1/agreements")]

    def agreement(self, id: str) -> Agreement:
        return Agreement.from_json(self._json("GET", f"/v1/agreements/{_seg(id)}"))

    # -- jobs -------------------------------------------------------------------------

    def _prepare(self, manifest: ManifestLike, agreement: str | Sequence[str] | None) -> Manifest:
        """The manifest to send: agreements added (as ``--agreement``), and
        a missing purpose filled in from them (they must agree on one)."""
        m = Manifest.of(manifest)
        if agreement:
            m = m.with_agreements([agreement] if isinstance(agreement, str) else agreement)
        if not m.data.get("purpose") and m.agreements:
            purposes = {self.agreement(a).purpose for a in m.agreements}
            if len(purposes) != 1 or None in purposes:
                raise ManifestError(
                    "the manifest states no purpose and its agreements do not state one purpose; give purpose=…"
                )
            m = m.with_purpose(purposes.pop())  # type: ignore[arg-type]
        return m

    def estimate(self, manifest: ManifestLike, *, agreement: str | Sequence[str] | None = None) -> Estimate:
        """Whether a manifest would be accepted, what it would cost exactly
        and how accurate each output would be. Reads no data, spends
        nothing. A rejected manifest is an answer here, not an exception:
        see ``.accepted`` and ``.reasons``."""
        m = self._prepare(manifest, agreement)
        return self._estimate(m)

    def _estimate(self, m: Manifest) -> Estimate:
        return Estimate.from_json(
            self._json(
                "POST",
                "/v1/jobs/estimate",
                content=m.to_toml().encode("utf-8"),
                headers={"content-type": "application/toml"},
            )
        )

    def submit(
        self,
        manifest: ManifestLike,
        *,
        agreement: str | Sequence[str] | None = None,
        wait: bool = True,
        timeout: float | None = None,
        progress: bool | TextIO | None = None,
    ) -> Union[Release, Job]:
        """Submits a job. With ``wait`` (the default), follows it until it
        ends and returns its :class:`~sluice.release.Release`; otherwise
        returns the :class:`~sluice.models.Job` at once.

        ``manifest`` is a :class:`~sluice.manifest.Manifest`, a path to a
        TOML file, TOML text or a dict; ``agreement`` names the agreements
        to run under (like ``--agreement``).

        ``progress`` shows the job's state and the time its outcome is due
        (default: in notebooks and terminals); pass a stream to write it
        there, or False for none.

        Raises :class:`~sluice.errors.QueryRejected` (with every reason),
        :class:`~sluice.errors.BudgetExhausted`,
        :class:`~sluice.errors.ManifestInvalid`, ... when the server
        refuses it, :class:`~sluice.errors.JobFailed` when it ends without
        a release, :class:`~sluice.errors.JobTimeout` after ``timeout``
        seconds.
        """
        m = self._prepare(manifest, agreement)
        try:
            job = Job.from_json(
                self._json(
                    "POST",
                    "/v1/jobs",
                    content=m.to_toml().encode("utf-8"),
                    headers={"content-type": "application/toml"},
                )
            )
        except QueryRejected as e:
            raise self._with_reasons(e, m) from None
        if not wait:
            return job
        job = self.wait(job.id, timeout=timeout, progress=progress, _first=job)
        return self.release(job.id)

    def _with_reasons(self, error: QueryRejected, m: Manifest) -> QueryRejected:
        """The rejection with every reason as a list: the server joins them
        into its message with "; ", which reasons may contain themselves,
        so they are asked for from the estimate (no data read)."""
        reasons: list[str] | None = None
        try:
            estimate = self._estimate(m)
            if not estimate.accepted and estimate.reasons:
                reasons = estimate.reasons
        except ApiError:
            pass
        return QueryRejected(error.message, reasons=reasons, status=error.status, hint=error.hint)

    def sql(
        self,
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
        wait: bool = True,
        timeout: float | None = None,
        progress: bool | TextIO | None = None,
    ) -> Union[Release, Job]:
        """Submits a DP SQL query (docs/dp-sql.md) built from keywords; the
        purpose defaults to the agreement's. See :meth:`submit`."""
        m = Manifest.sql(
            query,
            datasets=datasets,
            epsilon=epsilon,
            agreement=agreement,
            purpose=purpose,
            title=title,
            delta=delta,
            split=split,
            max_rows_per_unit=max_rows_per_unit,
        )
        return self.submit(m, wait=wait, timeout=timeout, progress=progress)

    def job(self, id: str) -> Job:
        return Job.from_json(self._json("GET", f"/v1/jobs/{_seg(id)}"))

    def jobs(self) -> list[Job]:
        """Your jobs."""
        return [Job.from_json(j) for j in self._json("GET", "/v1/jobs")]

    def events(self, id: str) -> Iterator[Job]:
        """The job's views as the server sends them (``GET
        /v1/jobs/{id}/events``): at admission, at each due time, at the end.
        Ends when the job ends or the server closes the stream."""
        try:
            yield from self._events(id, None)
        except httpx.TransportError as e:
            raise SluiceError(f"following job {id}'s events failed: {e}") from None

    def _events(self, id: str, read_timeout: float | None) -> Iterator[Job]:
        timeout = httpx.Timeout(self._timeout, read=read_timeout)
        with self._http.stream("GET", f"/v1/jobs/{_seg(id)}/events", timeout=timeout) as response:
            if not response.is_success:
                response.read()
                try:
                    body: Any = parse_json(response.content)
                except (ValueError, UnicodeError):
                    body = None
                raise error_for(response.status_code, body)
            yield from _server_sent_jobs(response.iter_lines())

    def wait(
        self,
        id: str,
        *,
        timeout: float | None = None,
        progress: bool | TextIO | None = None,
        _first: Job | None = None,
    ) -> Job:
        """Follows a job's event stream until it ends; returns the released
        job, or raises :class:`~sluice.errors.JobFailed` (rejected, failed,
        cancelled) or :class:`~sluice.errors.JobTimeout` after ``timeout``
        seconds. A job awaiting review is waited for too (interrupt to stop
        waiting; the job goes on)."""
        display = _progress(progress)
        start = time.monotonic()
        job = _first or self.job(id)
        try:
            if display:
                display.show(job)
            while not job.is_final:
                left = None if timeout is None else timeout - (time.monotonic() - start)
                if left is not None and left <= 0:
                    raise JobTimeout(job, time.monotonic() - start)
                try:
                    with contextlib.closing(self._events(id, left)) as stream:
                        for job in stream:
                            if display:
                                display.show(job)
                            if job.is_final:
                                break
                except httpx.ReadTimeout:
                    raise JobTimeout(job, time.monotonic() - start) from None
                except httpx.TransportError as e:
                    raise SluiceError(f"following job {id}'s events failed: {e}") from None
                if not job.is_final:
                    # The stream closed early (a restart, an hour passed): ask,
                    # then follow again, not faster than twice a second.
                    time.sleep(0.5)
                    job = self.job(id)
                    if display:
                        display.show(job)
        finally:
            if display:
                display.close()
        if job.state != "released":
            raise JobFailed(job)
        return job

    def release(self, job_id: str) -> Release:
        """A released job's signed release (not yet verified: call
        :meth:`Release.verify`)."""
        return Release(self._json("GET", f"/v1/jobs/{_seg(job_id)}/release"))

    def releases(self) -> list[Release]:
        """The releases of all your released jobs, newest last."""
        return [self.release(j.id) for j in self.jobs() if j.state == "released"]

    # -- audit (any role may checkpoint; the log is the admin's) -----------------------

    def audit_log(self) -> list[dict[str, Any]]:
        """The whole hash-chained audit log (admin); check it with
        :func:`sluice.verify_audit_chain`."""
        return list(self._json("GET", "/v1/audit"))

    def audit_checkpoint(self) -> dict[str, Any]:
        """The log's length and head hash, signed; keep it elsewhere."""
        return dict(self._json("GET", "/v1/audit/checkpoint"))


def _seg(part: str) -> str:
    """One URL path segment, percent-encoded: names and ids are data."""
    from urllib.parse import quote

    return quote(str(part), safe="")


def _progress(progress: bool | TextIO | None) -> Progress | None:
    if progress is None:
        shown = in_notebook() or sys.stderr.isatty()
        return Progress() if shown else None
    if progress is True:
        return Progress()
    if progress is False:
        return None
    return Progress(progress, notebook=False)


def _server_sent_jobs(lines: Iterator[str]) -> Iterator[Job]:
    """Job views from a server-sent event stream: events are separated by
    a blank line; ``data:`` lines are joined with newlines; comments
    (keep-alives) and other events are skipped."""
    name = "message"
    data: list[str] = []
    for line in lines:
        line = line.rstrip("\r\n")
        if line == "":
            if data and name == "job":
                try:
                    yield Job.from_json(parse_json("\n".join(data)))
                except (ValueError, KeyError):
                    raise UnexpectedResponse("a job event that is not a job view", status=200) from None
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
