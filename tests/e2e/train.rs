//! Training jobs end to end: features from one provider, the label from
//! another, joined on the pseudonymised person inside the sandbox; only the
//! DP model and its DP evaluation come back, signed and charged (ε and δ)
//! exactly as estimated.

use sluice_testkit::Lcg;
use sluice_types::ErrorCode;
use sluice_types::release::Cell;

use crate::{Platform, descriptor};

const FEATURES: &str = r#"
[dataset]
name = "visits"
title = "Clinic visits"
provider = "City clinics"
open_category = "conditional"
format = "csv"
update_frequency = "yearly"
user_epsilon = 100.0
epsilon_cap = 1000.0

[schema]
max_rows_per_unit = 3
id_space = "person"

[[schema.columns]]
name = "pid"
role = "privacy_unit"
type = "int"

[[schema.columns]]
name = "age"
type = "int"
lower = 0
upper = 100

[[schema.columns]]
name = "visits"
type = "int"
lower = 0
upper = 50

[[schema.columns]]
name = "district"
type = "text"
"#;

const OUTCOMES: &str = r#"
[dataset]
name = "claims"
title = "Benefit claims"
provider = "Social agency"
open_category = "conditional"
format = "csv"
update_frequency = "yearly"
user_epsilon = 100.0
epsilon_cap = 1000.0

[schema]
max_rows_per_unit = 1
id_space = "person"

[[schema.columns]]
name = "pid"
role = "privacy_unit"
type = "int"

[[schema.columns]]
name = "claimed"
type = "int"
domain = [0, 1]
"#;

/// 4,000 people; claims follow a logistic model that rises with visits and
/// falls with age. Every seventh person has a second visits row; every
/// eleventh has no claims row (the join drops them).
async fn two_providers() -> Platform {
    let mut p = Platform::start().await;
    let agency = p.admin.with_token(
        p.admin
            .create_user("social_agency", sluice_types::Role::Provider)
            .await
            .unwrap()
            .token,
    );
    p.provider
        .create_dataset(&descriptor(FEATURES))
        .await
        .unwrap();
    agency.create_dataset(&descriptor(OUTCOMES)).await.unwrap();
    let mut rng = Lcg::new(7);
    let (mut visits, mut claims) = (
        String::from("pid,age,visits,district\n"),
        String::from("pid,claimed\n"),
    );
    for pid in 1..=4000 {
        let age = (18.0 + rng.unit() * 70.0).floor();
        let v = (rng.unit() * 20.0).floor();
        let logit = -1.0 + 0.25 * v - 0.04 * (age - 50.0);
        let claimed = u8::from(rng.unit() < 1.0 / (1.0 + (-logit).exp()));
        visits.push_str(&format!("{pid},{age},{v},north\n"));
        if pid % 7 == 0 {
            visits.push_str(&format!("{pid},{age},{v},south\n"));
        }
        if pid % 11 != 0 {
            claims.push_str(&format!("{pid},{claimed}\n"));
        }
    }
    p.provider
        .upload_version("visits", visits.into_bytes())
        .await
        .unwrap();
    agency
        .upload_version("claims", claims.into_bytes())
        .await
        .unwrap();
    p.agreements = vec![
        crate::agreement(&p.alice, &p.provider, &["visits"], 1000.0).await,
        crate::agreement(&p.alice, &agency, &["claims"], 1000.0).await,
    ];
    p
}

fn train_manifest(header: &str, query: &str, label: &str, privacy: &str) -> String {
    format!(
        r#"version = 1
title = "claims model"
{header}
datasets = ["visits", "claims"]

[job]
kind = "train"
model = "logistic"
query = "{query}"
label = "{label}"

[job.hyper]
epochs = 40

[privacy]
{privacy}
"#
    )
}

const JOIN: &str = "SELECT v.age, v.visits, c.claimed FROM visits v JOIN claims c ON v.pid = c.pid WHERE v.age >= 18";

