//! `as_of`: a building or a comp as it was at an instant, folded from the event log by
//! the catalog's own projector into tables that last one transaction.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{project_until, spawn_app, token_for, OTHER_ORG, USER};

fn instant(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_detail_as_of_an_instant_is_the_aggregate_as_it_was_then() {
    let app = spawn_app().await;
    let before_all = Utc::now();
    pause().await;
    let building = app.register_building().await;
    let comp = app.record_lease(&building).await;
    pause().await;
    let then = Utc::now();
    pause().await;
    let renamed = json!({ "name": "Renamed Tower" });
    let changed = app
        .call(
            Method::PATCH,
            &format!("/v1/buildings/{building}"),
            Some(&renamed),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    let amended = app
        .call(
            Method::PATCH,
            &format!("/v1/comps/{comp}"),
            Some(&json!({ "tenant": "Initech" })),
        )
        .await;
    assert_eq!(amended.status, StatusCode::OK, "{:#}", amended.body);
    let second = app.record_lease(&building).await;
    project_until(&app.pool, || async { true }).await;

    let get = |path: String| {
        let app = &app;
        async move { app.call(Method::GET, &path, None).await }
    };
    // The live statistics, to compare after the history reads.
    let statistics = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT (SELECT coalesce(json_agg(s ORDER BY building_id), '[]')::text
                       FROM building_comp_stats s)
                 || (SELECT coalesce(json_agg(m ORDER BY quarter_start), '[]')::text
                       FROM market_stats m)",
        )
        .fetch_one(&app.pool)
        .await
        .expect("statistics")
    };
    let live_statistics = statistics().await;
    let at_then = get(format!("/v1/buildings/{building}?as_of={}", instant(then))).await;
    assert_eq!(at_then.status, StatusCode::OK, "{:#}", at_then.body);
    assert_eq!(at_then.body["name"], json!("One Vanderbilt"));
    assert_eq!(at_then.body["version"], json!(1));
    assert_eq!(at_then.body["comp_stats"]["comp_count"], json!(1));

    // The present, from the log, is what the projection shows: one fold for both.
    let live = get(format!("/v1/buildings/{building}")).await;
    assert_eq!(live.body["name"], json!("Renamed Tower"));
    assert_eq!(live.body["comp_stats"]["comp_count"], json!(2));
    let now = get(format!(
        "/v1/buildings/{building}?as_of={}",
        instant(Utc::now())
    ))
    .await;
    assert_eq!(now.body, live.body);
    assert_eq!(now.header("etag"), live.header("etag"));

    let comp_then = get(format!("/v1/comps/{comp}?as_of={}", instant(then))).await;
    assert_eq!(comp_then.body["lease"]["tenant"], json!("Globex"));
    let comp_now = get(format!("/v1/comps/{comp}?as_of={}", instant(Utc::now()))).await;
    assert_eq!(comp_now.body["lease"]["tenant"], json!("Initech"));
    assert_eq!(comp_now.body, get(format!("/v1/comps/{comp}")).await.body);

    // Before it existed: 404, for the building and for the comp recorded later.
    let before = get(format!(
        "/v1/buildings/{building}?as_of={}",
        instant(before_all)
    ))
    .await;
    before.assert_problem(404, "not-found");
    let not_yet = get(format!("/v1/comps/{second}?as_of={}", instant(then))).await;
    not_yet.assert_problem(404, "not-found");

    // Another organisation sees nothing of it, at any instant.
    let stranger = app
        .call_as(
            &token_for(OTHER_ORG, USER),
            Method::GET,
            &format!("/v1/buildings/{building}?as_of={}", instant(Utc::now())),
            None,
            &[],
        )
        .await;
    stranger.assert_problem(404, "not-found");

    // The fold left the live tables as they were.
    let after: Value = get(format!("/v1/buildings/{building}?min_position=1"))
        .await
        .body;
    assert_eq!(after["name"], json!("Renamed Tower"));
    assert_eq!(after["comp_stats"]["comp_count"], json!(2));
    assert_eq!(statistics().await, live_statistics);

    // It reads the log itself: waits for the read side and embeddings do not go with it.
    let mixed = get(format!(
        "/v1/buildings/{building}?as_of={}&min_position=1",
        instant(then)
    ))
    .await;
    assert_eq!(
        mixed.assert_problem(400, "malformed-request"),
        ["as_of", "min_position"]
    );
    let expanded = get(format!(
        "/v1/comps/{comp}?as_of={}&expand=building",
        instant(then)
    ))
    .await;
    assert_eq!(
        expanded.assert_problem(400, "malformed-request"),
        ["as_of", "expand"]
    );
}
