//! Faults, each shown to have landed before its consequences are checked:
//!
//! - a worker killed with SIGKILL while a batch is provably open (the test hook
//!   `PRISM_TEST_HOLD_BATCH` holds it): the batch rolls back, the checkpoint stays, and
//!   a new worker applies everything exactly once;
//! - Redis flushed after details, list pages and the list generation were cached: the
//!   cached keys are gone, and reads answer fresh data and fill the cache again;
//! - an event no job announced: a running worker projects it through its backstop, and
//!   without the backstop nothing does;
//! - Redis killed while reads run: they keep answering from Postgres, and caching
//!   resumes once Redis is back.
//!
//! Afterwards, nothing is missing and the projections equal a fresh rebuild.

use std::path::PathBuf;
use std::time::Duration;

use projections::Projection;
use reqwest::Method;
use serde_json::{json, Value};
use testkit::{metric, PrivateRedis, TestNamespace};

use crate::helpers::{bodies, ApiRedis, System, ORG};

/// Each projection's checkpoint: (name, transaction id, position, events applied).
async fn checkpoints(system: &System) -> Vec<(String, String, i64, i64)> {
    sqlx::query_as(
        "SELECT name, transaction_id::text, position, events_applied
           FROM projection_checkpoints ORDER BY name",
    )
    .fetch_all(&system.pool)
    .await
    .expect("checkpoints")
}

