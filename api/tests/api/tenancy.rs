//! Scopes and organisations: with `STRICT_CLERK_SCOPES=true` every endpoint refuses a
//! token without its scope (403, nothing appended); members without strict scopes read
//! and write but never read the audit log or administer projections; another
//! organisation's resources are 404 and never listed; and row-level security hides
//! them even from a query that forgets its organisation filter.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const ALL: &[&str] = testkit::ALL_SCOPES;

/// Every operation that needs a token: method, path, body, the scope it needs.
fn operations(building: &str, comp: &str) -> Vec<(Method, String, Option<Value>, &'static str)> {
    let b = |suffix: &str| format!("/v1/buildings/{building}{suffix}");
    let c = |suffix: &str| format!("/v1/comps/{comp}{suffix}");
    vec![
        (
            Method::POST,
            "/v1/buildings".into(),
            Some(bodies::building()),
            "buildings:write",
        ),
        (
            Method::PATCH,
            b(""),
            Some(json!({"name": "Renamed"})),
            "buildings:write",
        ),
        (
            Method::POST,
            b("/relocate"),
            Some(json!({"location": {"lat": 40.75, "lon": -73.98}})),
            "buildings:write",
        ),
        (
            Method::POST,
            b("/archive"),
            Some(json!({"reason": "sold"})),
            "buildings:write",
        ),
        (Method::POST, b("/restore"), None, "buildings:write"),
        (
            Method::POST,
            "/v1/comps/lease".into(),
            Some(bodies::lease(building)),
            "comps:write",
        ),
        (
            Method::POST,
            "/v1/comps/sale".into(),
            Some(bodies::sale(building)),
            "comps:write",
        ),
        (
            Method::PATCH,
            c(""),
            Some(json!({"tenant": "Umbrella"})),
            "comps:write",
        ),
        (Method::POST, c("/verify"), None, "comps:write"),
        (
            Method::POST,
            c("/retract"),
            Some(json!({"reason": "duplicate"})),
            "comps:write",
        ),
        (Method::GET, "/v1/buildings".into(), None, "buildings:read"),
        (Method::GET, b(""), None, "buildings:read"),
        (Method::GET, b("/history"), None, "buildings:read"),
        (Method::GET, "/v1/comps".into(), None, "comps:read"),
        (Method::GET, c(""), None, "comps:read"),
        (Method::GET, "/v1/market/stats".into(), None, "comps:read"),
        (Method::GET, "/v1/audit".into(), None, "audit:read"),
        (
            Method::GET,
            "/v1/admin/projections".into(),
            None,
            "projections:admin",
        ),
        (
            Method::POST,
            "/v1/admin/projections/catalog/replay".into(),
            None,
            "projections:admin",
        ),
        (
            Method::POST,
            "/v1/admin/projections/audit/rebuilds".into(),
            None,
            "projections:admin",
        ),
        (
            Method::GET,
            "/v1/admin/rebuilds".into(),
            None,
            "projections:admin",
        ),
        (
            Method::GET,
            format!("/v1/admin/rebuilds/{comp}"),
            None,
            "projections:admin",
        ),
        (
            Method::DELETE,
            format!("/v1/admin/rebuilds/{comp}"),
            None,
            "projections:admin",
        ),
    ]
}

#[tokio::test]
async fn strict_scopes_guard_every_endpoint_and_refusals_append_nothing() {
    let app = spawn_app_with(&[("STRICT_CLERK_SCOPES", Some("true"))]).await;
    let full = token_with_scopes(ORG, USER, ALL);
    let building = app.register_building_as(&full).await;
    let comp = app
        .call_as(
            &full,
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&building)),
            &[],
        )
        .await
        .id();
    assert_eq!(app.event_count().await, 2);

    let bare = token_with_scopes(ORG, USER, &[]);
    for (method, path, body, scope) in operations(&building, &comp) {
        let events = app.event_count().await;
        let all_but: Vec<&str> = ALL.iter().copied().filter(|s| *s != scope).collect();
        let without = token_with_scopes(ORG, USER, &all_but);
        for (label, token) in [("all but its scope", &without), ("no scopes", &bare)] {
            let reply = app
                .call_as(token, method.clone(), &path, body.as_ref(), &[])
                .await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{method} {path} with {label}: {:#}",
                reply.body
            );
            reply.assert_problem(403, "forbidden");
            assert!(
                reply.body["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(scope)),
                "{method} {path}: the problem names {scope}"
            );
        }
        assert_eq!(
            app.event_count().await,
            events,
            "{method} {path}: a refused command appended"
        );
        // Its own scope alone gets past the check.
        let only = token_with_scopes(ORG, USER, &[scope]);
        let reply = app
            .call_as(&only, method.clone(), &path, body.as_ref(), &[])
            .await;
        assert_ne!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {path} with {scope}"
        );
        assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
}