#[tokio::test]
async fn a_model_trained_across_two_providers_is_released_signed_and_charged_exactly() {
    let p = two_providers().await;
    let m = train_manifest(&p.header(), JOIN, "claimed", "epsilon = 8.0\ndelta = 1e-6");
    let e = p.alice.estimate_job(&m).await.unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
    let plan = e.plan.unwrap();
    for needle in [
        "age [0, 100]",
        "visits [0, 50]",
        "label claimed [0, 1]",
        "visits joined with claims",
        "clipped to norm 1",
        "epsilon 8 at delta 0.000001",
    ] {
        assert!(plan.contains(needle), "plan lacks {needle}: {plan}");
    }
    let estimate = e.estimate.unwrap();
    assert_eq!(estimate.epsilon.to_string(), "8");
    assert_eq!(estimate.delta.to_string(), "0.000001");
    assert_eq!(
        estimate.rows, 4,
        "intercept, two coefficients, the evaluation"
    );

    let job = crate::run_job(&p.alice, &m).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let release = p.alice.release(&job.id).await.unwrap();
    let key = p.alice.public_key().await.unwrap();
    let body = sluice_crypto::verify_release(
        &release.envelope,
        &(0..key.public_key_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&key.public_key_hex[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    assert_eq!(body, release.body);
    let value = |name: &str| {
        body.outputs
            .rows
            .iter()
            .find(|r| r[0] == Cell::Key(name.into()))
            .map(|r| match r[1] {
                Cell::Derived { value } => value,
                ref other => panic!("{name}: {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {name}"))
    };
    // The truth: +0.25 per visit, -0.04 per year of age.
    let (visits, age) = (value("visits"), value("age"));
    assert!(visits > 0.1 && visits < 0.4, "visits {visits}");
    assert!(age < -0.015 && age > -0.07, "age {age}");
    let accuracy = value("held-out accuracy");
    assert!(accuracy > 0.7 && accuracy <= 1.0, "accuracy {accuracy}");
    assert_eq!(body.datasets.len(), 2);
    assert_eq!(body.epsilon_spent.to_string(), "8");
    for dataset in ["visits", "claims"] {
        let b = p.alice.budget(dataset).await.unwrap();
        assert_eq!(b.user_spent, "8", "{dataset}");
        assert_eq!(b.user_delta_spent, "0.000001", "{dataset}");
    }
}

#[tokio::test]
async fn bad_training_jobs_name_every_reason_and_cost_nothing() {
    let p = two_providers().await;
    let privacy = "epsilon = 1.0\ndelta = 1e-6";
    let cases = [
        // Gaussian noise needs δ: refused as a manifest problem.
        (
            train_manifest(&p.header(), JOIN, "claimed", "epsilon = 1.0"),
            ErrorCode::ManifestInvalid,
            "needs a delta",
        ),
        (
            train_manifest(&p.header(), JOIN, "outcome", privacy),
            ErrorCode::QueryRejected,
            "job.label outcome is not a column",
        ),
        (
            train_manifest(
                &p.header(),
                "SELECT COUNT(*) AS n, c.claimed FROM visits v JOIN claims c ON v.pid = c.pid GROUP BY c.claimed",
                "claimed",
                privacy,
            ),
            ErrorCode::QueryRejected,
            "plain row-level SELECT",
        ),
        (
            train_manifest(
                &p.header(),
                "SELECT v.district, c.claimed FROM visits v JOIN claims c ON v.pid = c.pid",
                "claimed",
                privacy,
            ),
            ErrorCode::QueryRejected,
            "column district",
        ),
        (
            train_manifest(
                &p.header(),
                "SELECT v.age, v.visits FROM visits v JOIN claims c ON v.pid = c.pid",
                "visits",
                privacy,
            ),
            ErrorCode::QueryRejected,
            "must have bounds within [0, 1]",
        ),
        (
            train_manifest(
                &p.header(),
                "SELECT v.age, c.claimed FROM visits v JOIN claims c ON v.age = c.pid",
                "claimed",
                privacy,
            ),
            ErrorCode::QueryRejected,
            "",
        ),
    ];
    for (m, code, needle) in cases {
        let err = p.alice.submit_job(&m).await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{err}");
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    for dataset in ["visits", "claims"] {
        let b = p.alice.budget(dataset).await.unwrap();
        assert_eq!(b.user_spent, "0");
        assert_eq!(b.user_delta_spent, "0");
    }
}

/// A `gradient` module that writes each unit's raw rows (times 1e9) into
/// its gradient: the job still releases only a clipped, noised model, and
/// reviewers see the module's digest. A module without the export is
/// refused before any data is read.
#[tokio::test]
async fn a_custom_gradient_module_cannot_leak_rows_into_the_model() {
    let p = two_providers().await;
    let leaking = wat::parse_str(include_str!(
        "../../crates/sluice-wasm/tests/fixtures/leaking_gradient.wat"
    ))
    .unwrap();
    let with_module = |bytes: &[u8]| {
        train_manifest(&p.header(), JOIN, "claimed", "epsilon = 1.0\ndelta = 1e-6").replace(
            "[job.hyper]",
            &format!(
                "module = \"{}\"\n\n[job.hyper]",
                sluice_types::b64_encode(bytes)
            ),
        )
    };
    let m = with_module(&leaking);
    let e = p.alice.estimate_job(&m).await.unwrap();
    assert!(e.accepted, "{:?}", e.reasons);
    assert!(
        e.plan
            .unwrap()
            .contains("custom gradient from WASM module sha256"),
    );
    let job = crate::run_job(&p.alice, &m).await;
    assert_eq!(job.state, "released", "{:?}", job.message);
    let body = p.alice.release(&job.id).await.unwrap().body;
    for row in &body.outputs.rows {
        match row[1] {
            Cell::Derived { value } => assert!(value.is_finite(), "{row:?}"),
            ref other => panic!("{other:?}"),
        }
    }
    assert_eq!(p.alice.budget("visits").await.unwrap().user_spent, "1");

    let no_export =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "map")))"#).unwrap();
    let err = p
        .alice
        .submit_job(&with_module(&no_export))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QueryRejected), "{err}");
    assert!(
        err.to_string().contains("exports no function gradient"),
        "{err}"
    );
    assert_eq!(p.alice.budget("visits").await.unwrap().user_spent, "1");
}