fn marker_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("prism-{name}-{}", uuid::Uuid::new_v4().simple()))
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_nothing() {
    let mut system = System::start().await;
    // 20 buildings, applied and committed by a first worker.
    system.start_worker().await;
    for i in 0..20 {
        system
            .register(&bodies::building_at(&format!("Killed {i:02}"), 40.0, -73.0))
            .await;
    }
    system.wait_until_quiet(Duration::from_secs(30)).await;
    system.stop_worker().await;
    let committed = checkpoints(&system).await;
    assert_eq!(committed.len(), Projection::ALL.len());
    // 40 more wait in the log for a worker that holds its first batch open.
    for i in 20..60 {
        system
            .register(&bodies::building_at(&format!("Killed {i:02}"), 40.0, -73.0))
            .await;
    }
    let marker = marker_path("hold-batch");
    let marker_env = marker.to_string_lossy().into_owned();
    let worker = system.spawn_worker_process_with(
        25,
        &[
            ("PRISM_TEST_HOLD_BATCH", marker_env.as_str()),
            ("PRISM_TEST_HOLD_MS", "30000"),
        ],
    );
    // Each projection's batch has applied its 25 events and advanced its checkpoint,
    // and waits to commit.
    for projection in Projection::ALL {
        let path = PathBuf::from(format!("{marker_env}.{}", projection.name()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let held = loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if text.ends_with('\n') {
                    break text;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{projection}: no batch was held open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let _ = std::fs::remove_file(&path);
        assert!(held.starts_with("25 "), "{projection} held {held:?}");
    }
    // The open batches: sessions of this database, idle in a transaction, holding the
    // projections' advisory locks.
    let holders: Vec<i32> = sqlx::query_scalar(
        "SELECT coalesce(array_agg(DISTINCT a.pid), '{}')
           FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
          WHERE a.datname = current_database() AND a.state = 'idle in transaction'
            AND l.locktype = 'advisory' AND l.granted",
    )
    .fetch_one(&system.pool)
    .await
    .expect("open batches");
    assert!(
        holders.len() >= Projection::ALL.len(),
        "open batch sessions: {holders:?}"
    );

    worker.kill_9();

    // Postgres sees the client gone and rolls its transactions back. Without the kill
    // they would stay open for the hook's 30 s and then commit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alive: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                .bind(&holders)
                .fetch_one(&system.pool)
                .await
                .expect("sessions");
        if alive == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held batches' sessions outlived the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(system.count("SELECT count(*) FROM buildings").await, 20);
    assert_eq!(system.count("SELECT count(*) FROM audit_log").await, 20);
    assert_eq!(
        checkpoints(&system).await,
        committed,
        "the killed batches moved a checkpoint"
    );

    let _replacement = system.spawn_worker_process(25);
    system.wait_until_quiet(Duration::from_secs(30)).await;
    assert_eq!(system.count("SELECT count(*) FROM buildings").await, 60);
    assert_eq!(system.count("SELECT count(*) FROM audit_log").await, 60);
    assert_eq!(
        system
            .count("SELECT count(*) FROM buildings WHERE version <> 1")
            .await,
        0
    );
    // Applied once: every projection counted each of the 60 events once.
    for (name, _, _, applied) in checkpoints(&system).await {
        assert_eq!(applied, 60, "{name}");
    }
    system.assert_projections_equal_rebuild().await;
}

/// `prism_cache_requests_total` of the api for `view` and `outcome`.
async fn cache_lookups(system: &System, view: &str, outcome: &str) -> f64 {
    let (status, text) = system.get("/metrics").await;
    assert_eq!(status, 200);
    let text = text.as_str().expect("exposition").to_owned();
    metric(
        &text,
        &format!(r#"prism_cache_requests_total{{view="{view}",outcome="{outcome}"}}"#),
    )
    .unwrap_or(0.0)
}

fn redis_exists(url: &str, keys: &[String]) -> Vec<bool> {
    let mut connection = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("redis");
    keys.iter()
        .map(|key| {
            redis::cmd("EXISTS")
                .arg(key)
                .query::<i64>(&mut connection)
                .expect("EXISTS")
                == 1
        })
        .collect()
}

#[tokio::test]
async fn flushing_redis_loses_nothing_and_reads_come_back_fresh() {
    let redis = PrivateRedis::start();
    let mut system = System::start_with(TestNamespace::on(&redis.url), ApiRedis::Shared).await;
    system.start_worker().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            system
                .register(&bodies::building_at(
                    &format!("Flushed {i:02}"),
                    40.0,
                    -73.0,
                ))
                .await,
        );
    }
    system.wait_until_quiet(Duration::from_secs(30)).await;
    let detail = format!("/v1/buildings/{}", ids[0]);
    let list = "/v1/buildings?limit=100";

    // Cache a detail and a first list page (and so the organisation's list generation);
    // the second reads are hits.
    for _ in 0..2 {
        assert_eq!(system.get(&detail).await.0, 200);
        assert_eq!(system.get(list).await.0, 200);
    }
    assert_eq!(cache_lookups(&system, "building", "hit").await, 1.0);
    assert_eq!(cache_lookups(&system, "buildings", "hit").await, 1.0);
    let ns = system.namespace.name().to_owned();
    let cached: Vec<String> = system
        .namespace
        .keys()
        .into_iter()
        .filter(|key| {
            key.starts_with(&format!("{ns}:view:"))
                || *key == format!("{ns}:lists:generation:{ORG}")
        })
        .collect();
    let has = |part: &str| cached.iter().any(|key| key.contains(part));
    assert!(
        has(&format!(":building:{ORG}:{}", ids[0]))
            && has(&format!(":buildings:{ORG}:"))
            && has(":lists:generation:"),
        "detail, list page and list generation cached: {cached:?}"
    );

    redis.flushall();
    assert_eq!(
        redis_exists(&redis.url, &cached),
        vec![false; cached.len()],
        "the flush removed the cached views and the generation"
    );
    let misses = (
        cache_lookups(&system, "building", "miss").await,
        cache_lookups(&system, "buildings", "miss").await,
    );

    // Commands go on: the cached building changes, more arrive, Redis is flushed again
    // in the middle (the wake-up jobs go with it; the backstop delivers).
    let (status, _) = system
        .call(
            Method::PATCH,
            &detail,
            Some(&json!({"name": "Renamed after the flush"})),
        )
        .await;
    assert_eq!(status, 200);
    for i in 20..40 {
        system
            .register(&bodies::building_at(
                &format!("Flushed {i:02}"),
                40.0,
                -73.0,
            ))
            .await;
        if i == 25 {
            redis.flushall();
        }
    }
    system.wait_until_quiet(Duration::from_secs(30)).await;
    assert_eq!(system.count("SELECT count(*) FROM buildings").await, 40);

    // Fresh reads, from Postgres (misses), that fill the cache again.
    let (status, view) = system.get(&detail).await;
    assert_eq!(status, 200);
    assert_eq!(view["name"], json!("Renamed after the flush"));
    let (status, page) = system.get(list).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(40));
    assert!(cache_lookups(&system, "building", "miss").await > misses.0);
    assert!(cache_lookups(&system, "buildings", "miss").await > misses.1);
    let refilled = system.namespace.keys();
    assert!(
        refilled
            .iter()
            .any(|key| key.contains(&format!(":building:{ORG}:{}", ids[0])))
            && refilled
                .iter()
                .any(|key| key.contains(&format!(":buildings:{ORG}:"))),
        "the reads filled the cache again: {refilled:?}"
    );
    assert_eq!(system.get(&detail).await.1, view, "served from the cache");
    assert_eq!(cache_lookups(&system, "building", "hit").await, 2.0);
    system.assert_projections_equal_rebuild().await;
}

/// Appends a building registration straight to the log, as the event store would
/// (a copy of `template`'s registration under a new id), with no job to announce it.
async fn append_unannounced(system: &System, template: &str, name: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT aggregate_type, $2, 1, event_type, event_version,
                jsonb_set(payload::jsonb, '{BuildingRegistered,name}', to_jsonb($3::text))::json,
                metadata
           FROM events WHERE aggregate_id = $1",
    )
    .bind(template)
    .bind(&id)
    .bind(name)
    .execute(&system.pool)
    .await
    .expect("append");
    id
}

