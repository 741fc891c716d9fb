//! Costs that must not grow, counted rather than timed: a read served from the cache
//! sends Postgres nothing, a command creating a resource sends it one statement, and a
//! burst of commands queues one wake-up job for the worker, not one per command.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use testkit::StatementCounter;

use crate::helpers::{project_until, spawn_app, spawn_app_counted};

#[tokio::test]
async fn a_cached_read_sends_postgres_nothing() {
    let counter = StatementCounter::start("127.0.0.1:5432").await;
    let app = spawn_app_counted(&counter).await;
    let building = app.register_building().await;
    let pool = app.pool.clone();
    project_until(&app.pool, || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM buildings")
            .fetch_one(&pool)
            .await
            .expect("count")
            == 1
    })
    .await;
    let detail = format!("/v1/buildings/{building}");
    // The first reads miss and fill the cache.
    assert_eq!(
        app.call(Method::GET, &detail, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(Method::GET, "/v1/buildings", None).await.status,
        StatusCode::OK
    );

    counter.reset();
    for _ in 0..10 {
        let read = app.call(Method::GET, &detail, None).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.body["id"], building.as_str());
        let page = app.call(Method::GET, "/v1/buildings", None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
    }
    assert_eq!(
        counter.count(),
        0,
        "cached reads sent statements to Postgres"
    );

    // The counter does see the app's reads: a page not cached yet goes to Postgres.
    let uncached = app.call(Method::GET, "/v1/buildings?limit=7", None).await;
    assert_eq!(uncached.status, StatusCode::OK);
    assert!(counter.count() > 0, "the uncached read was not counted");
}

#[tokio::test]
async fn a_command_creating_a_resource_sends_one_statement() {
    let counter = StatementCounter::start("127.0.0.1:5432").await;
    let app = spawn_app_counted(&counter).await;
    app.register_building().await;
    counter.reset();
    app.register_building().await;
    assert_eq!(
        counter.count(),
        1,
        "a register appends its event in one statement, with nothing to load"
    );
}

#[tokio::test]
async fn commands_arriving_together_are_appended_together() {
    let counter = StatementCounter::start("127.0.0.1:5432").await;
    let app = spawn_app_counted(&counter).await;
    app.register_building().await;
    counter.reset();
    let commands = 64;
    let replies = futures_util::future::join_all((0..commands).map(|_| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/v1/buildings",
                Some(&crate::helpers::bodies::building()),
            )
            .await
        }
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    }
    // One statement per command appended alone; commands that finish deciding while
    // a group is written go into the next one.
    let statements = counter.count();
    assert!(
        statements < commands,
        "{statements} statements for {commands} concurrent commands"
    );
}

/// Wake-up jobs waiting in the app's catch-up queue (apalis-redis keys).
async fn queued_wake_ups(app: &crate::helpers::TestApp) -> i64 {
    let (namespace, url) = app.redis();
    let queue = projections::jobs::catch_up_queue(namespace);
    let mut redis = redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let scheduled: i64 = redis::cmd("ZCARD")
        .arg(format!("{queue}:scheduled"))
        .query_async(&mut redis)
        .await
        .expect("ZCARD");
    let active: i64 = redis::cmd("LLEN")
        .arg(format!("{queue}:active"))
        .query_async(&mut redis)
        .await
        .expect("LLEN");
    scheduled + active
}

#[tokio::test]
async fn a_burst_of_commands_queues_one_wake_up() {
    let app = spawn_app().await;
    for _ in 0..40 {
        app.register_building().await;
    }
    // Pushes leave after the answers: wait until the first is queued, then a moment
    // for any others.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while queued_wake_ups(&app).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no wake-up was queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.event_count().await, 40);
    assert_eq!(
        queued_wake_ups(&app).await,
        1,
        "40 commands with no worker running queue one wake-up"
    );
}
