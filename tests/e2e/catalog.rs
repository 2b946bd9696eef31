//! Catalog and open categories (art. 7, 14, 19).

use sluice_client::SearchFilter;
use sluice_types::ErrorCode;

use crate::{Platform, manifest, pums_csv, pums_descriptor};

#[tokio::test]
async fn search_by_text_and_field() {
    let p = Platform::start().await;
    p.provider
        .create_dataset(&pums_descriptor("pums", "conditional"))
        .await
        .unwrap();
    p.provider
        .create_dataset(&pums_descriptor("pums_open", "unconditional"))
        .await
        .unwrap();
    let by_text = p
        .alice
        .search(&SearchFilter {
            text: Some("INCOME".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_text.len(), 2);
    let by_cat = p
        .alice
        .search(&SearchFilter {
            open_category: Some("unconditional".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_cat.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["pums_open"]
    );
    let none = p
        .alice
        .search(&SearchFilter {
            provider: Some("nobody".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let bad = p
        .alice
        .search(&SearchFilter {
            open_category: Some("secret".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(bad.unwrap_err().code(), Some(ErrorCode::BadRequest));
}

#[tokio::test]
async fn not_open_data_is_in_no_job_and_hidden_from_users() {
    let p = Platform::start().await;
    p.provider
        .create_dataset(&pums_descriptor("closed", "not_open"))
        .await
        .unwrap();
    p.provider
        .upload_version("closed", pums_csv())
        .await
        .unwrap();
    let q = manifest("closed", "SELECT COUNT(*) FROM closed", 1.0);
    // The provider itself cannot run a job on it.
    let err = p.provider.submit_job(&q).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DatasetNotOpen), "{err}");
    // For other users it does not exist.
    let err = p.alice.submit_job(&q).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
    assert_eq!(
        p.alice.dataset("closed").await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    assert!(
        p.alice
            .search(&SearchFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(p.alice.jobs().await.unwrap().is_empty());
}

#[tokio::test]
async fn conditional_preview_is_synthetic_and_download_refused() {
    let p = Platform::start().await;
    p.provider
        .create_dataset(&pums_descriptor("pums", "conditional"))
        .await
        .unwrap();
    p.provider.upload_version("pums", pums_csv()).await.unwrap();
    let preview = p.alice.preview("pums", 50).await.unwrap();
    assert!(preview.synthetic);
    assert_eq!(preview.rows.len(), 50);
    // No preview row is a real row: compare on (age, income), which together
    // are near-unique in the real data and drawn uniformly in the synthetic rows.
    let csv = String::from_utf8(pums_csv()).unwrap();
    let real: std::collections::HashSet<(i64, i64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[4].parse::<f64>().unwrap() as i64)
        })
        .collect();
    for row in &preview.rows {
        let key = (
            row["age"].as_i64().unwrap(),
            row["income"].as_i64().unwrap(),
        );
        assert!(!real.contains(&key), "preview row {row:?} is a real row");
        // Pseudonyms in the preview are random, not stored ones.
        assert_eq!(row["pid"].as_str().unwrap().len(), 32);
    }
    let err = p.alice.download("pums").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DatasetNotOpen));
}

#[tokio::test]
async fn unconditional_data_downloads_byte_identical_and_previews_real_rows() {
    let p = Platform::start().await;
    let entry = p
        .provider
        .create_dataset(&pums_descriptor("pums_open", "unconditional"))
        .await
        .unwrap();
    let added = p
        .provider
        .upload_version("pums_open", pums_csv())
        .await
        .unwrap();
    let stored = std::fs::read(
        p.data_dir()
            .join("datasets")
            .join(&entry.id)
            .join(format!("{}.parquet", added.version)),
    )
    .unwrap();
    let downloaded = p.alice.download("pums_open").await.unwrap();
    assert_eq!(downloaded, stored);
    assert_eq!(sluice_crypto::sha256_hex(&downloaded), added.version);
    let preview = p.alice.preview("pums_open", 5).await.unwrap();
    assert!(!preview.synthetic);
    assert_eq!(preview.rows.len(), 5);
}
