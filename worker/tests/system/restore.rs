//! A database whose transaction counter is behind a checkpoint or the log — a dump
//! restored into another Postgres cluster — would have new events sort before the
//! checkpoints and never be delivered. The worker refuses to start on one, naming what
//! is ahead and the runbook section; a rebuild, the runbook's way out, replaces an
//! ahead checkpoint, but refuses while the log itself is ahead (it would read nothing).
//! `make restore-drill` does the whole restore for real (scripts/restore-drill.sh).

use std::process::Output;
use std::time::Duration;

use projections::deliverable::RUNBOOK;
use projections::Projection;

use crate::helpers::*;

/// Runs `prism-worker ARGS` with the system's settings; panics if it has not exited
/// after `timeout` (a worker that does not refuse would serve forever).
fn prism_worker(system: &System, args: &[&str], timeout: Duration) -> Output {
    let mut child = system
        .worker_command(args)
        .spawn()
        .expect("prism-worker starts");
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait().expect("prism-worker's status").is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("prism-worker's output");
            panic!(
                "prism-worker {args:?} still running after {timeout:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("prism-worker's output")
}

/// An id `by` transactions past the counter: one this database has not handed out.
const AHEAD: &str = "(pg_snapshot_xmax(pg_current_snapshot())::text::bigint + $1)::text::xid8";

#[tokio::test]
async fn the_worker_refuses_to_start_while_a_checkpoint_or_the_log_is_ahead_of_the_transaction_counter(
) {
    let system = System::start().await;
    let building = system
        .register(&bodies::building_at("Restored Tower", 40.75, -73.98))
        .await;
    system.record_lease(&building).await;
    system.catch_up_now().await;
    let live = system.read_models().await;
    drop(
        system
            .build_worker()
            .await
            .expect("nothing is ahead: it starts"),
    );

    // The catalog's checkpoint a million transactions past the counter, as a restore
    // into a cluster that is behind leaves it.
    let ahead: String = sqlx::query_scalar(&format!(
        "UPDATE projection_checkpoints SET transaction_id = {AHEAD}
          WHERE name = 'catalog' RETURNING transaction_id::text"
    ))
    .bind(1_000_000i64)
    .fetch_one(&system.pool)
    .await
    .expect("checkpoint moved ahead");
    let refused = system
        .build_worker()
        .await
        .expect_err("a checkpoint ahead of the counter: it refuses");
    assert!(
        refused.contains("prism-worker refuses to start"),
        "{refused}"
    );
    assert!(
        refused.contains(&format!(
            "the checkpoint of catalog is at transaction id {ahead}"
        )),
        "{refused}"
    );
    assert!(refused.contains("never be delivered"), "{refused}");
    assert!(refused.contains(RUNBOOK), "{refused}");
    assert!(!refused.contains("the log's newest event"), "{refused}");
    assert!(!refused.contains("checkpoint of audit"), "{refused}");

    // The binary exits non-zero with the same message.
    let output = prism_worker(&system, &["run"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("prism-worker refuses to start"), "{stderr}");
    assert!(stderr.contains(RUNBOOK), "{stderr}");

    // The runbook's way out for a checkpoint: a rebuild replaces it (the log is not
    // ahead, so the rebuild reads it all), and the worker starts again.
    let output = prism_worker(
        &system,
        &["rebuild", Projection::CATALOG.name()],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("swapped"), "{stdout}");
    assert_eq!(system.read_models().await, live, "the rebuild lost nothing");
    drop(
        system
            .build_worker()
            .await
            .expect("the rebuilt checkpoint is behind the counter: it starts"),
    );

    // The log ahead: an event stamped with an id the database has not handed out. No
    // reader can read it — the worker refuses, and so does a rebuild, which would read
    // nothing and swap in tables without it.
    sqlx::query(&format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, transaction_id)
         SELECT aggregate_type, gen_random_uuid()::text, 1, event_type, event_version, payload,
                metadata, {AHEAD}
           FROM events WHERE aggregate_id = $2 AND sequence = 1"
    ))
    .bind(2_000_000i64)
    .bind(&building)
    .execute(&system.pool)
    .await
    .expect("an event ahead of the counter");
    let refused = system
        .build_worker()
        .await
        .expect_err("the log ahead of the counter: it refuses");
    assert!(
        refused.contains("the log's newest event has transaction id"),
        "{refused}"
    );
    assert!(refused.contains(RUNBOOK), "{refused}");
    let output = prism_worker(
        &system,
        &["rebuild", Projection::AUDIT.name()],
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("prism-worker refuses to rebuild"),
        "{stderr}"
    );
    assert!(stderr.contains(RUNBOOK), "{stderr}");
}
