"""A researcher's work against a real server: search, apply, estimate,
submit, DataFrames, verification, and every refusal as its exception."""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Callable

import pytest

import sluice
from conftest import APPLICATION, PURPOSE, TERMS, Researcher, Server


def test_search_apply_estimate_submit_and_the_count_is_inside_its_interval(
    admin: sluice.Client, provider: sluice.Client, server: Server
) -> None:
    client = admin.with_token(admin.create_user("flow-researcher", "user").token)

    found = client.datasets("income")
    assert [d.name for d in found] == ["pums"]
    assert client.datasets(open_category="unconditional") == []
    pums = client.dataset("pums")
    assert pums.open_category == "conditional" and pums.latest_version is not None
    preview = client.preview("pums", limit=5)
    assert preview.attrs["synthetic"] is True and len(preview) == 5
    assert {"age", "sex", "income"} <= set(preview.columns)

    application = client.apply(APPLICATION)
    assert application.state == "submitted" and application.agreement is None
    assert application.id in [a.id for a in provider.applications()]
    provider.approve(application.id, TERMS, epsilon=30.0)
    agreement = client.wait_for_approval(application.id, timeout=30, poll=0.2)
    assert agreement.purpose == PURPOSE and agreement.epsilon == 30.0
    assert agreement.content_matches_hash()
    assert [a.id for a in client.agreements()] == [agreement.id]

    # ε 20: the 95% interval of a count is then [v, v] and misses the true
    # count with probability 2e^-20/(1+e^-20) < 1e-8, so this cannot flake.
    m = sluice.Manifest.sql(
        "SELECT COUNT(*) AS people FROM pums", datasets=["pums"], epsilon=20.0, agreement=agreement.id
    )
    estimate = client.estimate(m)
    assert estimate.accepted and estimate.reasons == []
    assert estimate.epsilon == 20.0 and estimate.expected_seconds and estimate.expected_seconds > 0
    assert estimate.manifest_digest == client._prepare(m, None).digest()

    progress = io.StringIO()
    release = client.submit(m, progress=progress)
    assert isinstance(release, sluice.Release)
    release.verify(server.public_key_hex, manifest=client._prepare(m, None))
    frame = release.to_pandas()
    assert list(frame.columns) == ["people", "people_lower", "people_upper"]
    assert frame.people_lower[0] <= 1000 <= frame.people_upper[0]
    assert frame.people_upper[0] - frame.people_lower[0] == 2 * estimate.columns[0]["ci95_halfwidth"]
    assert release.epsilon == 20.0 and frame.attrs["epsilon"] == 20.0
    assert pums.title in release.citation and pums.provider in release.citation

    # The progress shows the job's state and its due time, line by line
    # (not a terminal), ending released.
    lines = progress.getvalue().splitlines()
    assert any("running; outcome due at" in line for line in lines), lines
    assert lines[-1] == f"job {release.job_id}: released"

    budget = client.budget("pums")
    assert budget.spent == 20.0 and budget.remaining == budget.granted - 20.0
    jobs = client.jobs()
    assert [(j.id, j.state) for j in jobs] == [(release.job_id, "released")]
    assert jobs[0].due_at is not None
    assert [r.job_id for r in client.releases()] == [release.job_id]


def _verified_release(alice: Researcher, server: Server, sql: str, epsilon: float) -> sluice.Release:
    """Runs `sql` on the sample under alice's agreement; the release verifies."""
    release = alice.client.sql(
        sql, datasets=["pums"], epsilon=epsilon, agreement=alice.agreement, progress=False,
    )
    release.verify(server.public_key_hex)
    return release


def test_a_grouped_query_becomes_a_frame_with_an_interval_per_cell(alice: Researcher, server: Server) -> None:
    release = _verified_release(
        alice, server, "SELECT sex, COUNT(*) AS people, SUM(income) AS total FROM pums GROUP BY sex", 0.5,
    )
    frame = release.to_pandas()
    assert list(frame.columns) == [
        "sex", "people", "people_lower", "people_upper", "total", "total_lower", "total_upper",
    ]
    assert sorted(frame.sex) == [0, 1]
    for col in ("people", "total"):
        assert (frame[f"{col}_lower"] <= frame[col]).all() and (frame[col] <= frame[f"{col}_upper"]).all()
    table = release.to_arrow()
    assert table.column_names == list(frame.columns)
    assert table.schema.metadata[b"sluice.job_id"].decode() == release.job_id
    assert float(table.schema.metadata[b"sluice.epsilon"]) == 0.5
    assert table.column("people").to_pylist() == frame.people.tolist()