/// Catch-up jobs the in-process worker has run (`prism_jobs_total`, any outcome).
async fn jobs_run(system: &System) -> f64 {
    let url = format!(
        "http://127.0.0.1:{}/metrics",
        system.worker_port.expect("worker port")
    );
    testkit::catch_up_jobs_run(&system.client, &url).await
}

async fn projected(system: &System, id: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM buildings WHERE id::text = $1)")
        .bind(id)
        .fetch_one(&system.pool)
        .await
        .expect("projected")
}

#[tokio::test]
async fn a_running_worker_projects_an_unannounced_event_through_its_backstop() {
    let mut system = System::start().await;
    // The control: a worker whose backstop ticks once at start, then not for an hour.
    system
        .start_worker_with(&[("PROJECTION_BACKSTOP_MS", "3600000")])
        .await;
    let template = system
        .register(&bodies::building_at("Announced", 40.0, -73.0))
        .await;
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let first = append_unannounced(&system, &template, "Unannounced 1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !projected(&system, &first).await,
        "without the backstop nothing should project an event no job announced"
    );
    system.stop_worker().await;

    // A worker with its backstop every 250 ms; at start it finds the first one.
    system
        .start_worker_with(&[("PROJECTION_BACKSTOP_MS", "250")])
        .await;
    system.wait_until_quiet(Duration::from_secs(15)).await;
    assert!(projected(&system, &first).await);
    let jobs = jobs_run(&system).await;
    // It is running and idle; an event arrives that no job announces.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let appended_at = tokio::time::Instant::now();
    let second = append_unannounced(&system, &template, "Unannounced 2").await;
    while !projected(&system, &second).await {
        assert!(
            appended_at.elapsed() < Duration::from_secs(5),
            "the running worker's backstop did not project the event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(jobs_run(&system).await, jobs, "no job ran for it");
    system.wait_until_quiet(Duration::from_secs(15)).await;
    assert_eq!(system.count("SELECT count(*) FROM audit_log").await, 3);
    system.assert_projections_equal_rebuild().await;
}

#[tokio::test]
async fn reads_keep_answering_while_redis_dies_mid_run() {
    let mut redis = PrivateRedis::start();
    let mut system = System::start_with(TestNamespace::on(&redis.url), ApiRedis::Shared).await;
    system.start_worker().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            system
                .register(&bodies::building_at(&format!("Outage {i:02}"), 40.0, -73.0))
                .await,
        );
    }
    system.wait_until_quiet(Duration::from_secs(30)).await;
    let detail = format!("/v1/buildings/{}", ids[0]);
    let list = "/v1/buildings?limit=100";
    let check = |path: &str, status: reqwest::StatusCode, body: &Value, items: usize| {
        assert_eq!(status, 200, "{path}: {body}");
        if path == detail {
            assert_eq!(body["name"], json!("Outage 00"));
        } else {
            assert_eq!(body["items"].as_array().map(Vec::len), Some(items));
        }
    };
    // Cached, and served from Redis.
    for _ in 0..2 {
        for path in [detail.as_str(), list] {
            let (status, body) = system.get(path).await;
            check(path, status, &body, 10);
        }
    }
    let hits = cache_lookups(&system, "building", "hit").await;
    assert!(hits >= 1.0);
    let unavailable = cache_lookups(&system, "building", "unavailable").await;

    // Reads run for 3 s; Redis is killed after the first.
    let started = tokio::time::Instant::now();
    let mut killed = false;
    let mut slowest = Duration::ZERO;
    let mut reads = 0;
    while started.elapsed() < Duration::from_secs(3) {
        if !killed && started.elapsed() >= Duration::from_secs(1) {
            redis.stop();
            killed = true;
        }
        for path in [detail.as_str(), list] {
            let at = tokio::time::Instant::now();
            let (status, body) = system.get(path).await;
            slowest = slowest.max(at.elapsed());
            check(path, status, &body, 10);
            reads += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(killed);
    assert!(
        slowest < Duration::from_secs(2),
        "a read took {slowest:?} while Redis was down"
    );
    assert!(
        cache_lookups(&system, "building", "unavailable").await > unavailable,
        "no read found Redis down ({reads} reads)"
    );

    // Commands and reads go on without Redis: the backstop projects, reads answer
    // from Postgres.
    system
        .register(&bodies::building_at("Outage 10", 40.0, -73.0))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = system.get(list).await;
        assert_eq!(status, 200);
        if body["items"].as_array().map(Vec::len) == Some(11) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new building never showed while Redis was down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Redis is back (empty): caching resumes.
    redis.restart();
    let hits = cache_lookups(&system, "building", "hit").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = system.get(&detail).await;
        check(detail.as_str(), status, &body, 11);
        if cache_lookups(&system, "building", "hit").await > hits {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "caching did not resume after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    system.wait_until_quiet(Duration::from_secs(30)).await;
    system.assert_projections_equal_rebuild().await;
}
