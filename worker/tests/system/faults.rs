//! Faults: a worker killed with SIGKILL in the middle of its batches, and Redis flushed
//! while commands flow. Afterwards, nothing is missing and the projections equal a
//! fresh rebuild.

use std::time::Duration;

use projections::testing::PrivateRedis;

use crate::helpers::{building_body, System};

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_nothing() {
    let system = System::start().await;
    let worker = system.spawn_worker_process(3);
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(
            system
                .register(&building_body(&format!("Killed {i:02}"), 40.0, -73.0))
                .await,
        );
        if i == 30 {
            // In the middle of the flow, with small batches in hand.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    worker.kill_9();
    let applied_before_restart = system.count("SELECT count(*) FROM buildings").await;
    let _replacement = system.spawn_worker_process(3);
    system.wait_until_quiet(Duration::from_secs(30)).await;
    assert_eq!(system.count("SELECT count(*) FROM buildings").await, 60);
    assert_eq!(system.count("SELECT count(*) FROM audit_log").await, 60);
    assert!(applied_before_restart <= 60);
    system.assert_projections_equal_rebuild().await;
}

#[tokio::test]
async fn flushing_redis_while_commands_flow_loses_nothing() {
    let redis = PrivateRedis::start();
    let mut system = System::start_with(
        projections::testing::TestNamespace::on(&redis.url),
        crate::helpers::ApiRedis::Shared,
    )
    .await;
    system.start_worker().await;
    for i in 0..40 {
        system
            .register(&building_body(&format!("Flushed {i:02}"), 40.0, -73.0))
            .await;
        if i % 10 == 5 {
            redis.flushall();
        }
    }
    system.wait_until_quiet(Duration::from_secs(30)).await;
    assert_eq!(system.count("SELECT count(*) FROM buildings").await, 40);
    let (status, page) = system.get("/v1/buildings?limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(40),
        "lists are fresh after the flush"
    );
    system.assert_projections_equal_rebuild().await;
}