def test_a_label_computed_from_a_released_count_is_a_plain_column(alice: Researcher, server: Server) -> None:
    release = _verified_release(
        alice, server,
        "SELECT sex, CASE WHEN COUNT(*) > -1000000 THEN 'some' ELSE 'none' END AS size FROM pums GROUP BY sex",
        0.1,
    )
    frame = release.to_pandas()
    assert list(frame.columns) == ["sex", "size"]
    assert frame["size"].tolist() == ["some", "some"]


def test_the_notebook_display_escapes_what_it_shows(alice: Researcher, server: Server) -> None:
    title = '<script>alert("x")</script> & co'
    release = alice.client.sql(
        "SELECT COUNT(*) AS n FROM pums", datasets=["pums"], epsilon=0.2,
        agreement=alice.agreement, title=title, progress=False,
    )
    shown = release._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in shown
    assert "not verified" in shown
    release.verify(server.public_key_hex)
    shown = release._repr_html_()
    assert "signature verified" in shown and "ε spent 0.2" in shown
    assert "PUMS census microdata sample" in shown and "95% interval" in shown
    assert "[" in shown  # each noisy value shows its interval


def test_a_refused_query_raises_query_rejected_with_every_reason(alice: Researcher) -> None:
    query = "SELECT age, income FROM pums"
    estimate = alice.client.estimate(
        sluice.Manifest.sql(query, datasets=["pums"], epsilon=0.5, agreement=alice.agreement)
    )
    assert not estimate.accepted and estimate.reasons
    with pytest.raises(sluice.QueryRejected) as refused:
        alice.client.sql(query, datasets=["pums"], epsilon=0.5, agreement=alice.agreement, progress=False)
    e = refused.value
    assert e.status == 422 and e.code == "query_rejected"
    assert e.reasons == estimate.reasons
    # Every reason is in the server's message too.
    assert all(r in e.message for r in e.reasons)
    # A rejection from the schema alone spends nothing.
    assert alice.client.budget("pums").spent == pytest.approx(
        sum(j.epsilon for j in alice.client.jobs() if j.state == "released")
    )


def test_several_reasons_are_each_listed(alice: Researcher) -> None:
    # Two reasons: pid is an identifier; income has no public domain (and
    # no δ for selecting its keys).
    query = "SELECT pid, income, SUM(income) AS s FROM pums GROUP BY pid, income"
    with pytest.raises(sluice.QueryRejected) as refused:
        alice.client.sql(query, datasets=["pums"], epsilon=0.5, agreement=alice.agreement, progress=False)
    assert len(refused.value.reasons) >= 2, refused.value.reasons
    assert any("GROUP BY pid" in r for r in refused.value.reasons)
    assert any("GROUP BY income" in r for r in refused.value.reasons)
    assert all(r in refused.value.message for r in refused.value.reasons)


def test_budget_exhaustion_raises_budget_exhausted(new_researcher: Callable[..., Researcher]) -> None:
    bob = new_researcher(epsilon=1.0)
    first = bob.client.sql(
        "SELECT COUNT(*) AS n FROM pums", datasets=["pums"], epsilon=0.6, agreement=bob.agreement, progress=False
    )
    assert first.epsilon == 0.6
    with pytest.raises(sluice.BudgetExhausted) as exhausted:
        bob.client.sql(
            "SELECT SUM(income) AS s FROM pums", datasets=["pums"], epsilon=0.6,
            agreement=bob.agreement, progress=False,
        )
    assert exhausted.value.status == 402 and bob.agreement in exhausted.value.message
    assert bob.client.agreement(bob.agreement).epsilon_remaining == pytest.approx(0.4)