#[tokio::test]
async fn members_read_and_write_but_never_audit_or_administer_without_strict_scopes() {
    let app = spawn_app().await;
    let member = token_with_scopes(ORG, USER, &[]);
    let building = app.register_building().await;
    for path in ["/v1/buildings", "/v1/comps", "/v1/market/stats"] {
        let reply = app.call_as(&member, Method::GET, path, None, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let reply = app
        .call_as(
            &member,
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&building)),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    for (method, path) in [
        (Method::GET, "/v1/audit"),
        (Method::GET, "/v1/admin/projections"),
        (Method::POST, "/v1/admin/projections/audit/replay"),
    ] {
        let reply = app.call_as(&member, method, path, None, &[]).await;
        reply.assert_problem(403, "forbidden");
    }
    let auditor = token_with_scopes(ORG, USER, &["audit:read"]);
    let reply = app
        .call_as(&auditor, Method::GET, "/v1/audit", None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// Read-model tables that carry `org_id`.
const READ_MODELS: [&str; 5] = [
    "buildings",
    "comps",
    "building_comp_stats",
    "market_stats",
    "audit_log",
];

async fn organisations_in(pool: &sqlx::PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "SELECT DISTINCT org_id FROM {table} ORDER BY org_id"
    ))
    .fetch_all(pool)
    .await
    .expect("read model")
}

#[tokio::test]
async fn another_organisations_data_is_not_found_and_never_listed() {
    let app = spawn_app().await;
    let ours = token_with_scopes(ORG, USER, ALL);
    let theirs = token_with_scopes(OTHER_ORG, "user_mallory", ALL);
    let building = app.register_building().await;
    let comp = app.record_lease(&building).await;
    let rival_building = app.register_building_as(&theirs).await;
    let pool = app.pool.clone();
    project_until(&app.pool, || async {
        organisations_in(&pool, "market_stats").await == [ORG.to_owned()]
            && organisations_in(&pool, "buildings").await.len() == 2
            && organisations_in(&pool, "audit_log").await.len() == 2
    })
    .await;
    let events = app.event_count().await;

    // Reads of our resources by the rival: 404, as if they did not exist.
    for path in [
        format!("/v1/buildings/{building}"),
        format!("/v1/buildings/{building}/history"),
        format!("/v1/comps/{comp}"),
    ] {
        let reply = app.call_as(&theirs, Method::GET, &path, None, &[]).await;
        reply.assert_problem(404, "not-found");
        // We see it.
        let reply = app.call_as(&ours, Method::GET, &path, None, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    // Writes: 404 (or an unknown building for a comp), nothing appended.
    let writes = [
        (
            Method::PATCH,
            format!("/v1/buildings/{building}"),
            Some(json!({"name": "Hijacked"})),
            404,
        ),
        (
            Method::POST,
            format!("/v1/buildings/{building}/archive"),
            Some(json!({"reason": "hostile"})),
            404,
        ),
        (
            Method::POST,
            format!("/v1/comps/{comp}/retract"),
            Some(json!({"reason": "hostile"})),
            404,
        ),
        (
            Method::POST,
            "/v1/comps/lease".to_owned(),
            Some(bodies::lease(&building)),
            422,
        ),
    ];
    for (method, path, body, status) in writes {
        let reply = app
            .call_as(&theirs, method.clone(), &path, body.as_ref(), &[])
            .await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{method} {path}: {:#}",
            reply.body
        );
    }
    assert_eq!(
        app.event_count().await,
        events,
        "a cross-organisation write appended"
    );

    // Lists, geo and audit: only the rival's own.
    let near = "/v1/buildings?near=40.7527,-73.9787&radius_m=5000";
    for (path, expected) in [
        ("/v1/buildings", vec![rival_building.clone()]),
        (near, vec![rival_building.clone()]),
        ("/v1/comps", vec![]),
        ("/v1/comps?near=40.7527,-73.9787&radius_m=5000", vec![]),
    ] {
        let reply = app.call_as(&theirs, Method::GET, path, None, &[]).await;
        let ids: Vec<String> = reply.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(ids, expected, "{path}");
    }
    let stats = app
        .call_as(&theirs, Method::GET, "/v1/market/stats", None, &[])
        .await;
    assert_eq!(stats.body["items"], json!([]));
    let audit = app
        .call_as(&theirs, Method::GET, "/v1/audit", None, &[])
        .await;
    let audited: Vec<&str> = audit.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|entry| entry["aggregate_id"].as_str().expect("aggregate id"))
        .collect();
    assert_eq!(audited, [rival_building.as_str()]);
}

#[tokio::test]
async fn row_level_security_hides_other_organisations_from_an_unfiltered_query() {
    let app = spawn_app().await;
    let theirs = token_with_scopes(OTHER_ORG, "user_mallory", ALL);
    let building = app.register_building().await;
    app.record_lease(&building).await;
    let rival = app.register_building_as(&theirs).await;
    app.call_as(
        &theirs,
        Method::POST,
        "/v1/comps/lease",
        Some(&bodies::lease(&rival)),
        &[],
    )
    .await;
    let pool = app.pool.clone();
    project_until(&app.pool, || async {
        for table in READ_MODELS {
            if organisations_in(&pool, table).await.len() != 2 {
                return false;
            }
        }
        true
    })
    .await;

    for table in READ_MODELS {
        // The connection's own role (the owner) sees both organisations...
        assert_eq!(
            organisations_in(&app.pool, table).await,
            [ORG.to_owned(), OTHER_ORG.to_owned()],
            "{table}"
        );
        // ...a query transaction as the api opens it sees only the caller's, although
        // the query has no organisation filter.
        let mut tx = projections::queries::begin_as(&app.pool, ORG)
            .await
            .expect("begin as the organisation");
        let seen: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT org_id FROM {table} ORDER BY org_id"
        ))
        .fetch_all(&mut *tx)
        .await
        .expect("unfiltered query");
        assert_eq!(seen, [ORG.to_owned()], "{table}: row-level security");
        let role: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut *tx)
            .await
            .expect("role");
        assert_eq!(role, "prism_app");
        // The query role may not write.
        let write = sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await;
        assert!(write.is_err(), "{table}: prism_app could delete");
    }
    // Without an organisation set, the query role sees nothing at all.
    let mut tx = app.pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL ROLE prism_app")
        .execute(&mut *tx)
        .await
        .expect("role");
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM buildings")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(visible, 0);
}
