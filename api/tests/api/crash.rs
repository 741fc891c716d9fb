//! `kill -9` of a `prism-api` process right after a commit: the wake-up job it would
//! have pushed after answering may never leave, yet the event is in the log and the
//! next catch-up (what the worker's backstop runs) projects it.

use std::time::Duration;

use migrations::testing::TestDatabase;
use projections::testing::TestNamespace;
use projections::{catch_up, CatchUpOptions, Projection};
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{building_body, token, ApiProcess};

#[tokio::test]
async fn an_api_killed_right_after_a_commit_loses_no_event() {
    let db = TestDatabase::migrated().await;
    let redis = TestNamespace::new();
    let mut api = ApiProcess::start(&db, redis.url(), redis.name(), &[]).await;
    let client = reqwest::Client::new();
    let base = api.base.clone();

    let reply = client
        .post(format!("{base}/v1/buildings"))
        .bearer_auth(token())
        .json(&building_body())
        .send()
        .await
        .expect("register");
    assert_eq!(reply.status(), StatusCode::CREATED);
    api.kill_9();

    let pool = PgPool::connect(db.url()).await.expect("pool");
    let options = CatchUpOptions::default();
    // Other tests' transactions on the server may hold the horizon back a moment.
    for _ in 0..500 {
        catch_up(&pool, Projection::CATALOG, &options)
            .await
            .expect("catalog");
        catch_up(&pool, Projection::AUDIT, &options)
            .await
            .expect("audit");
        let projected: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM buildings) + (SELECT count(*) FROM audit_log)",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        if projected == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the committed building never reached the projections");
}
