//! DP SQL jobs end to end: access, rejections, exact charge, signed releases.

use sluice_types::ErrorCode;
use sluice_types::release::Cell;

use crate::{Platform, manifest, pums_csv, pums_descriptor, repo_file, with_pums};

#[tokio::test]
async fn conditional_data_runs_only_under_a_named_agreement() {
    let p = with_pums().await;
    const Q: &str = "SELECT COUNT(*) FROM pums";
    // bob holds no agreement: refused, whatever his manifest says.
    for m in [manifest("pums", Q, 1.0), p.manifest("pums", Q, 1.0)] {
        let err = p.bob.submit_job(&m).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
        assert!(err.to_string().contains("conditional"), "{err}");
    }
    // alice holds one, but a manifest must name it.
    let err = p
        .alice
        .submit_job(&manifest("pums", Q, 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    assert!(
        err.to_string()
            .contains("dataset pums is conditional: the manifest must name the data-use agreement"),
        "{err}"
    );
    // Named, it must be hers, for the manifest's purpose, and exist.
    let other_purpose = p
        .manifest("pums", Q, 1.0)
        .replace("purpose = \"test\"", "purpose = \"something else\"");
    let err = p.alice.submit_job(&other_purpose).await.unwrap_err();
    assert!(err.to_string().contains("purpose differs"), "{err}");
    let unknown = crate::sql_manifest(&crate::under(&["agr_nope"]), "pums", Q, 1.0);
    let err = p.alice.submit_job(&unknown).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("agreement agr_nope does not exist or is not yours"),
        "{err}"
    );
    // An agreement whose period has ended covers nothing today.
    let expired = crate::agreement_for_period(
        &p.alice,
        &p.provider,
        &["pums"],
        10.0,
        ("2020-01-01", "2021-12-31"),
    )
    .await;
    let err = p
        .alice
        .submit_job(&crate::sql_manifest(
            &crate::under(&[&expired]),
            "pums",
            Q,
            1.0,
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "agreement {expired} covers 2020-01-01 to 2021-12-31, not today"
        )),
        "{err}"
    );
    // The provider runs jobs on its own data without one.
    let own = crate::run_job(&p.provider, &manifest("pums", Q, 1.0)).await;
    assert_eq!(own.state, "released", "{:?}", own.message);
    // Nothing refused was charged to alice.
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0");
    let job = crate::run_job(&p.alice, &p.manifest("pums", Q, 1.0)).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
}

#[tokio::test]
async fn rejected_queries_name_the_reason_and_cost_nothing() {
    let p = with_pums().await;
    let cases = [
        ("SELECT * FROM pums", "rows are never released"),
        (
            "SELECT age FROM pums WHERE income > 1000",
            "rows are never released",
        ),
        ("SELECT SUM(pid) FROM pums", "sum"),
        (
            "SELECT race, COUNT(*) FROM pums GROUP BY race, income",
            "GROUP BY income",
        ),
    ];
    for (q, reason) in cases {
        let err = p
            .alice
            .submit_job(&p.manifest("pums", q, 1.0))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::QueryRejected), "{q}: {err}");
        assert!(
            err.to_string().contains(reason),
            "{q}: {err} should mention {reason}"
        );
    }
    // SUM over a column without declared bounds: a dataset whose income has none.
    let mut d = pums_descriptor("pums_nobounds", "conditional");
    let income = d
        .schema
        .columns
        .iter_mut()
        .find(|c| c.name == "income")
        .unwrap();
    income.lower = None;
    income.upper = None;
    p.provider.create_dataset(&d).await.unwrap();
    p.provider
        .upload_version("pums_nobounds", pums_csv())
        .await
        .unwrap();
    let nobounds = crate::agreement(&p.alice, &p.provider, &["pums_nobounds"], 10.0).await;
    let err = p
        .alice
        .submit_job(&crate::sql_manifest(
            &crate::under(&[&nobounds]),
            "pums_nobounds",
            "SELECT SUM(income) FROM pums_nobounds",
            1.0,
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("column \"income\" has no declared bounds"),
        "{err}"
    );

    let b = p.alice.budget("pums").await.unwrap();
    assert_eq!(b.user_spent, "0");
}

