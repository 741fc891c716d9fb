//! The worker's `/metrics`: queue-depth gauges follow jobs pushed and consumed, jobs
//! are counted by outcome, and projection position and lag are reported.

use std::time::Duration;

use projections::cache::RedisLink;
use reqwest::StatusCode;
use testkit::metric as value;
use worker::metrics::WorkerMetrics;

use crate::helpers::*;

#[tokio::test]
async fn queue_depth_follows_jobs_pushed_and_consumed() {
    let mut system = System::start().await;
    // No worker yet: the first command's wake-up job waits in the queue, and covers
    // the commands after it (one queued wake-up per burst).
    for n in 0..3 {
        system
            .register(&bodies::building_at(&format!("Tower {n}"), 40.75, -73.98))
            .await;
    }
    let sampler = WorkerMetrics::new();
    let redis = RedisLink::new(system.redis_url.clone(), Duration::from_secs(2));
    let queues = [(
        "projections",
        projections::jobs::catch_up_queue(system.namespace.name()),
    )];
    let pending = r#"prism_queue_jobs{queue="projections",state="pending"}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        sampler.sample(&redis, &system.pool, &queues).await;
        let text = sampler.render();
        if value(&text, pending) == Some(1.0) {
            assert_eq!(
                value(
                    &text,
                    r#"prism_queue_jobs{queue="projections",state="running"}"#
                ),
                Some(0.0)
            );
            assert_eq!(
                value(
                    &text,
                    r#"prism_projection_lag_events{projection="catalog"}"#
                ),
                Some(3.0),
                "{text}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "one pending job expected: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A worker consumes them; its own /metrics shows the queue drained.
    system.start_worker().await;
    let url = format!(
        "http://127.0.0.1:{}/metrics",
        system.worker_port.expect("worker port")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = system.client.get(&url).send().await.expect("scrape");
        assert_eq!(reply.status(), StatusCode::OK);
        let text = reply.text().await.expect("text");
        let drained = value(&text, pending) == Some(0.0)
            && value(
                &text,
                r#"prism_jobs_total{queue="projections",outcome="ok"}"#,
            )
            .is_some_and(|n| n >= 1.0)
            && value(
                &text,
                r#"prism_projection_lag_events{projection="catalog"}"#,
            ) == Some(0.0);
        if drained {
            assert_eq!(
                value(&text, r#"prism_projection_position{projection="catalog"}"#),
                value(&text, r#"prism_projection_position{projection="audit"}"#)
            );
            assert!(
                value(&text, r#"prism_projection_position{projection="catalog"}"#)
                    .is_some_and(|p| p >= 3.0),
                "{text}"
            );
            assert!(text
                .contains("prism_job_duration_seconds_bucket{queue=\"projections\",le=\"0.005\"}"));
            assert!(text.contains("process_resident_memory_bytes"));
            assert_eq!(
                value(&text, r#"prism_projection_failing{projection="catalog"}"#),
                Some(0.0)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue did not drain: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn production_scrapes_need_the_scrape_token() {
    const TOKEN: &str = "n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0aF";
    let mut system = System::start().await;
    system
        .start_worker_with(&[("ENV", "production"), ("METRICS_SCRAPE_TOKEN", TOKEN)])
        .await;
    let url = format!(
        "http://127.0.0.1:{}/metrics",
        system.worker_port.expect("worker port")
    );
    let scrape = |token: Option<&str>| {
        let mut request = system.client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for refused in [None, Some("n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0aX"), Some("")] {
        let status = scrape(refused).await.expect("scrape").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}");
    }
    let reply = scrape(Some(TOKEN)).await.expect("scrape");
    assert_eq!(reply.status(), StatusCode::OK);
    // A series rendered at every scrape (the queue gauges wait for the first sample).
    assert!(reply
        .text()
        .await
        .expect("text")
        .contains("process_resident_memory_bytes"));
}

#[tokio::test]
async fn worker_readiness_needs_the_migrations_it_was_built_with() {
    let mut system = System::start().await;
    system.start_worker().await;
    let url = format!(
        "http://127.0.0.1:{}/ready",
        system.worker_port.expect("worker port")
    );
    let ready = || async {
        system
            .client
            .get(&url)
            .send()
            .await
            .expect("ready")
            .status()
    };
    assert_eq!(ready().await, StatusCode::OK);
    // Ahead of this build (a rolling deploy's newer migration): still ready.
    sqlx::query(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000001_future', 0)",
    )
    .execute(&system.pool)
    .await
    .expect("a newer migration");
    assert_eq!(ready().await, StatusCode::OK);
    // Missing one it needs: not ready.
    sqlx::query("DELETE FROM seaql_migrations WHERE version = 'm20261124_000005_roles'")
        .execute(&system.pool)
        .await
        .expect("forget a migration");
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
}
