//! Usage statistics (art. 9): counts and budget by provider and by open
//! category. Nothing here reads or reveals a dataset's values.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::db::from_units;
use crate::{Store, StoreError, corrupt};

/// Figures of one group of datasets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageGroup {
    pub datasets: u64,
    pub versions: u64,
    pub jobs_released: u64,
    pub jobs_failed: u64,
    pub jobs_rejected: u64,
    pub jobs_pending: u64,
    /// Applications naming a dataset of the group.
    pub applications: u64,
    /// ε spent, in the ledger's units.
    pub epsilon_spent_units: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub by_provider: BTreeMap<String, UsageGroup>,
    pub by_category: BTreeMap<String, UsageGroup>,
    pub users: u64,
    pub releases: u64,
    pub revocations: u64,
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    pub async fn usage(&self) -> Result<Usage, StoreError> {
        let mut usage = Usage::default();
        // Per dataset first, then folded into both groupings.
        let datasets = sqlx::query(
            "SELECT d.id, d.name, d.provider, d.open_category,
               (SELECT COUNT(*) FROM dataset_versions v WHERE v.dataset_id = d.id) AS versions,
               (SELECT COALESCE(SUM(s.epsilon_units), 0) FROM spends s
                  WHERE s.dataset_id = d.id AND s.state = 'committed') AS spent
             FROM datasets d",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut groups_of: BTreeMap<String, (String, String)> = BTreeMap::new();
        for row in &datasets {
            let (provider, category): (String, String) =
                (row.get("provider"), row.get("open_category"));
            groups_of.insert(row.get("id"), (provider.clone(), category.clone()));
            let spent = from_units(row.get("spent"))?;
            for g in [
                usage.by_provider.entry(provider).or_default(),
                usage.by_category.entry(category).or_default(),
            ] {
                g.datasets += 1;
                g.versions += count(row.get("versions"));
                g.epsilon_spent_units += spent;
            }
        }
        // Each job counts once per group it read from.
        let jobs = sqlx::query("SELECT dataset_versions_json, state FROM jobs")
            .fetch_all(&self.pool)
            .await?;
        for row in &jobs {
            let versions: Vec<(String, String)> =
                serde_json::from_str(row.get::<&str, _>("dataset_versions_json"))
                    .map_err(corrupt)?;
            let state: String = row.get("state");
            let mut providers = std::collections::BTreeSet::new();
            let mut categories = std::collections::BTreeSet::new();
            for (id, _) in &versions {
                if let Some((p, c)) = groups_of.get(id) {
                    providers.insert(p.clone());
                    categories.insert(c.clone());
                }
            }
            let bump = |g: &mut UsageGroup| match state.as_str() {
                "released" => g.jobs_released += 1,
                // Counted with failures: nothing was released.
                "failed" | "cancelled" => g.jobs_failed += 1,
                "rejected" => g.jobs_rejected += 1,
                _ => g.jobs_pending += 1,
            };
            for p in providers {
                bump(usage.by_provider.entry(p).or_default());
            }
            for c in categories {
                bump(usage.by_category.entry(c).or_default());
            }
        }
        // Each application counts once per group it asks data of.
        let names: BTreeMap<String, (String, String)> = datasets
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>("name"),
                    (r.get("provider"), r.get("open_category")),
                )
            })
            .collect();
        let apps: Vec<String> = sqlx::query_scalar("SELECT body_json FROM applications")
            .fetch_all(&self.pool)
            .await?;
        for body in &apps {
            let v: serde_json::Value = serde_json::from_str(body).map_err(corrupt)?;
            let mut providers = std::collections::BTreeSet::new();
            let mut categories = std::collections::BTreeSet::new();
            for name in v["datasets"].as_array().into_iter().flatten() {
                if let Some((p, c)) = name.as_str().and_then(|n| names.get(n)) {
                    providers.insert(p.clone());
                    categories.insert(c.clone());
                }
            }
            for p in providers {
                usage.by_provider.entry(p).or_default().applications += 1;
            }
            for c in categories {
                usage.by_category.entry(c).or_default().applications += 1;
            }
        }
        let scalar = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&self.pool)
                .await
                .map(count)
        };
        usage.users = scalar("SELECT COUNT(*) FROM users").await?;
        usage.releases = scalar("SELECT COUNT(*) FROM releases").await?;
        usage.revocations = scalar("SELECT COUNT(*) FROM revocations").await?;
        Ok(usage)
    }
}