#[tokio::test]
async fn released_job_is_signed_charged_exactly_and_covers_the_truth() {
    let p = with_pums().await;
    let text = std::fs::read_to_string(repo_file("examples/jobs/income_by_sex.toml")).unwrap();
    let job = crate::run_job(&p.alice, &p.adopt(&text)).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let release = p.alice.release(&job.id).await.unwrap();
    let key = p.alice.public_key().await.unwrap();
    let body =
        sluice_crypto::verify_release(&release.envelope, &hex_decode(&key.public_key_hex)).unwrap();
    assert_eq!(body, release.body);
    assert_eq!(body.epsilon_spent.to_string(), "1");
    assert_eq!(body.datasets[0].name, "pums");
    assert!(body.datasets[0].citation.contains("US Census Bureau"));
    // Per-column epsilon shares add up to what was charged (count(*), sum, count(income)).
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "1");

    // Rows: sex 0 and 1 in key order, each with a CI.
    assert_eq!(body.outputs.rows.len(), 2);
    let csv = String::from_utf8(pums_csv()).unwrap();
    for (i, sex) in [0, 1].into_iter().enumerate() {
        let row = &body.outputs.rows[i];
        assert_eq!(row[0], Cell::Key(serde_json::json!(sex)));
        let n = csv
            .lines()
            .skip(1)
            .filter(|l| l.split(',').nth(1) == Some(&sex.to_string()))
            .count() as f64;
        let Cell::Noisy { value, ci95 } = &row[1] else {
            panic!("count is noisy")
        };
        // The CI is valid with 95% probability; a 20-sigma miss means a bug.
        assert!(
            (value - n).abs() < 100.0 && ci95[0] < *value && *value < ci95[1],
            "{value} {ci95:?} vs {n}"
        );
    }

    // A second user cannot see alice's job or release.
    assert_eq!(
        p.bob.job(&job.id).await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        p.bob.release(&job.id).await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn budget_is_reserved_before_running_and_never_overspent() {
    let p = with_pums().await;
    // alice has 10 on pums: 9 then 2 → the second is refused and nothing is charged for it.
    crate::run_job(
        &p.alice,
        &p.manifest("pums", "SELECT COUNT(*) FROM pums", 9.0),
    )
    .await;
    let err = p
        .alice
        .submit_job(&p.manifest("pums", "SELECT COUNT(*) FROM pums", 2.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BudgetExhausted), "{err}");
    let b = p.alice.budget("pums").await.unwrap();
    assert_eq!(
        (b.user_spent.as_str(), b.user_remaining.as_str()),
        ("9", "1")
    );
    // The estimate says so beforehand, and spends nothing either.
    let e = p
        .alice
        .estimate_job(&p.manifest("pums", "SELECT COUNT(*) FROM pums", 2.0))
        .await
        .unwrap();
    assert!(!e.accepted);
    assert_eq!(
        e.reasons,
        ["epsilon 2 exceeds your remaining budget on dataset pums"]
    );
    let e = p
        .alice
        .estimate_job(&p.manifest("pums", "SELECT COUNT(*) FROM pums", 1.0))
        .await
        .unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
}

#[tokio::test]
async fn bad_tokens_and_bad_manifests_are_refused() {
    let p = with_pums().await;
    let anon = p.alice.with_token("slc_not_a_real_token");
    assert_eq!(
        anon.jobs().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );
    let err = p
        .alice
        .submit_job("version = 1\ntitle = 3")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ManifestInvalid));
    let bad_eps = p
        .manifest("pums", "SELECT COUNT(*) FROM pums", 1.0)
        .replace("epsilon = 1.0", "epsilon = -1.0");
    let err = p.alice.submit_job(&bad_eps).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("epsilon must be a positive finite number"),
        "{err}"
    );
    let err = p
        .alice
        .create_user("mallory", sluice_types::Role::Admin)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
}

