//! The migrations against a real Postgres with PostGIS: every step reverses, and the
//! schema does not depend on how it was reached.

use std::process::Command;

use migrations::testing::TestDatabase;
use migrations::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::sync::Mutex;

/// Roles belong to the whole server: a `down` in one test must not race an `up` in
/// another, so the tests that migrate take turns.
static MIGRATING: Mutex<()> = Mutex::const_new(());

async fn connect(db: &TestDatabase) -> DatabaseConnection {
    Database::connect(db.url()).await.expect("connect")
}

/// `pg_dump --schema-only`, without the per-run `\restrict` keys newer pg_dump writes.
fn schema_of(db: &TestDatabase) -> String {
    let output = Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", "--dbname", db.url()])
        .output()
        .expect("pg_dump runs (postgresql-client)");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 dump")
        .lines()
        .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

async fn tables_in_public(db: &DatabaseConnection) -> i64 {
    count(
        db,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'seaql_migrations'",
    )
    .await
}

#[tokio::test]
async fn all_up_then_all_down_then_all_up_again_gives_the_same_schema() {
    let _turn = MIGRATING.lock().await;
    let reference = TestDatabase::empty().await;
    Migrator::up(&connect(&reference).await, None)
        .await
        .expect("up");

    let db = TestDatabase::empty().await;
    let conn = connect(&db).await;
    Migrator::up(&conn, None).await.expect("first up");
    assert!(
        tables_in_public(&conn).await >= 3,
        "events, snapshots, command_idempotency"
    );

    Migrator::down(&conn, None).await.expect("all down");
    assert_eq!(
        tables_in_public(&conn).await,
        0,
        "down leaves no table behind"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM pg_extension WHERE extname = 'postgis'"
        )
        .await,
        0,
        "down removes PostGIS"
    );
    assert_eq!(
        Migrator::get_applied_migrations(&conn)
            .await
            .expect("status")
            .len(),
        0
    );

    Migrator::up(&conn, None).await.expect("up again");
    conn.close().await.expect("close");
    assert_eq!(schema_of(&db), schema_of(&reference));
}

#[tokio::test]
async fn a_database_migrated_step_by_step_equals_one_migrated_at_once() {
    let _turn = MIGRATING.lock().await;
    let at_once = TestDatabase::empty().await;
    Migrator::up(&connect(&at_once).await, None)
        .await
        .expect("up");

    let stepwise = TestDatabase::empty().await;
    let conn = connect(&stepwise).await;
    let steps = Migrator::migrations().len();
    for step in 1..=steps {
        Migrator::up(&conn, Some(1)).await.expect("one step up");
        assert_eq!(
            Migrator::get_applied_migrations(&conn)
                .await
                .expect("status")
                .len(),
            step
        );
    }
    assert!(Migrator::get_pending_migrations(&conn)
        .await
        .expect("status")
        .is_empty());
    conn.close().await.expect("close");
    assert_eq!(schema_of(&stepwise), schema_of(&at_once));
}

#[tokio::test]
async fn each_step_reverses_on_its_own() {
    let _turn = MIGRATING.lock().await;
    let db = TestDatabase::empty().await;
    let conn = connect(&db).await;
    Migrator::install(&conn).await.expect("migration table");
    for _ in Migrator::migrations() {
        let before = schema_of(&db);
        Migrator::up(&conn, Some(1)).await.expect("one step up");
        Migrator::down(&conn, Some(1)).await.expect("one step down");
        assert_eq!(schema_of(&db), before, "a step's down undoes its up");
        Migrator::up(&conn, Some(1)).await.expect("step up again");
    }
}

#[tokio::test]
async fn the_event_store_fills_in_the_global_order_columns() {
    let db = TestDatabase::migrated().await;
    let conn = connect(&db).await;
    // Inserted the way postgres-es inserts: naming only its own columns.
    conn.execute_unprepared(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('building', 'a', 1, 'BuildingRegistered', '1', '{}', '{}'),
                ('building', 'b', 1, 'BuildingRegistered', '1', '{}', '{}')",
    )
    .await
    .expect("insert");
    assert_eq!(
        count(
            &conn,
            "SELECT count(DISTINCT position) FROM events WHERE transaction_id IS NOT NULL AND recorded_at IS NOT NULL"
        )
        .await,
        2
    );
    assert_eq!(
        count(&conn, "SELECT count(DISTINCT transaction_id) FROM events").await,
        1,
        "one transaction, one transaction id"
    );
    let duplicate = conn
        .execute_unprepared(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('building', 'a', 1, 'BuildingRegistered', '1', '{}', '{}')",
        )
        .await;
    assert!(
        duplicate.is_err(),
        "a second writer of the same sequence fails"
    );
    let roles = count(
        &conn,
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('authenticated', 'prism_app') AND NOT rolcanlogin",
    )
    .await;
    assert_eq!(roles, 2);
}
