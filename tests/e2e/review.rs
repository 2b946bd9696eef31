//! Human review of jobs: a provider requires two distinct reviewers on a
//! dataset; a job waits with nothing reserved; reviewers see the manifest,
//! the analysis and a diff against the user's last approved manifest;
//! approvals bind to the manifest digest; a rejection gives its reason and
//! costs nothing.

use std::time::Duration;

use sluice_types::{ErrorCode, Role};

use crate::with_pums;

const Q1: &str = "SELECT sex, COUNT(*) AS n FROM pums GROUP BY sex";
const Q2: &str = "SELECT sex, AVG(income) AS mean_income FROM pums GROUP BY sex";

#[tokio::test]
async fn jobs_wait_for_two_distinct_reviewers_bound_to_the_manifest_digest() {
    let p = with_pums().await;
    let reviewer = |name: &'static str| {
        let admin = p.admin.clone();
        async move { admin.with_token(admin.create_user(name, Role::Reviewer).await.unwrap().token) }
    };
    let (rev1, rev2) = (reviewer("rev1").await, reviewer("rev2").await);

    // Only the dataset's provider sets its policy, within 0..=2.
    let err = p.alice.set_review_policy("pums", 1).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let err = p.provider.set_review_policy("pums", 3).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
    p.provider.set_review_policy("pums", 2).await.unwrap();

    // The job waits; nothing is reserved.
    let first = p.manifest("pums", Q1, 1.0);
    let job = p.alice.submit_job(&first).await.unwrap();
    let job = p
        .alice
        .wait_job(&job.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(job.state, "awaiting_review");
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0");

    // Users cannot review; reviewers see the manifest and the analysis.
    let err = p.alice.reviews().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let pending = rev1.reviews().await.unwrap();
    assert_eq!(pending.len(), 1);
    let view = &pending[0];
    assert_eq!(view.job_id, job.id);
    assert_eq!(view.submitted_by, "alice");
    assert!(view.manifest.contains("COUNT(*)"), "{}", view.manifest);
    assert!(!view.plan.is_empty());
    assert_eq!(view.estimate.epsilon.to_string(), "1");
    assert_eq!(view.required, 2);
    assert!(view.diff.is_empty() && view.previous_approved_digest.is_none());

    // A decision binds to the digest the reviewer read.
    let err = rev1
        .decide_review(&job.id, true, "fine", &"0".repeat(64))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    let r = rev1
        .decide_review(&job.id, true, "aggregates only", &view.manifest_digest)
        .await
        .unwrap();
    assert_eq!(
        (r.outcome.as_str(), r.approvals, r.required),
        ("pending", 1, 2)
    );
    // One reviewer counts once.
    let err = rev1
        .decide_review(&job.id, true, "again", &view.manifest_digest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    assert!(rev1.reviews().await.unwrap().is_empty());
    assert_eq!(p.alice.job(&job.id).await.unwrap().state, "awaiting_review");
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0");

    // The second distinct approval runs it.
    let r = rev2
        .decide_review(&job.id, true, "ok", &view.manifest_digest)
        .await
        .unwrap();
    assert_eq!(r.outcome, "approved");
    let done = p
        .alice
        .wait_job(&job.id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.state, "released", "{:?}", done.message);
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "1");

    // The next job shows reviewers what changed since the approved one.
    let second = p.manifest("pums", Q2, 0.5);
    let job2 = p.alice.submit_job(&second).await.unwrap();
    let view2 = rev2.review(&job2.id).await.unwrap();
    assert_eq!(
        view2.previous_approved_digest.as_deref(),
        Some(view.manifest_digest.as_str())
    );
    let removed: Vec<&String> = view2.diff.iter().filter(|l| l.starts_with("- ")).collect();
    let added: Vec<&String> = view2.diff.iter().filter(|l| l.starts_with("+ ")).collect();
    assert!(
        removed.iter().any(|l| l.contains("COUNT(*)")),
        "{removed:?}"
    );
    assert!(added.iter().any(|l| l.contains("AVG(income)")), "{added:?}");
    assert!(added.iter().any(|l| l.contains("0.5")), "{added:?}");
    assert!(
        !view2
            .diff
            .iter()
            .any(|l| l.starts_with("  ") && l.contains("query"))
    );

    // A rejection must say why; it rejects the job and costs nothing.
    let err = rev2
        .decide_review(&job2.id, false, " ", &view2.manifest_digest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
    let r = rev2
        .decide_review(
            &job2.id,
            false,
            "income means by sex need the agreement's purpose",
            &view2.manifest_digest,
        )
        .await
        .unwrap();
    assert_eq!(r.outcome, "rejected");
    let rejected = p.alice.job(&job2.id).await.unwrap();
    assert_eq!(rejected.state, "rejected");
    assert!(
        rejected
            .message
            .unwrap()
            .contains("need the agreement's purpose")
    );
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "1");
    // Decided jobs leave the queue; unknown ids are not found.
    assert!(rev1.reviews().await.unwrap().is_empty());
    let err = rev1.review("job_nonexistent").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");

    // Without the policy, jobs run at once again.
    p.provider.set_review_policy("pums", 0).await.unwrap();
    let job3 = crate::run_job(&p.alice, &p.manifest("pums", Q1, 0.25)).await;
    assert_eq!(job3.state, "released", "{:?}", job3.message);
}
