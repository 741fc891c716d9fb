//! Read-your-writes on every read: a command's answer carries the global `position` of
//! its last event, and every read given it as `min_position` waits for the read side
//! to reflect it — or says `Projection-Lagging: true`. The tests run no worker: the
//! read models move only when a test catches them up, so "not yet projected" is a
//! state a test holds for as long as it likes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    bodies, project_until, spawn_app, token_with_scopes, Reply, TestApp, ORG, USER,
};

/// The position of an aggregate's last event, as the store has it.
async fn last_position(app: &TestApp, aggregate_id: &str) -> u64 {
    let position: i64 = sqlx::query_scalar(
        "SELECT position FROM events WHERE aggregate_id = $1 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(aggregate_id)
    .fetch_one(&app.pool)
    .await
    .expect("position");
    position as u64
}

fn position(reply: &Reply) -> u64 {
    reply.body["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("a position in {:#}", reply.body))
}

/// A read by a user who may read everything (the audit log needs its own scope).
async fn read(app: &TestApp, path: &str) -> Reply {
    let token = token_with_scopes(ORG, USER, &["buildings:read", "comps:read", "audit:read"]);
    app.call_as(&token, Method::GET, path, None, &[]).await
}

async fn catch_up(app: &TestApp) {
    project_until(&app.pool, || async { true }).await;
}

#[tokio::test]
async fn every_command_answers_with_the_position_of_its_last_event() {
    let app = spawn_app().await;
    let registered = app
        .call(Method::POST, "/v1/buildings", Some(&bodies::building()))
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:#}",
        registered.body
    );
    let building = registered.id();
    assert_eq!(position(&registered), last_position(&app, &building).await);

    let comp = app
        .call(
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&building)),
        )
        .await;
    let comp_id = comp.id();
    assert_eq!(position(&comp), last_position(&app, &comp_id).await);
    assert!(position(&comp) > position(&registered));

    // A change, then the same change again: nothing to append, so the answer names
    // the position of the event that made the current version.
    let rename = json!({ "name": "Renamed Tower" });
    let path = format!("/v1/buildings/{building}");
    let changed = app.call(Method::PATCH, &path, Some(&rename)).await;
    assert_eq!(changed.status, StatusCode::OK, "{:#}", changed.body);
    assert_eq!(position(&changed), last_position(&app, &building).await);
    assert!(position(&changed) > position(&comp));
    let unchanged = app.call(Method::PATCH, &path, Some(&rename)).await;
    assert_eq!(unchanged.version(), changed.version());
    assert_eq!(position(&unchanged), position(&changed));

    // A keyed retry is answered with its first result, position included, even after
    // other events were appended.
    let key = [("Idempotency-Key", "rw-retry-1")];
    let token = crate::helpers::token();
    let archive = json!({ "reason": "sold" });
    let archive_path = format!("/v1/buildings/{building}/archive");
    let first = app
        .call_as(&token, Method::POST, &archive_path, Some(&archive), &key)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    app.register_building().await;
    let retried = app
        .call_as(&token, Method::POST, &archive_path, Some(&archive), &key)
        .await;
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));
    assert_eq!(position(&retried), position(&first));
    assert_eq!(position(&first), last_position(&app, &building).await);
}

/// Every read that takes `min_position`, for one building and its comp.
fn reads(building: &str, second: &str, comp: &str, position: u64) -> Vec<String> {
    vec![
        format!("/v1/buildings/{building}?min_position={position}"),
        format!("/v1/buildings?ids={building},{second}&min_position={position}"),
        format!("/v1/buildings/{building}/history?min_position={position}"),
        format!("/v1/comps/{comp}?min_position={position}"),
        format!("/v1/comps?building_id={building}&min_position={position}"),
        format!("/v1/market/stats?min_position={position}"),
        format!("/v1/audit?aggregate_id={comp}&min_position={position}"),
    ]
}

