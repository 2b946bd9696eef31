//! Store: single-server lock, hashed tokens, ledger exactness under
//! concurrency, refund rules, atomic releases, and audit-chain tampering;
//! `named`: lists with the names of users and datasets joined.

mod named;

use std::sync::Arc;

use sluice_store::{
    AuditError, JobState, NewDataset, NewJob, SearchQuery, Store, StoreError, verify_audit_chain,
};
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::schema::DatasetSchema;
use sluice_types::{DataFormat, DatasetVersion, OpenCategory, QualityReport, Role};

fn eps(x: f64) -> Epsilon {
    Epsilon::from_f64(x).unwrap()
}

fn dataset(name: &str, cap: f64, per_user: f64) -> NewDataset {
    let schema: DatasetSchema = serde_json::from_value(serde_json::json!({
        "columns": [{"name": "pid", "role": "privacy_unit", "type": "int", "description": "person"},
                    {"name": "income", "type": "int", "lower": 0, "upper": 10}]
    }))
    .unwrap();
    NewDataset {
        name: name.into(),
        title: format!("{name} title"),
        description: "test data".into(),
        provider: "Bureau".into(),
        open_category: OpenCategory::Conditional,
        format: DataFormat::Csv,
        data_type: "table".into(),
        update_frequency: "yearly".into(),
        schema,
        epsilon_cap: eps(cap),
        user_epsilon: eps(per_user),
    }
}

async fn job(store: &Store, user: &str) -> String {
    store
        .create_job(
            user,
            NewJob {
                user_id: user.into(),
                manifest_json: "{}".into(),
                manifest_digest: "d".into(),
                dataset_versions: vec![],
                epsilon: eps(0.1),
                delta: Delta::ZERO,
            },
        )
        .await
        .unwrap()
}

async fn setup() -> (tempfile::TempDir, Store, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let (user, _) = store
        .create_user("system", "alice", Role::User)
        .await
        .unwrap();
    let ds = store
        .create_dataset("system", &user.id, dataset("pums", 100.0, 1.0))
        .await
        .unwrap();
    (dir, store, user.id, ds)
}

#[tokio::test]
async fn a_second_store_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).await.unwrap();
    assert!(matches!(
        Store::open(dir.path()).await,
        Err(StoreError::Locked(_))
    ));
    drop(first);
    Store::open(dir.path()).await.unwrap();
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let (user, token) = store
        .create_user("system", "bob", Role::Provider)
        .await
        .unwrap();
    assert_eq!(
        store.user_by_token(&token).await.unwrap().unwrap().id,
        user.id
    );
    assert!(store.user_by_token("slc_wrong").await.unwrap().is_none());
    assert!(matches!(
        store.create_user("system", "bob", Role::User).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user_count().await.unwrap(), 1);
    store.close().await.unwrap();
    let hash = sluice_crypto::token_hash(&token);
    let contains =
        |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    let mut hash_seen = false;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        // SQLite may remove -wal and -shm as its last connection closes.
        let bytes = match std::fs::read(entry.unwrap().path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{e}"),
        };
        assert!(!contains(&bytes, &token), "raw token stored");
        hash_seen |= contains(&bytes, &hash);
    }
    // The files read are the ones holding the users table.
    assert!(hash_seen, "token hash not found in the data dir");
}

