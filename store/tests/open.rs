//! Opening store files: fresh, reopened, foreign, newer, older, corrupt.

mod common;

use std::path::Path;

use common::{experiment, new_run};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use store::{RunFilter, Store, StoreError, MIGRATOR};

async fn raw_pool(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await
        .unwrap()
}

/// A migrator over the crate's migration files (sorted) that `pick` keeps, copied under `dir`:
/// the schema an older build shipped.
async fn older_migrator(
    dir: &Path,
    pick: impl FnOnce(&mut Vec<std::path::PathBuf>),
) -> sqlx::migrate::Migrator {
    let old = dir.join("migrations");
    std::fs::create_dir(&old).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    pick(&mut files);
    for f in &files {
        std::fs::copy(f, old.join(f.file_name().unwrap())).unwrap();
    }
    sqlx::migrate::Migrator::new(old.as_path()).await.unwrap()
}

fn latest() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap()
}

#[tokio::test]
async fn open_creates_the_directory_uses_wal_and_keeps_data_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/towerlab.db");
    let store = Store::open(&path).await.unwrap();
    assert!(path.exists());
    assert_eq!(store.path(), path);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.sqlite_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(store.schema_version().await.unwrap(), latest());
    let exp = experiment(&store, "keep").await;
    store.create_runs(exp, &[new_run(0)]).await.unwrap();
    store.close().await;

    let again = Store::open(&path).await.unwrap();
    assert_eq!(
        again.list_runs(&RunFilter::default()).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn several_handles_opening_a_fresh_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let opens = (0..6).map(|_| {
        let path = path.clone();
        tokio::spawn(async move { Store::open(path).await })
    });
    for handle in opens {
        let store = handle.await.unwrap().unwrap();
        assert_eq!(store.schema_version().await.unwrap(), latest());
    }
}

#[tokio::test]
async fn a_database_of_another_program_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    let pool = raw_pool(&path).await;
    sqlx::query("CREATE TABLE history (id INTEGER PRIMARY KEY, command TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let err = Store::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("other.sqlite") && msg.contains("not a TowerLab store"),
        "{msg}"
    );
    assert!(msg.contains("history"), "{msg}");
}

#[tokio::test]
async fn a_store_from_a_newer_towerlab_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    Store::open(&path).await.unwrap().close().await;
    let pool = raw_pool(&path).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000000, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let err = Store::open(&path).await.unwrap_err();
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, 29991231000000);
            assert_eq!(*supported, latest());
        }
        other => panic!("expected NewerSchema, got {other}"),
    }
    assert!(err.to_string().contains("newer.db"), "{err}");
}

#[tokio::test]
async fn a_store_at_an_older_schema_version_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    // Only the first migration: what an older build shipped.
    let old = older_migrator(dir.path(), |files| {
        assert!(files.len() >= 2, "this test needs at least two migrations");
        files.truncate(1);
    })
    .await;

    let path = dir.path().join("old.db");
    let pool = raw_pool(&path).await;
    old.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO experiments (name, path, content_hash, created_ms, updated_ms) \
         VALUES ('legacy', 'legacy.toml', 'h', 1, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), latest());
    let legacy = store.experiment_by_name("legacy").await.unwrap().unwrap();
    let run = store.create_runs(legacy.id, &[new_run(0)]).await.unwrap()[0].id;
    let point = store::MetricPoint {
        key: "k".into(),
        step: 0,
        value: 1.0,
        wall_ms: 0,
    };
    assert_eq!(store.ingest_metrics(run, &[point]).await.unwrap(), 1);
}

#[tokio::test]
async fn a_corrupt_file_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.db");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, garbage).unwrap();

    let err = Store::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("broken.db") && msg.contains("not a SQLite database"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_directory_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let err = Store::open(blocker.join("store.db")).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
    assert!(err.to_string().contains("file"), "{err}");
}

/// The `predictions` artifact kind rebuilds the artifacts table: rows of a store made before it
/// keep their ids and paths, the new kind is accepted, and deleting a run still cascades.
#[tokio::test]
async fn artifacts_survive_the_predictions_kind_migration() {
    let dir = tempfile::tempdir().unwrap();
    let old = older_migrator(dir.path(), |files| {
        files.retain(|p| !p.to_string_lossy().contains("artifact_predictions"));
    })
    .await;
    let path = dir.path().join("old.db");
    let pool = raw_pool(&path).await;
    old.run(&pool).await.unwrap();
    for sql in [
        "INSERT INTO experiments (id, name, path, content_hash, created_ms, updated_ms) \
         VALUES (1, 'legacy', 'legacy.toml', 'h', 1, 1)",
        "INSERT INTO runs (id, experiment_id, hash, cell_key, task, created_ms) \
         VALUES (1, 1, 'h1', 'k', 'vqa', 1)",
        "INSERT INTO artifacts (id, run_id, kind, path, step, size_bytes, created_ms) \
         VALUES (7, 1, 'checkpoint', '/runs/h1/checkpoints/step-5', 5, 123, 2)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let refused = sqlx::query(
        "INSERT INTO artifacts (run_id, kind, path, created_ms) \
         VALUES (1, 'predictions', '/runs/h1/vqa_submit.json', 3)",
    )
    .execute(&pool)
    .await;
    assert!(refused.is_err(), "the old schema has no predictions kind");
    pool.close().await;

    let store = Store::open(&path).await.unwrap();
    let run = store::RunId(1);
    let kept = store.artifacts(run).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].id, 7);
    assert_eq!(kept[0].path, "/runs/h1/checkpoints/step-5");
    assert_eq!(kept[0].kind, store::ArtifactKind::Checkpoint);
    store
        .add_artifact(
            run,
            &store::NewArtifact {
                kind: store::ArtifactKind::Predictions,
                path: "/runs/h1/vqa_submit.json".into(),
                step: Some(5),
                size_bytes: Some(10),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.artifacts(run).await.unwrap().len(), 2);
    sqlx::query("DELETE FROM runs WHERE id = 1")
        .execute(store.sqlite_pool().unwrap())
        .await
        .unwrap();
    assert!(store.artifacts(run).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dead_postgres_server_is_one_clear_error_naming_the_url_without_its_password() {
    // Nothing listens on port 1 of the loopback address.
    let err = Store::open("postgres://lab:s3cret@127.0.0.1:1/towerlab")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, store::StoreError::Connect { .. }), "{text}");
    assert!(
        text.contains("postgres://lab:***@127.0.0.1:1/towerlab"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    let bad = Store::open("postgres://127.0.0.1:notaport/x")
        .await
        .unwrap_err();
    assert!(matches!(bad, store::StoreError::Connect { .. }), "{bad}");
}

#[test]
fn urls_are_shown_without_their_password() {
    assert_eq!(
        store::redact_url("postgres://u:p@h:5432/db?sslmode=require"),
        "postgres://u:***@h:5432/db?sslmode=require"
    );
    assert_eq!(store::redact_url("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(store::redact_url("towerlab.db"), "towerlab.db");
    assert!(store::is_postgres_url("postgresql://h/db"));
    assert!(!store::is_postgres_url("./postgres.db"));
}