#[test]
fn demo_prints_dp_income_by_sex_and_by_educ() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "Income by sex",
        "Income by education level",
        "mean_income",
        "95% confidence",
        "epsilon spent: 1",
        "signature verified",
        "a WASM job",
        "reviewers see: WASM module sha256",
        "persons_65_plus",
        "joint modeling",
        "reviewers see: train Logistic regression",
        "held-out accuracy",
        "budget on pums: granted 10, spent 5, remaining 5",
        "budget on household: granted 10, spent 2, remaining 8",
        // Both agreements' budgets were charged too: pums's 5 all used.
        "(pums): budget 5, spent 5, remaining 0",
        "(household): budget 5, spent 2, remaining 3",
    ] {
        assert!(
            stdout.contains(needle),
            "demo output lacks {needle:?}:\n{stdout}"
        );
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn estimate_matches_the_charge_and_the_released_intervals_exactly() {
    let p = with_pums().await;
    let m = p.manifest(
        "pums",
        "SELECT educ, COUNT(*) AS n, SUM(income) AS s, AVG(age) AS a FROM pums WHERE age > 20 GROUP BY educ",
        0.7,
    );
    let e = p.alice.estimate_job(&m).await.unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
    let est = e.estimate.unwrap();
    assert_eq!(est.rows, 16);
    // Nothing was spent or recorded by the estimate.
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0");
    assert!(p.alice.jobs().await.unwrap().is_empty());

    let job = crate::run_job(&p.alice, &m).await;
    let body = p.alice.release(&job.id).await.unwrap().body;
    assert_eq!(body.epsilon_spent, est.epsilon);
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0.7");
    for (i, col) in est.columns.iter().enumerate() {
        assert_eq!(body.outputs.columns[i].epsilon, col.epsilon, "{}", col.name);
        if let Some(h) = col.ci95_halfwidth {
            for row in &body.outputs.rows {
                let Cell::Noisy { value, ci95 } = &row[i] else {
                    panic!("noisy cell")
                };
                assert!(
                    (value - ci95[0] - h).abs() < 1e-6 && (ci95[1] - value - h).abs() < 1e-6,
                    "{}",
                    col.name
                );
            }
        }
    }
    let shares: u64 = est
        .columns
        .iter()
        .filter_map(|c| c.epsilon)
        .map(|e| e.units())
        .sum();
    // n and s have one measurement each; a (AVG) has two: four shares in all.
    assert_eq!(shares, est.epsilon.units());

    // A rejected estimate lists every reason and spends nothing.
    let bad = p
        .alice
        .estimate_job(&p.manifest(
            "pums",
            "SELECT income, bit_and(income), SUM(income / (sex - 1)) FROM pums GROUP BY income",
            1.0,
        ))
        .await
        .unwrap();
    assert!(!bad.accepted);
    assert_eq!(bad.reasons.len(), 3, "{:?}", bad.reasons);
}

const TAX: &str = r#"
[dataset]
name = "tax"
title = "Tax payments"
provider = "City tax office"
open_category = "conditional"
format = "csv"
update_frequency = "yearly"
user_epsilon = 2000.0
epsilon_cap = 5000.0

[schema]
max_rows_per_unit = 2
id_space = "person"

[[schema.columns]]
name = "pid"
role = "privacy_unit"
type = "int"

[[schema.columns]]
name = "paid"
type = "int"
lower = 0
upper = 1000
"#;

#[tokio::test]
async fn datasets_of_two_providers_join_on_the_pseudonymised_person() {
    let p = Platform::start().await;
    let mut pums = pums_descriptor("pums", "conditional");
    pums.dataset.user_epsilon = 2000.0;
    pums.dataset.epsilon_cap = 5000.0;
    p.provider.create_dataset(&pums).await.unwrap();
    p.provider.upload_version("pums", pums_csv()).await.unwrap();
    let pums_agreement = crate::agreement(&p.alice, &p.provider, &["pums"], 1000.0).await;
    let tax_office = p.admin.with_token(
        p.admin
            .create_user("tax_office", sluice_types::Role::Provider)
            .await
            .unwrap()
            .token,
    );
    tax_office
        .create_dataset(&crate::descriptor(TAX))
        .await
        .unwrap();
    // Tax rows for two persons in three; a second row for every fifth; ids beyond PUMS too.
    let mut csv = String::from("pid,paid\n");
    let mut paid_of = std::collections::HashMap::<i64, Vec<i64>>::new();
    for pid in 1..=1200i64 {
        if pid % 3 == 0 {
            continue;
        }
        let rows = if pid % 5 == 0 { 2 } else { 1 };
        for r in 0..rows {
            let paid = (pid * 37 + r * 11) % 900;
            csv.push_str(&format!("{pid},{paid}\n"));
            paid_of.entry(pid).or_default().push(paid);
        }
    }
    tax_office
        .upload_version("tax", csv.into_bytes())
        .await
        .unwrap();
    let tax_agreement = crate::agreement(&p.alice, &tax_office, &["tax"], 1000.0).await;

    // Truth: PUMS rows (one per pid) joined with tax rows, by sex.
    let text = String::from_utf8(pums_csv()).unwrap();
    let mut truth = [(0.0, 0.0); 2];
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (sex, pid): (usize, i64) = (f[1].parse().unwrap(), f[6].parse().unwrap());
        for paid in paid_of.get(&pid).into_iter().flatten() {
            truth[sex].0 += 1.0;
            truth[sex].1 += *paid as f64;
        }
    }
    let q = "SELECT p.sex, COUNT(*) AS n, SUM(t.paid) AS paid FROM pums p JOIN tax t ON p.pid = t.pid GROUP BY p.sex";
    // One agreement per provider; a job under them is charged against each.
    let header = crate::under(&[&pums_agreement, &tax_agreement]);
    let only_pums = crate::sql_manifest(&crate::under(&[&pums_agreement]), "pums\", \"tax", q, 1.0);
    let err = p.alice.estimate_job(&only_pums).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no agreement the manifest names covers dataset tax"),
        "{err}"
    );
    let m = crate::sql_manifest(&header, "pums\", \"tax", q, 1000.0);
    let e = p.alice.estimate_job(&m).await.unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
    assert!(e.plan.unwrap().contains("contribution bound: 2 row(s)"));
    // A job may lower a dataset's bound (less noise), never raise it.
    let lowered = p
        .alice
        .estimate_job(&format!("{m}max_rows_per_unit = {{ tax = 1 }}\n"))
        .await
        .unwrap();
    let plan = lowered.plan.unwrap();
    assert!(
        plan.contains("contribution bound: 1 row(s) per privacy unit (enforced in the plan)"),
        "{plan}"
    );
    for (extra, reason) in [
        ("max_rows_per_unit = { tax = 3 }", "a job may only lower it"),
        (
            "max_rows_per_unit = { other = 1 }",
            "not a dataset of this job",
        ),
        ("max_rows_per_unit = { tax = 0 }", "must be at least 1"),
    ] {
        let err = p
            .alice
            .estimate_job(&format!("{m}{extra}\n"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::ManifestInvalid), "{extra}");
        assert!(err.to_string().contains(reason), "{extra}: {err}");
    }
    let job = crate::run_job(&p.alice, &m).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let body = p.alice.release(&job.id).await.unwrap().body;
    assert_eq!(
        body.datasets
            .iter()
            .map(|d| d.provider.as_str())
            .collect::<Vec<_>>(),
        ["US Census Bureau (sample)", "City tax office"]
    );
    for (sex, (n, paid)) in truth.iter().enumerate() {
        let Cell::Noisy { value, .. } = body.outputs.rows[sex][1] else {
            panic!()
        };
        assert!((value - n).abs() <= 1.0, "sex {sex}: count {value} vs {n}");
        let Cell::Noisy { value, .. } = body.outputs.rows[sex][2] else {
            panic!()
        };
        assert!(
            (value - paid).abs() <= 50.0,
            "sex {sex}: paid {value} vs {paid}"
        );
    }
    // Both datasets and both agreements were charged the job's epsilon.
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "1000");
    assert_eq!(p.alice.budget("tax").await.unwrap().user_spent, "1000");
    for a in [&pums_agreement, &tax_agreement] {
        let a = p.alice.agreement(a).await.unwrap();
        assert_eq!(
            (a.epsilon_spent.as_str(), a.epsilon_remaining.as_str()),
            ("1000", "0")
        );
    }
    // Without the tax office's agreement, bob cannot join its data.
    let bobs = crate::agreement(&p.bob, &p.provider, &["pums"], 10.0).await;
    let err = p
        .bob
        .submit_job(&crate::sql_manifest(
            &crate::under(&[&bobs]),
            "pums\", \"tax",
            q,
            1.0,
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("dataset tax is conditional"),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifest_can_weight_the_budget_split() {
    let p = with_pums().await;
    let m = p
        .manifest(
            "pums",
            "SELECT COUNT(*) AS n, SUM(income) AS s FROM pums",
            1.0,
        )
        .replace(
            "epsilon = 1.0",
            "epsilon = 1.0\nsplit = { \"count(*)\" = 3 }",
        );
    let e = p.alice.estimate_job(&m).await.unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
    let eps: Vec<String> = e
        .estimate
        .unwrap()
        .columns
        .iter()
        .map(|c| c.epsilon.unwrap().to_string())
        .collect();
    assert_eq!(eps, ["0.75", "0.25"]);
    let bad = m.replace("\"count(*)\" = 3", "\"count(*)\" = -1");
    let err = p.alice.estimate_job(&bad).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("privacy.split.\"count(*)\" must be a positive weight"),
        "{err}"
    );
}

#[tokio::test]
async fn bounding_is_skipped_only_when_ingest_verified_the_row_bound() {
    let p = with_pums().await;
    let e = p
        .alice
        .estimate_job(&p.manifest("pums", "SELECT COUNT(*) FROM pums", 1.0))
        .await
        .unwrap();
    assert!(
        e.plan
            .unwrap()
            .contains("1 row(s) per privacy unit (verified at ingest)")
    );
    // The duplicated sample has persons with two rows against a declared bound of 1.
    p.provider
        .create_dataset(&pums_descriptor("dup", "conditional"))
        .await
        .unwrap();
    let added = p
        .provider
        .upload_version(
            "dup",
            std::fs::read(crate::repo_file("examples/data/PUMS_dup.csv")).unwrap(),
        )
        .await
        .unwrap();
    assert!(added.report.units_over_max_rows > 0);
    let dup = crate::sql_manifest(
        &crate::under(&[&crate::agreement(&p.alice, &p.provider, &["dup"], 10.0).await]),
        "dup",
        "SELECT COUNT(*) FROM dup",
        1.0,
    );
    let e = p.alice.estimate_job(&dup).await.unwrap();
    assert!(
        e.plan
            .unwrap()
            .contains("1 row(s) per privacy unit (enforced in the plan)")
    );
    // Each person counts once: the released count is near the number of distinct persons.
    let job = crate::run_job(&p.alice, &dup).await;
    let body = p.alice.release(&job.id).await.unwrap().body;
    let text = std::fs::read_to_string(crate::repo_file("examples/data/PUMS_dup.csv")).unwrap();
    let persons: std::collections::HashSet<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(6))
        .filter(|p| !p.is_empty())
        .collect();
    let Cell::Noisy { value, ci95 } = body.outputs.rows[0][0] else {
        panic!()
    };
    assert!(
        // A zero-width interval would make "4 half-widths" mean "exact".
        (value - persons.len() as f64).abs() <= 4.0 * (ci95[1] - value).max(1.0),
        "{value} vs {} persons",
        persons.len()
    );
}