/// The issue's acceptance, end to end: 100,000 people, 20 features held by
/// one provider and the label by another, joined on the pseudonymised
/// person inside the sandbox. The DP model's accuracy on fresh rows is
/// within 1 point of the non-private model trained by the same code at
/// ε = 1, and within 0.3 points at ε = 8, on three independent runs each
/// (fresh noise and held-out split every time).
#[tokio::test]
async fn two_provider_dp_logistic_regression_matches_non_private_accuracy() {
    use rand::SeedableRng;
    use sluice_testkit::learn::{FEATURES, Truth, bounds};
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let truth = Truth::new(&mut rng);
    let rows = truth.sample(100_000, 1, &mut rng);
    let fresh = truth.sample(50_000, 1, &mut rng);
    let b = bounds();

    let p = Platform::start().await;
    let bureau = p.admin.with_token(
        p.admin
            .create_user("outcome_bureau", sluice_types::Role::Provider)
            .await
            .unwrap()
            .token,
    );
    let mut features = String::from(
        "[dataset]\nname = \"features\"\ntitle = \"Features\"\nprovider = \"Bureau A\"\nopen_category = \"conditional\"\nformat = \"csv\"\nupdate_frequency = \"yearly\"\nuser_epsilon = 100.0\nepsilon_cap = 1000.0\n\n[schema]\nmax_rows_per_unit = 1\nid_space = \"person\"\n\n[[schema.columns]]\nname = \"pid\"\nrole = \"privacy_unit\"\ntype = \"int\"\n",
    );
    for (j, (lo, hi)) in b.iter().enumerate() {
        features.push_str(&format!(
            "\n[[schema.columns]]\nname = \"f{j}\"\ntype = \"float\"\nlower = {lo:?}\nupper = {hi:?}\n"
        ));
    }
    p.provider
        .create_dataset(&descriptor(&features))
        .await
        .unwrap();
    bureau
        .create_dataset(&descriptor(
            &OUTCOMES
                .replace("name = \"claims\"", "name = \"outcomes\"")
                .replace("claimed", "y"),
        ))
        .await
        .unwrap();
    let header: Vec<String> = (0..FEATURES).map(|j| format!("f{j}")).collect();
    let (mut a, mut o) = (
        format!("pid,{}\n", header.join(",")),
        String::from("pid,y\n"),
    );
    for (pid, row) in rows.values.chunks_exact(rows.width).enumerate() {
        let values: Vec<String> = row[..FEATURES].iter().map(|v| format!("{v}")).collect();
        a.push_str(&format!("{pid},{}\n", values.join(",")));
        o.push_str(&format!("{pid},{}\n", row[FEATURES] as i64));
    }
    p.provider
        .upload_version("features", a.into_bytes())
        .await
        .unwrap();
    bureau
        .upload_version("outcomes", o.into_bytes())
        .await
        .unwrap();
    let under = crate::under(&[
        crate::agreement(&p.alice, &p.provider, &["features"], 1000.0).await,
        crate::agreement(&p.alice, &bureau, &["outcomes"], 1000.0).await,
    ]);

    let accuracy = |intercept: f64, coefficients: &[f64]| {
        sluice_testkit::learn::accuracy(&fresh, |x| {
            sluice_learn::predict_original(
                sluice_learn::ModelKind::Logistic,
                intercept,
                coefficients,
                x,
            )
        })
    };
    let spec = sluice_learn::TrainSpec {
        model: sluice_learn::ModelKind::Logistic,
        feature_bounds: b.clone(),
        label_bounds: (0.0, 1.0),
        hyper: Default::default(),
    };
    let plain = sluice_learn::train(&rows, &spec, None, &mut rng).unwrap();
    let plain_accuracy = accuracy(plain.intercept, &plain.coefficients);
    assert!(plain_accuracy > 0.8, "non-private {plain_accuracy}");

    let query = format!(
        "SELECT {}, o.y FROM features f JOIN outcomes o ON f.pid = o.pid",
        header
            .iter()
            .map(|h| format!("f.{h}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (epsilon, points) in [(1.0, 0.01), (8.0, 0.003)] {
        for run in 0..3 {
            let m = format!(
                "version = 1\ntitle = \"acceptance, run {run}\"\n{under}\ndatasets = [\"features\", \"outcomes\"]\n\n[job]\nkind = \"train\"\nmodel = \"logistic\"\nquery = \"{query}\"\nlabel = \"y\"\n\n[privacy]\nepsilon = {epsilon:?}\ndelta = 1e-6\n"
            );
            let job = crate::run_job(&p.alice, &m).await;
            assert_eq!(job.state, "released", "{:?}", job.message);
            let body = p.alice.release(&job.id).await.unwrap().body;
            // A distinct manifest each run: a new training, not the cached release.
            assert!(body.title.ends_with(&format!("run {run}")));
            let values: Vec<f64> = body
                .outputs
                .rows
                .iter()
                .map(|r| match r[1] {
                    Cell::Derived { value } => value,
                    ref other => panic!("{other:?}"),
                })
                .collect();
            let dp_accuracy = accuracy(values[0], &values[1..=FEATURES]);
            assert!(
                dp_accuracy >= plain_accuracy - points,
                "epsilon {epsilon}, run {run}: DP {dp_accuracy} vs non-private {plain_accuracy}"
            );
            eprintln!(
                "epsilon {epsilon} run {run}: DP accuracy {dp_accuracy:.4}, non-private {plain_accuracy:.4}, released held-out {:.4}",
                values[FEATURES + 1]
            );
        }
    }
}