def test_a_tampered_release_fails_verification(alice: Researcher, server: Server) -> None:
    release = alice.client.sql(
        "SELECT AVG(age) AS mean_age FROM pums", datasets=["pums"], epsilon=0.3,
        agreement=alice.agreement, progress=False,
    )
    release.verify(server.public_key_hex)
    original = {"envelope": release.envelope, "body": release.body}

    # A changed value in the signed payload.
    payload = base64.b64decode(release.envelope["payload"]).decode()
    value = release.rows[0][0]["value"]
    changed = payload.replace(sluice.canonical_json(value).decode(), sluice.canonical_json(value + 1.0).decode(), 1)
    assert changed != payload
    tampered = json.loads(json.dumps(original))
    tampered["envelope"]["payload"] = base64.b64encode(changed.encode()).decode()
    with pytest.raises(sluice.VerificationError, match="signature does not verify"):
        sluice.Release(tampered).verify(server.public_key_hex)

    # The API's convenience body is never what is shown or verified.
    decoy = json.loads(json.dumps(original))
    decoy["body"]["outputs"]["rows"][0][0]["value"] = 1e9
    shown = sluice.Release(decoy)
    assert shown.rows == release.rows
    shown.verify(server.public_key_hex)

    # Another key, another payload type, a dropped signature.
    with pytest.raises(sluice.VerificationError, match="no signature by key"):
        release.verify("00" * 32)
    other_type = json.loads(json.dumps(original))
    other_type["envelope"]["payloadType"] = "application/json"
    with pytest.raises(sluice.VerificationError, match="unexpected payload type"):
        sluice.Release(other_type).verify(server.public_key_hex)
    unsigned = json.loads(json.dumps(original))
    unsigned["envelope"]["signatures"] = []
    with pytest.raises(sluice.VerificationError, match="no signature by key"):
        sluice.Release(unsigned).verify(server.public_key_hex)
    # A release of another manifest.
    other = sluice.Manifest.sql("SELECT 1", datasets=["pums"], epsilon=0.3, purpose=PURPOSE)
    with pytest.raises(sluice.VerificationError, match="answers manifest"):
        release.verify(server.public_key_hex, manifest=other)


def test_the_server_key_is_the_key_on_disk(alice: Researcher, server: Server) -> None:
    key = alice.client.public_key()
    assert key.public_key_hex == server.public_key_hex
    assert key.key_id == sluice.key_id_of(bytes.fromhex(server.public_key_hex))


def test_a_wasm_job_from_a_toml_file_with_its_module_path(alice: Researcher, server: Server) -> None:
    from conftest import REPO

    release = alice.client.submit(
        REPO / "examples" / "jobs" / "older_share.toml", agreement=alice.agreement, progress=False
    )
    release.verify(server.public_key_hex)
    frame = release.to_pandas()
    assert list(frame.columns) == [
        "total_income", "total_income_lower", "total_income_upper",
        "persons_65_plus", "persons_65_plus_lower", "persons_65_plus_upper",
    ]
    assert not math.isnan(frame.persons_65_plus[0])


@pytest.mark.parametrize(
    "call,error",
    [
        (lambda c: c.dataset("absent"), sluice.NotFound),
        (lambda c: c.job("job_0"), sluice.NotFound),
        (lambda c: c.create_dataset({"dataset": {}, "schema": {}}), sluice.Forbidden),
        (lambda c: c.with_token("slc_bogus").me(), sluice.Unauthenticated),
        (lambda c: c.apply(title="incomplete"), sluice.BadRequest),
        (
            lambda c: c.submit(
                sluice.Manifest.sql("SELECT COUNT(*) FROM pums", datasets=["pums"], epsilon=-1.0, purpose="p"),
                progress=False,
            ),
            sluice.ManifestInvalid,
        ),
    ],
    ids=["dataset", "job", "role", "token", "application", "manifest"],
)
def test_each_error_code_raises_its_exception(alice: Researcher, call, error: type[sluice.ApiError]) -> None:
    with pytest.raises(error) as raised:
        call(alice.client)
    assert raised.value.code == error.code and raised.value.message


def test_a_second_decision_conflicts(new_researcher: Callable[..., Researcher], provider: sluice.Client) -> None:
    carol = new_researcher()
    decided = carol.client.applications()[0]
    with pytest.raises(sluice.Conflict):
        provider.refuse(decided.id, reasons="again", legal_basis="none")


def test_every_documented_error_code_has_its_exception_with_its_status() -> None:
    # docs/api.md's table is checked against the Rust ErrorCode table by the
    # Rust tests; this checks the client against the same table.
    import re

    from conftest import REPO
    from sluice.errors import _BY_CODE

    documented = {
        code: int(status)
        for code, status in re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", (REPO / "docs" / "api.md").read_text(), re.M)
    }
    assert len(documented) >= 14
    assert set(_BY_CODE) == set(documented)
    for code, status in documented.items():
        raised = sluice.errors.error_for(status, {"code": code, "message": "m"})
        assert type(raised) is _BY_CODE[code] and raised.status == status