#[tokio::test]
async fn keys_selected_from_the_data_cost_exactly_the_delta_asked() {
    let p = with_pums().await;
    // income's bounds give 500,001 values, too many for a public domain.
    let query = "SELECT income, COUNT(*) AS n FROM pums GROUP BY income";
    // Without delta: rejected with the reason, nothing charged.
    let err = p
        .alice
        .submit_job(&p.manifest("pums", query, 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QueryRejected));
    assert!(err.to_string().contains("privacy.delta"), "{err}");

    let text = format!("{}delta = 1e-6\n", p.manifest("pums", query, 1.0));
    let estimate = p.alice.estimate_job(&text).await.unwrap();
    let est = estimate.estimate.unwrap();
    let threshold = est.key_threshold.unwrap();
    assert_eq!(est.delta.to_string(), "0.000001");

    let job = crate::run_job(&p.alice, &text).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let body = p.alice.release(&job.id).await.unwrap().body;
    assert_eq!(body.delta_spent.to_string(), "0.000001");
    assert_eq!(body.epsilon_spent.to_string(), "1");
    assert!(
        body.outputs
            .mechanism
            .contains(&format!("exceeds {threshold}"))
    );
    // Released incomes are in key order and every released count is above the threshold.
    let mut last = -1;
    for row in &body.outputs.rows {
        let Cell::Key(income) = &row[0] else { panic!() };
        let income = income.as_i64().unwrap();
        assert!(income > last);
        last = income;
        let Cell::Noisy { value, .. } = &row[1] else {
            panic!()
        };
        assert!(*value > threshold as f64);
    }
    let budget = p.alice.budget("pums").await.unwrap();
    assert_eq!(budget.user_spent, "1");
    assert_eq!(budget.user_delta_spent, "0.000001");
}