#[tokio::test]
async fn catalog_versions_reports_and_lookups() {
    let (_dir, store, user, ds) = setup().await;
    assert!(matches!(
        store
            .create_dataset("system", &user, dataset("pums", 1.0, 1.0))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let report = QualityReport {
        rows: 42,
        duplicate_rows: 1,
        first_duplicate_rows: vec![7],
        ..QualityReport::default()
    };
    let v1 = DatasetVersion {
        version: "a".repeat(64),
        created_at: "2026-01-01T00:00:00Z".into(),
        source_format: DataFormat::Csv,
    };
    let v2 = DatasetVersion {
        version: "b".repeat(64),
        created_at: "2026-01-02T00:00:00Z".into(),
        source_format: DataFormat::Json,
    };
    // Added out of alphabetical order: versions keep creation order.
    store
        .add_version("system", &ds, &v2, "b.parquet", 10, &report)
        .await
        .unwrap();
    store
        .add_version(
            "system",
            &ds,
            &v1,
            "a.parquet",
            20,
            &QualityReport::default(),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_version("system", &ds, &v1, "a.parquet", 20, &report)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let by_name = store.dataset("pums").await.unwrap().unwrap();
    let by_id = store.dataset(&ds).await.unwrap().unwrap();
    assert_eq!(by_name.entry, by_id.entry);
    assert_eq!(by_name.entry.versions, [v2.clone(), v1.clone()]);
    assert_eq!(by_name.entry.latest_version(), Some(&v1));
    assert_eq!(by_name.owner_id, user);
    assert_eq!(by_name.epsilon_cap, eps(100.0));
    assert_eq!(by_name.user_epsilon, eps(1.0));
    assert_eq!(by_name.entry.schema.columns.len(), 2);
    assert!(store.dataset("nope").await.unwrap().is_none());
    assert_eq!(
        store
            .version_file(&ds, &v2.version)
            .await
            .unwrap()
            .as_deref(),
        Some("b.parquet")
    );
    assert!(store.version_file(&ds, "c").await.unwrap().is_none());
    assert_eq!(
        store.quality_report(&ds, &v2.version).await.unwrap(),
        Some(report)
    );
    assert!(store.quality_report(&ds, "c").await.unwrap().is_none());
    let actions: Vec<String> = store
        .audit_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "user.create",
            "dataset.create",
            "version.add",
            "version.add"
        ]
    );
}

#[tokio::test]
async fn catalog_search_by_text_and_fields() {
    let (_dir, store, user, _) = setup().await;
    let mut open = dataset("open_data", 10.0, 1.0);
    open.open_category = OpenCategory::Unconditional;
    open.provider = "Other office".into();
    store.create_dataset("system", &user, open).await.unwrap();
    let names =
        |v: Vec<sluice_types::CatalogEntry>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
    let q = |f: fn(&mut SearchQuery)| {
        let mut q = SearchQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        names(
            store
                .search(&q(|q| q.text = Some("INCOME".into())))
                .await
                .unwrap()
        ),
        ["open_data", "pums"]
    );
    assert_eq!(
        names(
            store
                .search(&q(|q| q.text = Some("person".into())))
                .await
                .unwrap()
        ),
        ["open_data", "pums"]
    );
    assert_eq!(
        names(
            store
                .search(&q(|q| q.provider = Some("other office".into())))
                .await
                .unwrap()
        ),
        ["open_data"]
    );
    assert_eq!(
        names(
            store
                .search(&q(|q| q.open_category = Some(OpenCategory::Conditional)))
                .await
                .unwrap()
        ),
        ["pums"]
    );
    assert_eq!(
        names(
            store
                .search(&q(|q| {
                    q.format = Some(DataFormat::Csv);
                    q.update_frequency = Some("yearly".into());
                    q.text = Some("OPEN_".into());
                }))
                .await
                .unwrap()
        ),
        ["open_data"]
    );
    assert!(
        store
            .search(&q(|q| q.format = Some(DataFormat::Parquet)))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .search(&q(|q| q.text = Some("nothing like it".into())))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn reserve_refuses_overspend_and_writes_nothing() {
    let (_dir, store, user, ds) = setup().await;
    let a = job(&store, &user).await;
    let b = job(&store, &user).await;
    store
        .reserve(
            &user,
            &a,
            &user,
            std::slice::from_ref(&ds),
            eps(0.6),
            Delta::ZERO,
        )
        .await
        .unwrap();
    let before = store.audit_entries().await.unwrap().len();
    let err = store
        .reserve(
            &user,
            &b,
            &user,
            std::slice::from_ref(&ds),
            eps(0.6),
            Delta::ZERO,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BudgetExhausted { .. }), "{err}");
    assert_eq!(store.audit_entries().await.unwrap().len(), before);
    assert_eq!(store.budget(&user, &ds).await.unwrap().user_spent, eps(0.6));
    // A refund frees the reservation; a committed spend is never refunded.
    store.refund(&user, &a).await.unwrap();
    store
        .reserve(
            &user,
            &b,
            &user,
            std::slice::from_ref(&ds),
            eps(0.6),
            Delta::ZERO,
        )
        .await
        .unwrap();
    store.commit_spend(&user, &b).await.unwrap();
    assert!(matches!(
        store.refund(&user, &b).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.budget(&user, &ds).await.unwrap().user_spent, eps(0.6));
}

#[tokio::test]
async fn dataset_cap_binds_across_users() {
    let (_dir, store, alice, _) = setup().await;
    let (bob, _) = store
        .create_user("system", "bob", Role::User)
        .await
        .unwrap();
    let ds = store
        .create_dataset("system", &alice, dataset("small", 1.0, 0.8))
        .await
        .unwrap();
    let a = job(&store, &alice).await;
    let b = job(&store, &bob.id).await;
    store
        .reserve(
            &alice,
            &a,
            &alice,
            std::slice::from_ref(&ds),
            eps(0.7),
            Delta::ZERO,
        )
        .await
        .unwrap();
    let err = store
        .reserve(
            &bob.id,
            &b,
            &bob.id,
            std::slice::from_ref(&ds),
            eps(0.4),
            Delta::ZERO,
        )
        .await;
    assert!(matches!(err, Err(StoreError::BudgetExhausted { .. })));
    store
        .reserve(
            &bob.id,
            &b,
            &bob.id,
            std::slice::from_ref(&ds),
            eps(0.3),
            Delta::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(
        store.budget(&bob.id, &ds).await.unwrap().dataset_spent,
        eps(1.0)
    );
}

#[tokio::test]
async fn concurrent_reservations_never_overspend() {
    let (_dir, store, user, ds) = setup().await;
    let store = Arc::new(store);
    let mut jobs = Vec::new();
    for _ in 0..50 {
        jobs.push(job(&store, &user).await);
    }
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|j| {
            let (store, user, ds) = (store.clone(), user.clone(), ds.clone());
            tokio::spawn(async move {
                store
                    .reserve(&user, &j, &user, &[ds], eps(0.3), Delta::ZERO)
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::BudgetExhausted { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(store.budget(&user, &ds).await.unwrap().user_spent, eps(0.9));
}

#[tokio::test]
async fn release_commits_its_spend_in_the_same_transaction() {
    let (_dir, store, user, ds) = setup().await;
    let j = job(&store, &user).await;
    // Without a reservation there is nothing to commit: no release is stored.
    assert!(store.release_job("system", &j, "{}").await.is_err());
    assert!(store.release(&j).await.unwrap().is_none());
    store
        .reserve(
            &user,
            &j,
            &user,
            std::slice::from_ref(&ds),
            eps(0.5),
            Delta::ZERO,
        )
        .await
        .unwrap();
    store.release_job("system", &j, "{\"r\":1}").await.unwrap();
    assert_eq!(store.release(&j).await.unwrap().unwrap(), "{\"r\":1}");
    assert_eq!(
        store.job(&j).await.unwrap().unwrap().state,
        JobState::Released
    );
    assert!(matches!(
        store.refund("system", &j).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn audit_chain_detects_changes_deletions_and_reordering() {
    let (_dir, store, user, ds) = setup().await;
    let j = job(&store, &user).await;
    store
        .reserve(
            &user,
            &j,
            &user,
            std::slice::from_ref(&ds),
            eps(0.5),
            Delta::ZERO,
        )
        .await
        .unwrap();
    store
        .set_job_state("system", &j, JobState::Running, None)
        .await
        .unwrap();
    let entries = store.audit_entries().await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "user.create",
            "dataset.create",
            "job.create",
            "ledger.reserve",
            "job.state"
        ]
    );
    assert_eq!(verify_audit_chain(&entries), Ok(5));

    // One byte of one entry's details: ε units 500000000 -> 500000001.
    let mut flipped = entries.clone();
    let mut bytes = flipped[3].details.clone().into_bytes();
    let at = flipped[3].details.find("500000000").unwrap() + 8;
    bytes[at] ^= 1;
    flipped[3].details = String::from_utf8(bytes).unwrap();
    assert!(flipped[3].details.contains("500000001"));
    let err = verify_audit_chain(&flipped).unwrap_err();
    assert_eq!(err, AuditError::Hash { seq: 4 });
    assert_eq!(err.seq(), 4);

    let mut deleted = entries.clone();
    deleted.remove(1);
    assert_eq!(
        verify_audit_chain(&deleted),
        Err(AuditError::Sequence {
            seq: 3,
            expected: 2
        })
    );

    let mut swapped = entries.clone();
    swapped.swap(3, 4);
    assert_eq!(
        verify_audit_chain(&swapped),
        Err(AuditError::Sequence {
            seq: 5,
            expected: 4
        })
    );

    // Renumbering after a deletion still breaks the link.
    let mut renumbered = deleted.clone();
    for (i, e) in renumbered.iter_mut().enumerate() {
        e.seq = i as i64 + 1;
    }
    assert_eq!(
        verify_audit_chain(&renumbered),
        Err(AuditError::Link { seq: 2 })
    );
}

#[tokio::test]
async fn many_tiny_spends_add_up_exactly() {
    // 10,000 concurrent reserve+commit pairs of 0.001 (the least a job may
    // spend, not a binary fraction) must total exactly 10 (sluice-types
    // checks the 10^6 x 1e-7 case on the unit arithmetic).
    let (_dir, store, user, _) = setup().await;
    let ds = store
        .create_dataset("system", &user, dataset("tiny", 100.0, 10.0))
        .await
        .unwrap();
    let store = Arc::new(store);
    let n = 10_000;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(job(&store, &user).await);
    }
    let ids = Arc::new(ids);
    let tasks: Vec<_> = (0..32)
        .map(|c| {
            let (store, user, ds, ids) = (store.clone(), user.clone(), ds.clone(), ids.clone());
            tokio::spawn(async move {
                for j in ids.iter().skip(c).step_by(32) {
                    store
                        .reserve(
                            &user,
                            j,
                            &user,
                            std::slice::from_ref(&ds),
                            eps(0.001),
                            Delta::ZERO,
                        )
                        .await
                        .unwrap();
                    store.commit_spend(&user, j).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let b = store.budget(&user, &ds).await.unwrap();
    assert_eq!(b.user_spent, eps(10.0));
    assert_eq!(b.user_spent.to_string(), "10");
    assert_eq!(
        store.committed_epsilon_units().await.unwrap(),
        eps(10.0).units()
    );
    // The grant is used up exactly: one more job is refused.
    let extra = job(&store, &user).await;
    let err = store
        .reserve(&user, &extra, &user, &[ds], eps(0.001), Delta::ZERO)
        .await;
    assert!(matches!(err, Err(StoreError::BudgetExhausted { .. })));
}

/// Every job spends at least the platform's least ε (0.001), or the higher
/// least an agreement it runs under sets; the refusal names which, and a
/// refused reservation writes nothing.
#[tokio::test]
async fn a_job_below_the_least_epsilon_is_refused() {
    let (_dir, store, user, _) = setup().await;
    let (provider, _) = store
        .create_user("system", "bureau", Role::Provider)
        .await
        .unwrap();
    let ds = store
        .create_dataset("system", &provider.id, dataset("least", 100.0, 10.0))
        .await
        .unwrap();
    let below = job(&store, &user).await;
    match store
        .reserve(
            &user,
            &below,
            &user,
            std::slice::from_ref(&ds),
            Epsilon::from_units(999_999),
            Delta::ZERO,
        )
        .await
    {
        Err(StoreError::BelowMinimum {
            minimum, set_by, ..
        }) => {
            assert_eq!(minimum, eps(0.001));
            assert!(set_by.contains("platform"), "{set_by}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.budget(&user, &ds).await.unwrap().user_spent.units(),
        0
    );
    store
        .reserve(
            &user,
            &below,
            &user,
            std::slice::from_ref(&ds),
            eps(0.001),
            Delta::ZERO,
        )
        .await
        .unwrap();

    // An agreement may set a higher least.
    let app = store
        .create_application(&user, &provider.id, "{}")
        .await
        .unwrap();
    let agr = store
        .decide_application(
            &provider.id,
            &app.id,
            "{}",
            Some(sluice_store::NewAgreement {
                terms_json: "{}",
                content_hash: &sluice_crypto::sha256_hex(app.id.as_bytes()),
                period_start: "2020-01-01",
                period_end: "2999-12-31",
                dataset_ids: std::slice::from_ref(&ds),
                epsilon: eps(5.0),
                min_epsilon: eps(0.05),
            }),
        )
        .await
        .unwrap()
        .unwrap();
    let under = job(&store, &user).await;
    let refused = store
        .reserve_under(
            &user,
            &under,
            &user,
            std::slice::from_ref(&ds),
            std::slice::from_ref(&agr),
            eps(0.01),
            Delta::ZERO,
        )
        .await;
    match refused {
        Err(StoreError::BelowMinimum {
            minimum, set_by, ..
        }) => {
            assert_eq!(minimum, eps(0.05));
            assert!(set_by.contains(&agr), "{set_by}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .minimum_epsilon(&user, std::slice::from_ref(&agr))
            .await
            .unwrap()
            .0,
        eps(0.05)
    );
    store
        .reserve_under(&user, &under, &user, &[ds], &[agr], eps(0.05), Delta::ZERO)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reservation_over_several_datasets_is_all_or_nothing() {
    let (_dir, store, user, roomy) = setup().await;
    let tight = store
        .create_dataset("system", &user, dataset("tight", 10.0, 0.2))
        .await
        .unwrap();
    let j = job(&store, &user).await;
    let before = store.audit_entries().await.unwrap().len();
    let err = store
        .reserve(
            &user,
            &j,
            &user,
            &[roomy.clone(), tight.clone()],
            eps(0.5),
            Delta::from_units(7),
        )
        .await
        .unwrap_err();
    match err {
        StoreError::BudgetExhausted { dataset } => assert_eq!(dataset, "tight"),
        other => panic!("{other}"),
    }
    // Nothing written on either dataset, no audit entry.
    assert_eq!(store.audit_entries().await.unwrap().len(), before);
    for ds in [&roomy, &tight] {
        let b = store.budget(&user, ds).await.unwrap();
        assert_eq!(b.user_spent.units(), 0);
        assert_eq!(b.dataset_spent.units(), 0);
    }
    // Nothing to commit or refund either.
    assert!(matches!(
        store.commit_spend(&user, &j).await,
        Err(StoreError::Invalid(_))
    ));
    // Within both limits, both datasets are charged.
    store
        .reserve(
            &user,
            &j,
            &user,
            &[roomy.clone(), tight.clone()],
            eps(0.2),
            Delta::from_units(7),
        )
        .await
        .unwrap();
    for ds in [&roomy, &tight] {
        assert_eq!(store.budget(&user, ds).await.unwrap().user_spent, eps(0.2));
    }
    let reserve = store.audit_entries().await.unwrap().pop().unwrap();
    assert_eq!(reserve.action, "ledger.reserve");
    assert!(reserve.details.contains("\"delta_units\":7"));
    assert!(reserve.details.contains("\"epsilon_units\":200000000"));
}

#[tokio::test]
async fn malformed_reservations_are_refused() {
    let (_dir, store, user, ds) = setup().await;
    let j = job(&store, &user).await;
    let try_reserve = |job: String, datasets: Vec<String>| {
        let store = &store;
        let user = user.clone();
        async move {
            store
                .reserve(&user, &job, &user, &datasets, eps(0.1), Delta::ZERO)
                .await
        }
    };
    assert!(matches!(
        try_reserve(j.clone(), vec![]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        try_reserve(j.clone(), vec![ds.clone(), ds.clone()]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        try_reserve(j.clone(), vec!["ds_missing".into()]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        try_reserve("job_missing".into(), vec![ds.clone()]).await,
        Err(StoreError::NotFound(_))
    ));
    try_reserve(j.clone(), vec![ds.clone()]).await.unwrap();
    // A job reserves once; a refunded job does not reserve again either.
    assert!(matches!(
        try_reserve(j.clone(), vec![ds.clone()]).await,
        Err(StoreError::Conflict(_))
    ));
    store.refund(&user, &j).await.unwrap();
    assert!(matches!(
        store.refund(&user, &j).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.commit_spend(&user, &j).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        try_reserve(j.clone(), vec![ds.clone()]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.budget(&user, &ds).await.unwrap().user_spent.units(),
        0
    );
    assert!(matches!(
        store.budget(&user, "ds_missing").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn jobs_move_forward_only() {
    let (_dir, store, user, ds) = setup().await;
    let j = store
        .create_job(
            &user,
            NewJob {
                user_id: user.clone(),
                manifest_json: "{\"title\":\"t\"}".into(),
                manifest_digest: "abc".into(),
                dataset_versions: vec![(ds.clone(), "v1".into())],
                epsilon: eps(0.25),
                delta: Delta::from_units(3),
            },
        )
        .await
        .unwrap();
    let record = store.job(&j).await.unwrap().unwrap();
    assert!(record.id.starts_with("job_"));
    assert_eq!(record.state, JobState::Queued);
    assert_eq!(record.dataset_versions, [(ds.clone(), "v1".to_owned())]);
    assert_eq!(record.epsilon, eps(0.25));
    assert_eq!(record.delta, Delta::from_units(3));
    assert_eq!(record.manifest_digest, "abc");
    assert!(store.job("job_missing").await.unwrap().is_none());
    // Released only through release_job.
    assert!(matches!(
        store
            .set_job_state("system", &j, JobState::Released, None)
            .await,
        Err(StoreError::Invalid(_))
    ));
    store
        .set_job_state("system", &j, JobState::Running, None)
        .await
        .unwrap();
    store
        .set_job_state("system", &j, JobState::Failed, Some("boom"))
        .await
        .unwrap();
    let record = store.job(&j).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.message.as_deref(), Some("boom"));
    assert!(matches!(
        store
            .set_job_state("system", &j, JobState::Running, None)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .set_job_state("system", "job_missing", JobState::Running, None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let other = job(&store, &user).await;
    let ids: Vec<String> = store
        .jobs_of_user(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&j) && ids.contains(&other));
    assert!(store.jobs_of_user("usr_nobody").await.unwrap().is_empty());
    assert_eq!(
        serde_json::to_value(JobState::Running).unwrap(),
        serde_json::json!("running")
    );
}

/// Feedback is due in 5 working days, a rectification task in 10; overdue
/// lists show open items past their deadline only; an approved extension
/// moves the deadline to the working days asked, counted from creation.
#[tokio::test]
async fn feedback_deadlines_overdue_lists_and_extensions() {
    use sluice_store::PartyScope;
    use sluice_types::time::{add_working_days, now_unix, rfc3339};
    let (_dir, store, alice, ds) = setup().await;
    let f = store
        .create_feedback(&alice, &ds, "error", "row 12 has age 340")
        .await
        .unwrap();
    let task = store
        .create_feedback(&alice, &ds, "rectification", "duplicates in pid")
        .await
        .unwrap();
    let created = now_unix();
    // Deadlines are the working days after creation (within a second).
    for (item, days) in [(&f, 5), (&task, 10)] {
        let want = add_working_days(created, days);
        let due = [rfc3339(want - 1), rfc3339(want), rfc3339(want + 1)];
        assert!(due.contains(&item.due_at), "{} vs {:?}", item.due_at, due);
    }
    let list = |at: i64| {
        let store = &store;
        async move {
            store
                .feedback_list(PartyScope::All, Some(&rfc3339(at)))
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.kind)
                .collect::<Vec<_>>()
        }
    };
    assert!(list(created).await.is_empty());
    assert_eq!(list(add_working_days(created, 6)).await, vec!["error"]);
    assert_eq!(
        list(add_working_days(created, 11)).await,
        vec!["error", "rectification"]
    );
    // An approved extension to 20 working days takes it off the list.
    store
        .request_extension(&alice, &f.id, 20, "needs the source agency")
        .await
        .unwrap();
    assert!(matches!(
        store.request_extension(&alice, &f.id, 25, "again").await,
        Err(StoreError::Refused(_))
    ));
    store.decide_extension("admin", &f.id, true).await.unwrap();
    assert_eq!(
        list(add_working_days(created, 11)).await,
        vec!["rectification"]
    );
    assert_eq!(
        list(add_working_days(created, 21)).await,
        vec!["rectification", "error"]
    );
    // An answer closes it; it is never overdue again.
    store
        .answer_feedback(&alice, &f.id, "corrected in the next version")
        .await
        .unwrap();
    assert!(matches!(
        store.answer_feedback(&alice, &f.id, "twice").await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(
        list(add_working_days(created, 40)).await,
        vec!["rectification"]
    );
    // Scopes: the reporter sees theirs.
    let mine = store
        .feedback_list(PartyScope::User(&alice), None)
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    let none = store
        .feedback_list(PartyScope::User("someone-else"), None)
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// An agreement for `user` over `ds` with a budget of `budget`, approved by
/// `provider` through an application as the server does.
async fn agreement(store: &Store, user: &str, provider: &str, ds: &str, budget: f64) -> String {
    let app = store
        .create_application(user, provider, "{}")
        .await
        .unwrap();
    store
        .decide_application(
            provider,
            &app.id,
            "{}",
            Some(sluice_store::NewAgreement {
                terms_json: &format!("{{\"app\":\"{}\"}}", app.id),
                content_hash: &sluice_crypto::sha256_hex(app.id.as_bytes()),
                period_start: "2020-01-01",
                period_end: "2999-12-31",
                dataset_ids: &[ds.to_owned()],
                epsilon: eps(budget),
                min_epsilon: sluice_store::DEFAULT_MIN_EPSILON,
            }),
        )
        .await
        .unwrap()
        .unwrap()
}

/// An agreement's budget binds on top of the dataset's: concurrent
/// reservations under it never overspend it, a refused one writes nothing,
/// a refund gives back, a committed spend never does, and another user
/// cannot charge it.
#[tokio::test]
async fn agreement_budgets_never_overspend_under_concurrency() {
    let (_dir, store, user, _) = setup().await;
    let (provider, _) = store
        .create_user("system", "bureau", Role::Provider)
        .await
        .unwrap();
    // The dataset would allow 33 of these reservations; the agreement 3.
    let ds = store
        .create_dataset("system", &provider.id, dataset("roomy", 100.0, 10.0))
        .await
        .unwrap();
    let agr = agreement(&store, &user, &provider.id, &ds, 1.0).await;
    let store = Arc::new(store);
    let mut jobs = Vec::new();
    for _ in 0..50 {
        jobs.push(job(&store, &user).await);
    }
    let tasks: Vec<_> = jobs
        .iter()
        .cloned()
        .map(|j| {
            let (store, user, ds, agr) = (store.clone(), user.clone(), ds.clone(), agr.clone());
            tokio::spawn(async move {
                store
                    .reserve_under(&user, &j, &user, &[ds], &[agr], eps(0.3), Delta::ZERO)
                    .await
            })
        })
        .collect();
    let mut ok = Vec::new();
    for (t, j) in tasks.into_iter().zip(&jobs) {
        match t.await.unwrap() {
            Ok(()) => ok.push(j.clone()),
            Err(StoreError::AgreementBudgetExhausted { agreement }) => assert_eq!(agreement, agr),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok.len(), 3);
    let a = store.agreement(&agr).await.unwrap().unwrap();
    assert_eq!((a.epsilon, a.epsilon_spent), (eps(1.0), eps(0.9)));
    // The refused ones charged the dataset nothing either.
    assert_eq!(store.budget(&user, &ds).await.unwrap().user_spent, eps(0.9));

    // A refund gives the agreement's budget back; a commit keeps it spent.
    store.refund(&user, &ok[0]).await.unwrap();
    store.commit_spend(&user, &ok[1]).await.unwrap();
    let a = store.agreement(&agr).await.unwrap().unwrap();
    assert_eq!(a.epsilon_spent, eps(0.6));
    let fresh = job(&store, &user).await;
    store
        .reserve_under(
            &user,
            &fresh,
            &user,
            std::slice::from_ref(&ds),
            std::slice::from_ref(&agr),
            eps(0.4),
            Delta::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(
        store.agreement(&agr).await.unwrap().unwrap().epsilon_spent,
        eps(1.0)
    );

    // Another user cannot charge alice's agreement.
    let (bob, _) = store
        .create_user("system", "bob", Role::User)
        .await
        .unwrap();
    let bobs_job = job(&store, &bob.id).await;
    let err = store
        .reserve_under(
            &bob.id,
            &bobs_job,
            &bob.id,
            &[ds],
            &[agr],
            eps(0.1),
            Delta::ZERO,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

/// Job states moved into their own column (migration 0009): a store made
/// before it keeps every job, with held jobs now `awaiting_review`, jobs a
/// suspension stopped `cancelled`, and the tables that point at jobs intact.
#[tokio::test]
async fn job_states_survive_the_upgrade_to_their_own_column() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("sluice.db"))
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 9)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    let insert_job = |id: &'static str, state: &'static str, message: Option<&'static str>| {
        sqlx::query(
            "INSERT INTO jobs (id, user_id, manifest_json, manifest_digest, dataset_versions_json,
             epsilon_units, delta_units, state, message, created_at, updated_at)
             VALUES (?, 'u1', '{}', 'd', '[]', 1000000, 0, ?, ?, 't', 't')",
        )
        .bind(id)
        .bind(state)
        .bind(message)
    };
    sqlx::query("INSERT INTO users VALUES ('u1', 'alice', 'user', 'h', 't')")
        .execute(&pool)
        .await
        .unwrap();
    for (id, state, message) in [
        ("held", "queued", None),
        ("stopped", "failed", Some("cancelled: dataset suspended")),
        ("broken", "failed", Some("the job failed while running")),
        ("done", "released", None),
    ] {
        insert_job(id, state, message).execute(&pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO job_reviews (job_id, required, plan, estimate_json, task_json, datasets_json, outcome, created_at)
         VALUES ('held', 1, 'p', '{}', '{}', '[]', NULL, 't')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = Store::open(dir.path()).await.unwrap();
    let state = |id: &'static str| {
        let store = &store;
        async move { store.job(id).await.unwrap().unwrap().state }
    };
    assert_eq!(state("held").await, sluice_store::JobState::AwaitingReview);
    assert_eq!(state("stopped").await, sluice_store::JobState::Cancelled);
    assert_eq!(state("broken").await, sluice_store::JobState::Failed);
    assert_eq!(state("done").await, sluice_store::JobState::Released);
    // The review row still points at its job, and keys are enforced again.
    assert!(store.held_job("held").await.unwrap().is_some());
    let orphan = store
        .hold_for_review(
            "system",
            "no-such-job",
            sluice_store::HoldForReview {
                required: 1,
                plan: "p",
                estimate_json: "{}",
                task_json: "{}",
                datasets_json: "[]",
            },
        )
        .await;
    assert!(orphan.is_err(), "a review of a job that does not exist");
}
