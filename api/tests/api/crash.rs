//! `kill -9` of a `prism-api` process between a command's commit and its answer. The
//! api runs with the test hook `PRISM_TEST_HOLD_AFTER_COMMIT` (inert unless set): once
//! a command's events have committed, it writes a marker file and waits before it
//! wakes the worker and answers. The test kills it then, so the kill provably lands
//! between the commit and the response, and before any wake-up job:
//!
//! - the client gets no response (its connection breaks; it does not time out);
//! - the event is in the log;
//! - a running worker projects it through its backstop — no job ran;
//! - a retry with the same `Idempotency-Key`, against a restarted api, answers the
//!   original result and appends nothing.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use sqlx::PgPool;
use testkit::{catch_up_jobs_run as jobs_run, TestDatabase, TestNamespace};

use crate::helpers::{api_process, bodies, token, worker_process};

/// How long the hooked api holds its answer: far longer than the test waits for the
/// broken connection after the kill.
const HOLD_MS: &str = "10000";

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn an_api_killed_between_commit_and_response_loses_nothing() {
    let db = TestDatabase::migrated().await;
    let redis = TestNamespace::new();
    let pool = PgPool::connect(db.url()).await.expect("pool");
    let client = reqwest::Client::new();
    // A real worker (job queue, backstop every 300 ms) and its `/metrics`.
    let worker = worker_process(
        db.url(),
        redis.url(),
        redis.name(),
        &[
            ("DATABASE_MAX_CONNECTIONS", "5"),
            ("PROJECTION_BACKSTOP_MS", "300"),
            ("JOB_POLL_MS", "20"),
            ("METRICS_SAMPLE_MS", "100"),
        ],
    )
    .await;
    let metrics = format!("{}/metrics", worker.base());
    let jobs_before = jobs_run(&client, &metrics).await;

    let marker: PathBuf =
        std::env::temp_dir().join(format!("prism-hold-commit-{}", uuid::Uuid::new_v4()));
    let marker_env = marker.to_string_lossy().into_owned();
    let mut api = api_process(
        db.url(),
        redis.url(),
        redis.name(),
        &[
            ("PRISM_TEST_HOLD_AFTER_COMMIT", marker_env),
            ("PRISM_TEST_HOLD_MS", HOLD_MS.to_owned()),
        ],
    )
    .await;
    let register = {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let url = format!("{}/v1/buildings", api.base);
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token())
                .header("Idempotency-Key", "killed-1")
                .json(&bodies::building())
                .send()
                .await
        })
    };

    // The hook's marker: the command's events committed and the api is holding its
    // answer (and its wake-up job).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !marker.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the api never reached the point between commit and response"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = std::fs::remove_file(&marker);
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 1);
    assert!(
        !register.is_finished(),
        "the client was answered before the kill"
    );

    let killed_at = tokio::time::Instant::now();
    api.kill_9();
    let outcome = register.await.expect("the request task");
    let error = outcome.expect_err("the client must get no response from a killed api");
    assert!(
        !error.is_timeout() && killed_at.elapsed() < Duration::from_secs(5),
        "the connection should break at the kill, not time out: {error}"
    );
    let id: String = sqlx::query_scalar("SELECT aggregate_id FROM events")
        .fetch_one(&pool)
        .await
        .expect("the committed event");

    // The worker, already running, projects it: no job announced it, so its backstop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let projected = count(
            &pool,
            "SELECT (SELECT count(*) FROM buildings) + (SELECT count(*) FROM audit_log)",
        )
        .await;
        if projected == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never projected the committed building"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        jobs_run(&client, &metrics).await,
        jobs_before,
        "a catch-up job ran: the kill should have come before the wake-up"
    );

    // The client retries against a new api: the first result, nothing appended.
    let api = api_process(db.url(), redis.url(), redis.name(), &[]).await;
    let retry = client
        .post(format!("{}/v1/buildings", api.base))
        .bearer_auth(token())
        .header("Idempotency-Key", "killed-1")
        .json(&bodies::building())
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let body: serde_json::Value = retry.json().await.expect("json");
    assert_eq!(body["id"], serde_json::json!(id));
    assert_eq!(body["version"], serde_json::json!(1));
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 1);
    let detail = client
        .get(format!("{}/v1/buildings/{id}?min_version=1", api.base))
        .bearer_auth(token())
        .send()
        .await
        .expect("detail");
    assert_eq!(detail.status(), StatusCode::OK);
    assert!(detail.headers().get("projection-lagging").is_none());

    drop(worker);
}
