//! The catalog: datasets with their art. 14 fields, schema and budget,
//! their content-hashed versions and quality reports, and search.

use sluice_types::privacy::Epsilon;
use sluice_types::schema::DatasetSchema;
use sluice_types::time::now_rfc3339;
use sluice_types::{CatalogEntry, DataFormat, DatasetVersion, OpenCategory, QualityReport};
use sqlx::Row;

use crate::control::DatasetStatus;
use crate::db::{from_units, size, units};
use crate::{Store, StoreError, audit, commit, corrupt};

#[derive(Debug, Clone)]
pub struct NewDataset {
    pub name: String,
    pub title: String,
    pub description: String,
    pub provider: String,
    pub open_category: OpenCategory,
    pub format: DataFormat,
    pub data_type: String,
    pub update_frequency: String,
    pub schema: DatasetSchema,
    /// Total ε all users together may spend on this dataset.
    pub epsilon_cap: Epsilon,
    /// ε each user may spend on this dataset.
    pub user_epsilon: Epsilon,
}

#[derive(Debug, Clone)]
pub struct DatasetRecord {
    pub entry: CatalogEntry,
    pub owner_id: String,
    pub epsilon_cap: Epsilon,
    pub user_epsilon: Epsilon,
    /// Distinct reviewers who must approve a job on this dataset (0 to 2).
    pub reviewers_required: u8,
    pub status: DatasetStatus,
    /// Why it was suspended or withdrawn.
    pub status_reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Case-insensitive substring of name, title, description, provider or
    /// a column's name or description.
    pub text: Option<String>,
    pub provider: Option<String>,
    pub open_category: Option<OpenCategory>,
    pub format: Option<DataFormat>,
    pub update_frequency: Option<String>,
}

