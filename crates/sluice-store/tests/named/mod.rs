//! Lists with names joined: each named list gives the same records as its
//! plain one, with the names of the users and datasets it refers to, or
//! their ids once they are gone.

use serde::Serialize;
use sluice_store::{HoldForReview, NewAgreement, PartyScope, ReviewOutcome, Store};
use sluice_types::Role;

use super::{dataset, eps, job};

/// The same records, compared as what they serialise to.
fn same<T: Serialize>(a: &[T], b: &[T]) {
    assert_eq!(
        serde_json::to_value(a).unwrap(),
        serde_json::to_value(b).unwrap()
    );
}

struct Parties {
    dir: tempfile::TempDir,
    store: Store,
    authority: String,
    bureau: String,
    alice: String,
    /// "pums" and "households", both the bureau's.
    datasets: [String; 2],
}

async fn parties() -> Parties {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let id = async |name: &str, role| store.create_user("system", name, role).await.unwrap().0.id;
    let authority = id("authority", Role::Admin).await;
    let bureau = id("bureau", Role::Provider).await;
    let alice = id("alice", Role::User).await;
    let mut datasets = Vec::new();
    for name in ["pums", "households"] {
        datasets.push(
            store
                .create_dataset("system", &bureau, dataset(name, 100.0, 1.0))
                .await
                .unwrap(),
        );
    }
    Parties {
        dir,
        store,
        authority,
        bureau,
        alice,
        datasets: datasets.try_into().unwrap(),
    }
}

#[tokio::test]
async fn applications_and_agreements_with_names() {
    let p = parties().await;
    let s = &p.store;
    let app = s
        .create_application(&p.alice, &p.bureau, "{}")
        .await
        .unwrap();
    // Given in reverse order of id: listed by id, each name beside its id.
    let mut given = p.datasets.to_vec();
    given.sort();
    given.reverse();
    let agr = s
        .decide_application(
            &p.bureau,
            &app.id,
            "{}",
            Some(NewAgreement {
                terms_json: "{}",
                content_hash: &sluice_crypto::sha256_hex(b"terms"),
                period_start: "2020-01-01",
                period_end: "2999-12-31",
                dataset_ids: &given,
                epsilon: eps(1.0),
                min_epsilon: sluice_store::DEFAULT_MIN_EPSILON,
            }),
        )
        .await
        .unwrap()
        .unwrap();
    s.create_application(&p.authority, &p.bureau, "{\"second\":1}")
        .await
        .unwrap();

    for (scope, applicants) in [
        (PartyScope::All, vec!["alice", "authority"]),
        (PartyScope::Provider(&p.bureau), vec!["alice", "authority"]),
        (PartyScope::User(&p.alice), vec!["alice"]),
        (PartyScope::User(&p.bureau), vec![]),
    ] {
        let plain = s.applications(clone_scope(&scope), None).await.unwrap();
        let named = s.named_applications(scope, None).await.unwrap();
        let names: Vec<_> = named.iter().map(|n| n.applicant_name.as_str()).collect();
        assert_eq!(names, applicants);
        assert!(named.iter().all(|n| n.provider_name == "bureau"));
        let records: Vec<_> = named.into_iter().map(|n| n.application).collect();
        same(&plain, &records);
    }
    // The overdue filter applies to the named list too.
    let far = sluice_types::time::rfc3339(4_102_444_800);
    let overdue = s
        .named_applications(PartyScope::All, Some(&far))
        .await
        .unwrap();
    assert_eq!(overdue.len(), 1, "the approved one is not overdue");
    let one = s.named_application(&app.id).await.unwrap().unwrap();
    same(
        &[s.application(&app.id).await.unwrap().unwrap()],
        &[one.application],
    );
    assert_eq!(
        (one.applicant_name, one.provider_name),
        ("alice".into(), "bureau".into())
    );

    let named = s
        .named_agreements(PartyScope::User(&p.alice))
        .await
        .unwrap();
    assert_eq!(named.len(), 1);
    let n = &named[0];
    assert_eq!(
        (n.user_name.as_str(), n.provider_name.as_str()),
        ("alice", "bureau")
    );
    let mut by_id: Vec<(String, String)> = p
        .datasets
        .iter()
        .cloned()
        .zip(["pums".to_owned(), "households".to_owned()])
        .collect();
    by_id.sort();
    let (ids, names): (Vec<_>, Vec<_>) = by_id.into_iter().unzip();
    assert_eq!((&n.agreement.dataset_ids, &n.dataset_names), (&ids, &names));
    same(
        &s.agreements(PartyScope::All).await.unwrap(),
        std::slice::from_ref(&n.agreement),
    );
    same(
        &[s.agreement(&agr).await.unwrap().unwrap()],
        &[s.named_agreement(&agr).await.unwrap().unwrap().agreement],
    );
    assert!(
        s.named_agreements(PartyScope::Provider(&p.alice))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.named_agreement("agr_none").await.unwrap().is_none());
}

/// `PartyScope` is not `Clone`; the test asks twice with the same scope.
fn clone_scope<'a>(scope: &PartyScope<'a>) -> PartyScope<'a> {
    match scope {
        PartyScope::All => PartyScope::All,
        PartyScope::Provider(p) => PartyScope::Provider(p),
        PartyScope::User(u) => PartyScope::User(u),
    }
}

