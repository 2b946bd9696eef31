//! Suspension (art. 38) and revocation (art. 34): running jobs are
//! cancelled with nothing released, queued ones never run, new ones are
//! refused, and revocations are listed publicly.

use std::time::{Duration, Instant};

use sluice_types::ErrorCode;

use crate::{pums_csv, slow_job, wait_for_state, with_pums};

const Q: &str = "SELECT sex, COUNT(*) AS n FROM pums GROUP BY sex";

#[tokio::test]
async fn suspending_a_dataset_cancels_its_running_job_and_refuses_new_ones() {
    let p = with_pums().await;
    let job = p.alice.submit_job(&slow_job(&p.header())).await.unwrap();
    wait_for_state(&p.alice, &job.id, "running").await;

    // Only the provider (or the authority) suspends, with a reason.
    let err = p.alice.suspend_dataset("pums", "no").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let err = p.provider.suspend_dataset("pums", " ").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
    let cancelled_at = Instant::now();
    let r = p
        .provider
        .suspend_dataset("pums", "an error found in the income column")
        .await
        .unwrap();
    assert_eq!(r.jobs_cancelled, 1);

    // The running job ends at once (its sandbox killed), releasing nothing;
    // it may have read data, so its budget stays spent.
    let ended = p
        .alice
        .wait_job(&job.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(cancelled_at.elapsed() < Duration::from_secs(10));
    assert_eq!(ended.state, "cancelled");
    let message = ended.message.unwrap();
    assert!(
        message.contains("cancelled") && message.contains("suspended"),
        "{message}"
    );
    let err = p.alice.release(&job.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0.5");

    // New jobs are refused while suspended, and cost nothing.
    let err = p
        .alice
        .submit_job(&p.manifest("pums", Q, 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    assert!(err.to_string().contains("suspended"), "{err}");
    assert_eq!(p.alice.budget("pums").await.unwrap().user_spent, "0.5");

    // A processed version may be published, then the dataset resumed.
    let text = String::from_utf8(pums_csv()).unwrap();
    let processed: String = text.lines().take(900).map(|l| format!("{l}\n")).collect();
    p.provider
        .upload_version("pums", processed.into_bytes())
        .await
        .unwrap();
    p.provider
        .resume_dataset("pums", "income column corrected")
        .await
        .unwrap();
    let job = crate::run_job(&p.alice, &p.manifest("pums", Q, 1.0)).await;
    assert_eq!(job.state, "released", "{:?}", job.message);

    // Withdrawn is for good.
    p.provider
        .withdraw_dataset("pums", "superseded")
        .await
        .unwrap();
    let err = p
        .provider
        .resume_dataset("pums", "again")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    let err = p
        .provider
        .upload_version("pums", pums_csv())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
}

#[tokio::test]
async fn a_revoked_users_queued_and_running_jobs_never_release() {
    let p = with_pums().await;
    let reviewer = p.reviewer("rev").await;
    // A running job: the provider restricts alice's access to pums.
    let running = p.alice.submit_job(&slow_job(&p.header())).await.unwrap();
    wait_for_state(&p.alice, &running.id, "running").await;
    let r = p
        .provider
        .revoke_access("pums", "alice", "use outside the agreed purpose")
        .await
        .unwrap();
    assert_eq!(r.jobs_cancelled, 1);
    let ended = p
        .alice
        .wait_job(&running.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ended.state, "cancelled");
    assert!(ended.message.unwrap().contains("revoked"));
    let err = p
        .alice
        .submit_job(&p.manifest("pums", Q, 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    assert!(err.to_string().contains("revoked"), "{err}");

    // A queued job: bob's job waits for review; the authority closes bob.
    let bobs = crate::agreement(&p.bob, &p.provider, &["pums"], 10.0).await;
    p.provider.set_review_policy("pums", 1).await.unwrap();
    let queued = p
        .bob
        .submit_job(&crate::sql_manifest(
            &crate::under(&[&bobs]),
            "pums",
            Q,
            1.0,
        ))
        .await
        .unwrap();
    assert_eq!(
        p.bob.job(&queued.id).await.unwrap().state,
        "awaiting_review"
    );
    let err = p.provider.close_user("bob", "x").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let r = p
        .admin
        .close_user("bob", "repeated breaches of the data-use agreement")
        .await
        .unwrap();
    assert_eq!(r.jobs_cancelled, 1);
    let job = p.bob.job(&queued.id).await.unwrap();
    assert_eq!(job.state, "cancelled");
    assert!(job.message.unwrap().contains("nothing was spent"));
    // A reviewer can no longer approve it into running.
    assert!(reviewer.reviews().await.unwrap().is_empty());
    let view_digest = job.manifest_digest.clone();
    let err = reviewer
        .decide_review(&queued.id, true, "ok", &view_digest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    assert_eq!(p.bob.budget("pums").await.unwrap().user_spent, "0");

    // Both decisions are listed publicly, with who decided and why.
    let list = reviewer.revocations().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].user, "alice");
    assert_eq!(list[0].dataset.as_deref(), Some("pums"));
    assert_eq!(list[0].reason, "use outside the agreed purpose");
    assert_eq!(list[1].user, "bob");
    assert_eq!(list[1].dataset, None);
    assert_eq!(list[1].decided_by, "admin");
}

/// Usage statistics count datasets, jobs by outcome and budget spent, by
/// provider and by open category, for any role; no values.
#[tokio::test]
async fn usage_statistics_count_jobs_and_budget_by_provider_and_category() {
    let p = with_pums().await;
    let released = crate::run_job(&p.alice, &p.manifest("pums", Q, 1.0)).await;
    assert_eq!(released.state, "released");
    let err = p
        .alice
        .submit_job(&p.manifest("pums", "SELECT * FROM pums", 1.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QueryRejected));
    let application = sluice_types::api::ApplicationRequest {
        title: Some("t".into()),
        reason: Some("r".into()),
        kind: Some("dataset".into()),
        datasets: vec!["pums".into()],
        period_start: Some("2026-01-01".into()),
        period_end: Some("2026-12-31".into()),
        result_form: Some("f".into()),
        scenario: Some("s".into()),
        pledge: true,
    };
    p.bob.apply(&application).await.unwrap();
    let stats = p.bob.stats().await.unwrap();
    let provider = stats
        .by_provider
        .iter()
        .find(|r| r.group == "US Census Bureau (sample)")
        .unwrap();
    assert_eq!(
        (
            provider.datasets,
            provider.versions,
            provider.jobs_released,
            provider.jobs_rejected
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(provider.epsilon_spent, "1");
    // alice's (approved into her agreement) and bob's.
    assert_eq!(provider.applications, 2);
    let category = stats
        .by_category
        .iter()
        .find(|r| r.group == "conditional")
        .unwrap();
    assert_eq!(category.jobs_released, 1);
    assert_eq!(stats.releases, 1);
    assert_eq!(stats.users, 4);
    // Nothing in it is a value of the data.
    let text = serde_json::to_string(&stats).unwrap();
    assert!(!text.contains("income"), "{text}");
}

/// Feedback: a user reports, the provider sees and answers it, nobody else
/// sees it; rectification tasks are the authority's; extensions need its
/// approval and stay within 30 working days.
#[tokio::test]
async fn feedback_goes_to_the_provider_with_a_deadline_and_stays_private() {
    let p = with_pums().await;
    let item = p
        .alice
        .report_feedback("pums", "error", "income has a negative value in one row")
        .await
        .unwrap();
    assert_eq!((item.state.as_str(), item.overdue), ("open", false));
    assert!(item.due_at > item.created_at);
    let err = p
        .alice
        .report_feedback("pums", "rectification", "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let err = p
        .alice
        .report_feedback("pums", "rumour", "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
    let task = p
        .admin
        .report_feedback("pums", "rectification", "quality audit: duplicated pid")
        .await
        .unwrap();

    // The provider sees both; another user sees neither (not found).
    assert_eq!(p.provider.feedback_list(false).await.unwrap().len(), 2);
    assert!(p.bob.feedback_list(false).await.unwrap().is_empty());
    let err = p.bob.feedback(&item.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    assert!(p.provider.feedback_list(true).await.unwrap().is_empty());

    // Only the provider answers; the reporter reads the answer.
    let err = p.alice.answer_feedback(&item.id, "me").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let err = p
        .provider
        .request_extension(&task.id, 40, "too long")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadRequest), "{err}");
    let asked = p
        .provider
        .request_extension(&item.id, 15, "the source agency must check")
        .await
        .unwrap();
    assert_eq!(
        asked.extension.as_deref(),
        Some("requested (15 working days)")
    );
    let err = p
        .provider
        .decide_extension(&item.id, true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let approved = p.admin.decide_extension(&item.id, true).await.unwrap();
    assert!(approved.due_at > item.due_at);
    p.provider
        .answer_feedback(&item.id, "the row is corrected in version 2")
        .await
        .unwrap();
    let seen = p.alice.feedback(&item.id).await.unwrap();
    assert_eq!(seen.state, "answered");
    assert_eq!(
        seen.answer.as_deref(),
        Some("the row is corrected in version 2")
    );
}
