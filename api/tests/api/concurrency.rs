//! Optimistic concurrency: without `If-Match` concurrent changes are each decided on
//! the latest state; with the same `If-Match`, one wins and the others get 409.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Four renames of the building at `path`, sent together, each with `If-Match: 1`.
async fn renames_at_version_1(app: &TestApp, path: &str) -> Vec<Reply> {
    let updates = ["A", "B", "C", "D"].map(|name| {
        let body = json!({"name": name});
        async move {
            app.call_as(
                &token(),
                Method::PATCH,
                path,
                Some(&body),
                &[("if-match", "1")],
            )
            .await
        }
    });
    futures_util::future::join_all(updates).await
}

/// Exactly one rename won; every other answer is a version conflict.
fn assert_one_won(replies: &[Reply]) {
    let won = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(won, 1);
    for lost in replies.iter().filter(|r| r.status != StatusCode::OK) {
        lost.assert_problem(409, "version-conflict");
    }
}

#[tokio::test]
async fn concurrent_changes_without_if_match_all_apply_in_turn() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let path = format!("/v1/buildings/{building}");
    let names = ["A", "B", "C", "D"];
    let updates = names.iter().map(|name| {
        let body = json!({"name": name});
        let path = path.clone();
        let app = &app;
        async move { app.call(Method::PATCH, &path, Some(&body)).await }
    });
    let replies = futures_util::future::join_all(updates).await;
    let mut versions: Vec<u64> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{:#}", r.body);
            r.version()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, [2, 3, 4, 5]);
    let sequences: Vec<i64> = app.events_of(&building).await.iter().map(|e| e.1).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5], "no gap, no duplicate");
}

#[tokio::test]
async fn with_the_same_if_match_only_one_writer_wins() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let path = format!("/v1/buildings/{building}");
    let replies = renames_at_version_1(&app, &path).await;
    assert_one_won(&replies);
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn a_command_that_loses_its_race_takes_no_other_command_down() {
    // Commands deciding at the same moment are committed together; a loser among them
    // (a stale If-Match that only the database catches) must not fail the others.
    let app = spawn_app().await;
    let building = app.register_building().await;
    let path = format!("/v1/buildings/{building}");
    let registrations = (0..24).map(|_| {
        let app = &app;
        async move {
            app.call(Method::POST, "/v1/buildings", Some(&bodies::building()))
                .await
        }
    });
    let (registered, updated) = tokio::join!(
        futures_util::future::join_all(registrations),
        renames_at_version_1(&app, &path)
    );
    for reply in &registered {
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    }
    assert_one_won(&updated);
    assert_eq!(app.event_count().await, 1 + 24 + 1);
}

#[tokio::test]
async fn a_detail_s_etag_is_the_if_match_of_its_next_change() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let path = format!("/v1/buildings/{building}");
    project_until(&app.pool, || async {
        app.call(Method::GET, &path, None).await.status == StatusCode::OK
    })
    .await;
    let read = app.call(Method::GET, &path, None).await;
    let etag = read.header("etag").expect("etag").to_owned();
    assert!(etag.starts_with("\"1-"), "{etag}");
    // The tag read is accepted as If-Match…
    let renamed = app
        .call_as(
            &token(),
            Method::PATCH,
            &path,
            Some(&json!({"name": "A"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:#}", renamed.body);
    assert_eq!(renamed.version(), 2);
    // …and once the building changed, the same tag is a conflict naming the version.
    let stale = app
        .call_as(
            &token(),
            Method::PATCH,
            &path,
            Some(&json!({"name": "B"})),
            &[("if-match", &etag)],
        )
        .await;
    stale.assert_problem(409, "version-conflict");
    assert_eq!(stale.body["current_version"], 2);
}