#[tokio::test]
async fn revocations_and_feedback_with_names_or_ids_once_gone() {
    let p = parties().await;
    let s = &p.store;
    let [pums, households] = &p.datasets;
    s.revoke(&p.bureau, &p.alice, Some(pums), "misuse")
        .await
        .unwrap();
    s.revoke(&p.authority, &p.alice, None, "closed")
        .await
        .unwrap();
    let f = s
        .create_feedback(&p.alice, households, "error", "row 3")
        .await
        .unwrap();
    s.create_feedback(&p.authority, pums, "rectification", "dupes")
        .await
        .unwrap();

    let f = f.id;
    let check = async |s: &Store, alice: &str, pums: &str, households: &str| {
        let named = s.named_revocations().await.unwrap();
        let got: Vec<_> = named
            .iter()
            .map(|n| {
                (
                    n.user_name.as_str(),
                    n.dataset_name.as_deref(),
                    n.decided_by_name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [(alice, Some(pums), "bureau"), (alice, None, "authority")]
        );
        let records: Vec<_> = named.into_iter().map(|n| n.revocation).collect();
        same(&s.revocations().await.unwrap(), &records);

        let named = s.named_feedback_list(PartyScope::All, None).await.unwrap();
        let got: Vec<_> = named
            .iter()
            .map(|n| (n.dataset_name.as_str(), n.reporter_name.as_str()))
            .collect();
        assert_eq!(got, [(households, alice), (pums, "authority")]);
        let records: Vec<_> = named.into_iter().map(|n| n.feedback).collect();
        same(
            &s.feedback_list(PartyScope::All, None).await.unwrap(),
            &records,
        );
        let one = s.named_feedback(&f).await.unwrap().unwrap();
        assert_eq!(one.feedback, s.feedback(&f).await.unwrap().unwrap());
        assert_eq!(
            (one.dataset_name.as_str(), one.reporter_name.as_str()),
            (households, alice)
        );
    };
    check(s, "alice", "pums", "households").await;
    let far = sluice_types::time::rfc3339(4_102_444_800);
    // The provider's scope and the overdue filter apply as in the plain list.
    assert_eq!(
        s.named_feedback_list(PartyScope::Provider(&p.bureau), None)
            .await
            .unwrap()
            .len(),
        2
    );
    let overdue = s
        .named_feedback_list(PartyScope::User(&p.alice), Some(&far))
        .await
        .unwrap();
    assert_eq!(overdue.len(), 1);

    // Rows whose user or dataset is gone show its id, as the server did.
    let Parties {
        dir, store, alice, ..
    } = p;
    store.close().await.unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("sluice.db"))
        .foreign_keys(false);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    for (table, id) in [
        ("users", &alice),
        ("datasets", pums),
        ("datasets", households),
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE id = ?"))
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let store = Store::open(dir.path()).await.unwrap();
    check(&store, &alice, pums, households).await;
}

#[tokio::test]
async fn held_jobs_with_names_decisions_and_the_last_approved_manifest() {
    let p = parties().await;
    let s = &p.store;
    let reviewer = async |name: &str| {
        s.create_user("system", name, Role::Reviewer)
            .await
            .unwrap()
            .0
            .id
    };
    let (rev1, rev2) = (reviewer("rev1").await, reviewer("rev2").await);
    let hold = async |job: &str| {
        s.hold_for_review(
            "system",
            job,
            HoldForReview {
                required: 2,
                plan: "plan",
                estimate_json: "{}",
                task_json: "{}",
                datasets_json: "[]",
            },
        )
        .await
        .unwrap();
    };
    // `job` stores manifest "{}" with digest "d".
    let first = job(s, &p.alice).await;
    hold(&first).await;
    assert_eq!(
        s.decide_review(&rev1, &first, true, "fine", "d")
            .await
            .unwrap(),
        ReviewOutcome::Pending {
            approvals: 1,
            required: 2
        }
    );

    let named = s.named_reviews_for(&rev2).await.unwrap();
    assert_eq!(named.len(), 1);
    let n = &named[0];
    assert_eq!(n.held.job_id, first);
    assert_eq!(n.submitted_by, "alice");
    assert_eq!(
        (n.manifest_json.as_str(), n.manifest_digest.as_str()),
        ("{}", "d")
    );
    assert_eq!(n.reviewer_names, ["rev1"]);
    assert_eq!(n.held.decisions.len(), 1);
    assert_eq!(
        (
            n.held.decisions[0].reviewer_id.as_str(),
            n.held.decisions[0].reason.as_str()
        ),
        (rev1.as_str(), "fine")
    );
    assert_eq!(n.previous_approved, None);
    same(
        &s.reviews_for(&rev2).await.unwrap(),
        std::slice::from_ref(&n.held),
    );
    // Nobody is offered their own job or one they decided.
    assert!(s.named_reviews_for(&rev1).await.unwrap().is_empty());
    assert!(s.named_reviews_for(&p.alice).await.unwrap().is_empty());

    assert_eq!(
        s.decide_review(&rev2, &first, true, "", "d").await.unwrap(),
        ReviewOutcome::Approved
    );
    let second = job(s, &p.alice).await;
    hold(&second).await;
    let n = s.named_held_job(&second).await.unwrap().unwrap();
    assert_eq!(n.previous_approved, Some(("{}".to_owned(), "d".to_owned())));
    assert_eq!(
        n.previous_approved,
        s.last_approved_manifest(&p.alice, &second).await.unwrap()
    );
    assert!(n.held.decisions.is_empty() && n.reviewer_names.is_empty());
    // The decided one, with both decisions in the order made.
    let decided = s.named_held_job(&first).await.unwrap().unwrap();
    assert_eq!(decided.held.outcome.as_deref(), Some("approved"));
    assert_eq!(decided.reviewer_names, ["rev1", "rev2"]);
    same(
        &[s.held_job(&first).await.unwrap().unwrap()],
        &[decided.held],
    );
    assert!(s.named_held_job("job_none").await.unwrap().is_none());
}