#[tokio::test]
async fn every_read_given_a_position_waits_until_it_reflects_the_write() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    catch_up(&app).await;
    // The building's detail is read and cached before the comp: comp_count 0.
    let detail = format!("/v1/buildings/{building}");
    let before = app.call(Method::GET, &detail, None).await;
    assert_eq!(before.body["comp_stats"]["comp_count"], json!(0));

    // Then a second building and the comp, neither projected yet.
    let second = app.register_building().await;
    let recorded = app
        .call(
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&building)),
        )
        .await;
    let comp = recorded.id();
    let at = position(&recorded);

    // Every read starts before the read side has the comp, and the read side catches
    // up 300 ms later: each must have waited for it.
    let pending = futures_util::future::join_all(
        reads(&building, &second, &comp, at)
            .into_iter()
            .map(|path| async { (read(&app, &path).await, path) }),
    );
    let late_catch_up = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        catch_up(&app).await;
    };
    let started = std::time::Instant::now();
    let (answers, ()) = tokio::join!(pending, late_catch_up);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the reads did not wait for the catch-up"
    );
    for (reply, path) in &answers {
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:#}", reply.body);
        assert_eq!(reply.header("projection-lagging"), None, "{path}");
    }
    let body = |i: usize| &answers[i].0.body;
    assert_eq!(body(0)["comp_stats"]["comp_count"], json!(1), "detail");
    let listed = body(1)["items"].as_array().expect("building list");
    assert_eq!(listed.len(), 2, "both buildings: {listed:?}");
    let history = body(2)["items"].as_array().expect("history");
    assert_eq!(history.len(), 1, "the building's own event: {history:?}");
    assert_eq!(body(3)["id"], json!(comp), "comp detail");
    assert_eq!(body(4)["items"][0]["id"], json!(comp), "comp list");
    assert_eq!(body(5)["items"][0]["lease_count"], json!(1), "market stats");
    assert_eq!(body(6)["items"][0]["aggregate_id"], json!(comp), "audit");

    // The cache: a second comp, projected (the tests run no worker, so nothing tells
    // the cache). Without `min_position` the cached detail is the old one; with it,
    // the read goes past the cache to the projection.
    let again = app
        .call(
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&building)),
        )
        .await;
    catch_up(&app).await;
    let cached = read(&app, &detail).await;
    assert_eq!(cached.body["comp_stats"]["comp_count"], json!(1));
    let fresh = read(&app, &format!("{detail}?min_position={}", position(&again))).await;
    assert_eq!(fresh.body["comp_stats"]["comp_count"], json!(2));
    assert_eq!(fresh.header("projection-lagging"), None);
}

#[tokio::test]
async fn a_read_the_read_side_cannot_reflect_in_time_says_it_lags() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let comp = app.record_lease(&building).await;
    catch_up(&app).await;
    let later = app
        .call(
            Method::PATCH,
            &format!("/v1/buildings/{building}"),
            Some(&json!({ "name": "Renamed Tower" })),
        )
        .await;
    let at = position(&later);

    // Nothing catches up: each read waits its 2 s and answers what there is.
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all(
        reads(&building, &building, &comp, at)
            .into_iter()
            .map(|path| async { (read(&app, &path).await, path) }),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    for (reply, path) in &answers {
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:#}", reply.body);
        assert_eq!(reply.header("projection-lagging"), Some("true"), "{path}");
    }
    assert_ne!(answers[0].0.body["name"], json!("Renamed Tower"));

    // The copy the client holds is the lagging one: still a 200 that says it lags, not
    // a 304 that would call the old copy current.
    let etag = answers[0].0.header("etag").expect("an ETag").to_owned();
    let token = token_with_scopes(ORG, USER, &["buildings:read"]);
    let revalidated = app
        .call_as(
            &token,
            Method::GET,
            &format!("/v1/buildings/{building}?min_position={at}"),
            None,
            &[("If-None-Match", etag.as_str())],
        )
        .await;
    assert_eq!(revalidated.status, StatusCode::OK);
    assert_eq!(revalidated.header("projection-lagging"), Some("true"));

    // A position already reflected answers at once, and says nothing.
    catch_up(&app).await;
    let caught_up = app
        .call(
            Method::GET,
            &format!("/v1/buildings/{building}?min_position={at}"),
            None,
        )
        .await;
    assert_eq!(caught_up.body["name"], json!("Renamed Tower"));
    assert_eq!(caught_up.header("projection-lagging"), None);
}
