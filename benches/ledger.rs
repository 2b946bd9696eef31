//! Ledger throughput: durable reserve + commit pairs per second and their
//! latency, sequentially and with concurrent clients (where group commit
//! batches them). Run: `cargo bench -p sluice-store --bench ledger`.
//! Prints median and p90 of per-pair latency and pairs/s over the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_store::{NewDataset, NewJob, Store};
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::{DataFormat, OpenCategory, Role};

async fn setup(dir: &std::path::Path, jobs: usize) -> (Arc<Store>, String, String, Vec<String>) {
    let store = Store::open(dir).await.unwrap();
    let (user, _) = store
        .create_user("bench", "bench", Role::User)
        .await
        .unwrap();
    let schema =
        serde_json::from_value(serde_json::json!({"columns": [{"name": "x", "type": "int"}]}))
            .unwrap();
    let ds = store
        .create_dataset(
            "bench",
            &user.id,
            NewDataset {
                name: "bench".into(),
                title: "bench".into(),
                description: String::new(),
                provider: "bench".into(),
                open_category: OpenCategory::Conditional,
                format: DataFormat::Csv,
                data_type: "table".into(),
                update_frequency: "never".into(),
                schema,
                epsilon_cap: Epsilon::from_f64(1e6).unwrap_or(Epsilon::from_units(u64::MAX / 4)),
                user_epsilon: Epsilon::from_units(u64::MAX / 4),
            },
        )
        .await
        .unwrap();
    let mut ids = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let job = NewJob {
            user_id: user.id.clone(),
            manifest_json: "{}".into(),
            manifest_digest: "bench".into(),
            dataset_versions: vec![],
            epsilon: sluice_store::DEFAULT_MIN_EPSILON,
            delta: Delta::ZERO,
        };
        ids.push(store.create_job("bench", job).await.unwrap());
    }
    (Arc::new(store), user.id, ds, ids)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(clients: usize, pairs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (store, user, ds, jobs) = setup(dir.path(), pairs).await;
    let jobs = Arc::new(jobs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (store, user, ds, jobs) = (store.clone(), user.clone(), ds.clone(), jobs.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for j in jobs.iter().skip(c).step_by(clients) {
                    let t = Instant::now();
                    store
                        .reserve(
                            &user,
                            j,
                            &user,
                            std::slice::from_ref(&ds),
                            sluice_store::DEFAULT_MIN_EPSILON,
                            Delta::ZERO,
                        )
                        .await
                        .unwrap();
                    store.commit_spend(&user, j).await.unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let wall = start.elapsed();
    lat.sort();
    let spent = store.budget(&user, &ds).await.unwrap().user_spent;
    assert_eq!(
        spent.units(),
        100 * pairs as u64,
        "every pair was charged exactly"
    );
    println!(
        "ledger reserve+commit, {clients:>2} client(s): {pairs} pairs in {:.2}s = {:.0} pairs/s; latency p50 {:.2} ms, p90 {:.2} ms",
        wall.as_secs_f64(),
        pairs as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.9).as_secs_f64() * 1e3,
    );
}

/// Baseline on the same disk: one-row durable SQLite commits (WAL,
/// synchronous=FULL), one after another; the ceiling for unbatched writes.
async fn baseline(commits: usize) {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("baseline.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    let mut lat = Vec::with_capacity(commits);
    let start = Instant::now();
    for i in 0..commits {
        let t = Instant::now();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO t (v) VALUES (?)")
            .bind(i as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        lat.push(t.elapsed());
    }
    let wall = start.elapsed();
    lat.sort();
    println!(
        "baseline: {commits} one-row durable SQLite commits in {:.2}s = {:.0} commits/s; latency p50 {:.2} ms, p90 {:.2} ms",
        wall.as_secs_f64(),
        commits as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.9).as_secs_f64() * 1e3,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        baseline(2000).await;
        run(1, 2000).await;
        run(8, 4000).await;
        run(32, 8000).await;
    });
}