/// A job's server-sent events show its states in order and end with the
/// final one; another user cannot follow it.
#[tokio::test]
async fn job_events_stream_each_state_until_the_job_ends() {
    let p = with_pums().await;
    let m = p.manifest(
        "pums",
        "SELECT sex, COUNT(*) AS n FROM pums GROUP BY sex",
        0.5,
    );
    let job = p.alice.submit_job(&m).await.unwrap();
    let mut seen = Vec::new();
    let last = p
        .alice
        .watch_job(&job.id, |v| {
            seen.push(v.state);
            true
        })
        .await
        .unwrap();
    assert_eq!(last.state, "released", "{seen:?}");
    assert_eq!(seen.last(), Some(&sluice_types::JobState::Released));
    // Each event is a change: no state repeats back to back.
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    let err = p.bob.watch_job(&job.id, |_| true).await.unwrap_err();
    assert_eq!(err.code(), Some(sluice_types::ErrorCode::NotFound), "{err}");
}

/// Every job spends at least the least ε (0.001 by default, more where the
/// agreement says so): the estimate states it and the expected schedule,
/// and a job below it is refused before anything is reserved or read.
#[tokio::test]
async fn a_job_below_the_least_epsilon_is_refused_and_the_estimate_says_so() {
    let p = with_pums().await;
    let query = "SELECT COUNT(*) FROM pums";
    let e = p
        .alice
        .estimate_job(&p.manifest("pums", query, 0.5))
        .await
        .unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
    assert_eq!(e.minimum_epsilon.as_deref(), Some("0.001"));
    let expected = e.expected_seconds.unwrap();
    assert!(expected > 0.0 && expected < 120.0, "{expected}");

    let tiny = p.manifest("pums", query, 0.0005);
    let e = p.alice.estimate_job(&tiny).await.unwrap();
    assert!(!e.accepted);
    assert!(
        e.reasons
            .iter()
            .any(|r| r.contains("below the least a job may spend, 0.001")),
        "{:?}",
        e.reasons
    );
    let err = p.alice.submit_job(&tiny).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ManifestInvalid), "{err}");
    assert!(err.to_string().contains("0.001"), "{err}");
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0");
    let jobs = p.alice.jobs().await.unwrap();
    assert!(jobs.iter().all(|j| j.state == "rejected"), "{jobs:?}");
}