impl Store {
    pub async fn create_dataset(
        &self,
        actor: &str,
        owner_id: &str,
        new: NewDataset,
    ) -> Result<String, StoreError> {
        let id = sluice_crypto::random_id("ds");
        let schema_json = serde_json::to_string(&new.schema).expect("schema serialises");
        let mut tx = self.write().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM datasets WHERE name = ?")
            .bind(&new.name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("dataset {}", new.name)));
        }
        audit::append(
            &mut tx,
            actor,
            "dataset.create",
            &id,
            &serde_json::json!({
                "name": new.name,
                "open_category": new.open_category.as_str(),
                "epsilon_cap_units": new.epsilon_cap.units(),
                "user_epsilon_units": new.user_epsilon.units(),
            }),
        )
        .await?;
        sqlx::query(
            "INSERT INTO datasets (id, name, owner_id, title, description, provider, open_category, format, data_type,
             update_frequency, schema_json, epsilon_cap_units, user_epsilon_units, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(owner_id)
        .bind(&new.title)
        .bind(&new.description)
        .bind(&new.provider)
        .bind(new.open_category.as_str())
        .bind(new.format.as_str())
        .bind(&new.data_type)
        .bind(&new.update_frequency)
        .bind(&schema_json)
        .bind(units(new.epsilon_cap.units())?)
        .bind(units(new.user_epsilon.units())?)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(id)
    }

    pub async fn add_version(
        &self,
        actor: &str,
        dataset_id: &str,
        version: &DatasetVersion,
        file_name: &str,
        bytes: u64,
        report: &QualityReport,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM dataset_versions WHERE dataset_id = ? AND version = ?",
        )
        .bind(dataset_id)
        .bind(&version.version)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("version {}", version.version)));
        }
        let seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM dataset_versions WHERE dataset_id = ?",
        )
        .bind(dataset_id)
        .fetch_one(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            actor,
            "version.add",
            dataset_id,
            &serde_json::json!({"version": version.version, "bytes": bytes}),
        )
        .await?;
        sqlx::query(
            "INSERT INTO dataset_versions (dataset_id, version, seq, file_name, bytes, source_format, quality_json, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(dataset_id)
        .bind(&version.version)
        .bind(seq)
        .bind(file_name)
        .bind(size(bytes)?)
        .bind(version.source_format.as_str())
        .bind(serde_json::to_string(report).expect("report serialises"))
        .bind(&version.created_at)
        .execute(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(())
    }

    async fn record_from_row(
        &self,
        row: &sqlx::sqlite::SqliteRow,
    ) -> Result<DatasetRecord, StoreError> {
        let id: String = row.get("id");
        let category: String = row.get("open_category");
        let format: String = row.get("format");
        let schema: DatasetSchema =
            serde_json::from_str(row.get::<&str, _>("schema_json")).map_err(corrupt)?;
        let versions = sqlx::query(
            "SELECT version, created_at, source_format FROM dataset_versions WHERE dataset_id = ? ORDER BY seq",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|v| {
            let f: String = v.get("source_format");
            Ok(DatasetVersion {
                version: v.get("version"),
                created_at: v.get("created_at"),
                source_format: DataFormat::parse(&f).ok_or_else(|| corrupt(format!("format {f}")))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(DatasetRecord {
            entry: CatalogEntry {
                id,
                name: row.get("name"),
                title: row.get("title"),
                description: row.get("description"),
                provider: row.get("provider"),
                open_category: OpenCategory::parse(&category)
                    .ok_or_else(|| corrupt(format!("category {category}")))?,
                format: DataFormat::parse(&format)
                    .ok_or_else(|| corrupt(format!("format {format}")))?,
                data_type: row.get("data_type"),
                update_frequency: row.get("update_frequency"),
                schema,
                versions,
                created_at: row.get("created_at"),
            },
            owner_id: row.get("owner_id"),
            epsilon_cap: Epsilon::from_units(from_units(row.get("epsilon_cap_units"))?),
            user_epsilon: Epsilon::from_units(from_units(row.get("user_epsilon_units"))?),
            reviewers_required: u8::try_from(row.get::<i64, _>("reviewers_required"))
                .map_err(corrupt)?,
            status: DatasetStatus::parse(row.get::<&str, _>("status"))
                .ok_or_else(|| corrupt("dataset status"))?,
            status_reason: row.get("status_reason"),
        })
    }

    /// A dataset by name or id.
    pub async fn dataset(&self, name_or_id: &str) -> Result<Option<DatasetRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM datasets WHERE name = ? OR id = ?")
            .bind(name_or_id)
            .bind(name_or_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(self.record_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    /// A column of a dataset's version row.
    async fn version_column(
        &self,
        column: &str,
        dataset_id: &str,
        version: &str,
    ) -> Result<Option<String>, StoreError> {
        let sql =
            format!("SELECT {column} FROM dataset_versions WHERE dataset_id = ? AND version = ?");
        Ok(sqlx::query_scalar(&sql)
            .bind(dataset_id)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn version_file(
        &self,
        dataset_id: &str,
        version: &str,
    ) -> Result<Option<String>, StoreError> {
        self.version_column("file_name", dataset_id, version).await
    }

    pub async fn quality_report(
        &self,
        dataset_id: &str,
        version: &str,
    ) -> Result<Option<QualityReport>, StoreError> {
        self.version_column("quality_json", dataset_id, version)
            .await?
            .map(|j| serde_json::from_str(&j).map_err(corrupt))
            .transpose()
    }

    pub async fn search(&self, q: &SearchQuery) -> Result<Vec<CatalogEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM datasets ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let text = q.text.as_ref().map(|t| t.to_lowercase());
        let mut out = Vec::new();
        for row in rows {
            let entry = self.record_from_row(&row).await?.entry;
            if q.provider
                .as_ref()
                .is_some_and(|p| !entry.provider.eq_ignore_ascii_case(p))
                || q.open_category.is_some_and(|c| c != entry.open_category)
                || q.format.is_some_and(|f| f != entry.format)
                || q.update_frequency
                    .as_ref()
                    .is_some_and(|u| !entry.update_frequency.eq_ignore_ascii_case(u))
            {
                continue;
            }
            if let Some(t) = &text {
                let mut haystack = vec![
                    entry.name.to_lowercase(),
                    entry.title.to_lowercase(),
                    entry.description.to_lowercase(),
                    entry.provider.to_lowercase(),
                ];
                for c in &entry.schema.columns {
                    haystack.push(c.name.to_lowercase());
                    if let Some(d) = &c.description {
                        haystack.push(d.to_lowercase());
                    }
                }
                if !haystack.iter().any(|h| h.contains(t.as_str())) {
                    continue;
                }
            }
            out.push(entry);
        }
        Ok(out)
    }
}
