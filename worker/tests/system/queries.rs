//! The read side through the api: what commands did shows up in every query, geo
//! queries measure true distances, cursors survive inserts, organisations never see
//! each other, caches answer 304 and survive Redis being away, `min_version` waits.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{bodies, token_with, System, ALL_SCOPES, OTHER_ORG};

#[tokio::test]
async fn commands_show_up_in_every_query() {
    let mut system = System::start().await;
    system.start_worker().await;
    let building = system
        .register(&bodies::building_at("Tower One", 40.7527, -73.9787))
        .await;
    let lease = system.record_lease(&building).await;
    let sale = system.record_sale(&building).await;
    let (status, verified) = system
        .call(Method::POST, &format!("/v1/comps/{lease}/verify"), None)
        .await;
    assert_eq!(status, 200, "{verified:#}");

    // Read-your-writes: the version the command returned.
    let (status, comp) = system
        .get(&format!("/v1/comps/{lease}?min_version=2"))
        .await;
    assert_eq!(status, 200, "{comp:#}");
    assert_eq!(comp["verified"], true);
    assert_eq!(comp["version"], 2);
    // 10 years at $60, 12 months free, $40 TI: (9 × 60 − 40) / 10 = 50.
    assert_eq!(comp["lease"]["net_effective_rent_psf"], "50.00");
    assert_eq!(comp["sale"], serde_json::Value::Null);

    system.wait_until_quiet(Duration::from_secs(15)).await;
    let (_, sale_view) = system.get(&format!("/v1/comps/{sale}")).await;
    assert_eq!(
        sale_view["sale"]["price_psf"], "250.00",
        "25,000,000 / 100,000 sq ft"
    );

    let (status, detail) = system.get(&format!("/v1/buildings/{building}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["comp_stats"]["comp_count"], 2);
    assert_eq!(
        detail["comp_stats"]["rent_window"]["avg_effective_rent_psf"],
        "50.00"
    );
    assert_eq!(detail["comp_stats"]["latest_comp_date"], "2026-02-01");

    let (_, list) = system.get("/v1/buildings?q=tower").await;
    assert_eq!(list["items"][0]["id"], building.as_str());
    let (_, comps) = system
        .get(&format!("/v1/comps?building_id={building}&kind=lease"))
        .await;
    assert_eq!(comps["items"].as_array().map(Vec::len), Some(1));
    let (_, ranged) = system.get("/v1/comps?rent_min=70").await;
    assert_eq!(
        ranged["items"].as_array().map(Vec::len),
        Some(0),
        "starting rent 60 < 70"
    );
    let (_, market) = system.get("/v1/market/stats?submarket=midtown").await;
    let cells = market["items"].as_array().expect("cells");
    assert_eq!(cells.len(), 2, "{market:#}");
    assert!(cells
        .iter()
        .any(|c| c["quarter"] == "2026-Q1" && c["lease_count"] == 1));
    assert!(cells
        .iter()
        .any(|c| c["quarter"] == "2025-Q2" && c["sale_count"] == 1));
    let (_, history) = system
        .get(&format!("/v1/buildings/{building}/history"))
        .await;
    assert_eq!(history["items"][0]["event_type"], "BuildingRegistered");
    assert_eq!(history["items"][0]["user_id"], "user_alice");
    let (_, audit) = system.get("/v1/audit").await;
    assert_eq!(
        audit["items"].as_array().map(Vec::len),
        Some(4),
        "register, two comps, verify"
    );
    let (status, _) = system
        .call_as(
            &token_with(crate::helpers::ORG, &["buildings:read"]),
            Method::GET,
            "/v1/audit",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "audit needs audit:read");

    // Retracting drops the comp from statistics and lists.
    let (status, _) = system
        .call(
            Method::POST,
            &format!("/v1/comps/{sale}/retract"),
            Some(&json!({"reason": "duplicate"})),
        )
        .await;
    assert_eq!(status, 200);
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let (_, detail) = system.get(&format!("/v1/buildings/{building}")).await;
    assert_eq!(detail["comp_stats"]["comp_count"], 1, "{detail:#}");
    system.assert_projections_equal_rebuild().await;
}

#[tokio::test]
async fn near_finds_buildings_at_known_distances() {
    let mut system = System::start().await;
    system.start_worker().await;
    // Distances are on the sphere of mean Earth radius (6,371,008.8 m): one degree of
    // latitude is 111,195 m (on the WGS 84 ellipsoid, at the equator, 110,574 m).
    for (name, lat) in [("A 111m", 0.001), ("B 556m", 0.005), ("C 2224m", 0.02)] {
        system.register(&bodies::building_at(name, lat, 0.0)).await;
    }
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let names = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|b| b["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (status, page) = system.get("/v1/buildings?near=0,0&radius_m=1000").await;
    assert_eq!(status, 200, "{page:#}");
    assert_eq!(names(&page), ["A 111m", "B 556m"], "inside, nearest first");
    let distance = page["items"][1]["distance_m"].as_f64().expect("distance");
    assert!((distance - 555.98).abs() < 0.5, "{distance}");
    // The edge, within a metre either way, for the nearest-first page and for a search
    // combined with another filter (the radius is tested by another function there).
    for query in ["", "&q=B"] {
        let (_, inside) = system
            .get(&format!("/v1/buildings?near=0,0&radius_m=557{query}"))
            .await;
        assert!(names(&inside).contains(&"B 556m".to_owned()), "{inside:#}");
        let (_, outside) = system
            .get(&format!("/v1/buildings?near=0,0&radius_m=555{query}"))
            .await;
        assert!(
            !names(&outside).contains(&"B 556m".to_owned()),
            "{outside:#}"
        );
    }
    let (_, boxed) = system.get("/v1/buildings?bbox=-0.01,0.002,0.01,0.03").await;
    assert_eq!(names(&boxed), ["B 556m", "C 2224m"]);
    let (_, comps_near) = system.get("/v1/comps?near=0,0&radius_m=100").await;
    assert_eq!(comps_near["items"].as_array().map(Vec::len), Some(0));
    let (status, bad) = system.get("/v1/buildings?near=0,0").await;
    assert_eq!(status, 400, "{bad:#}");
    assert_eq!(bad["errors"][0]["field"], "radius_m");
}

#[tokio::test]
async fn nearest_first_pages_order_ties_by_id_and_never_repeat_or_skip() {
    let mut system = System::start().await;
    system.start_worker().await;
    // Three buildings share a point, two share another: their distances tie.
    let lats = [0.003, 0.001, 0.003, 0.006, 0.001, 0.003, 0.004];
    for (i, lat) in lats.iter().enumerate() {
        system
            .register(&bodies::building_at(&format!("T{i}"), *lat, 0.0))
            .await;
    }
    system.register(&bodies::building_at("Far", 0.5, 0.0)).await;
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let mut seen: Vec<(f64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/buildings?near=0,0&radius_m=1000&limit=2&cursor={c}"),
            None => "/v1/buildings?near=0,0&radius_m=1000&limit=2".to_owned(),
        };
        let (status, page) = system.get(&path).await;
        assert_eq!(status, 200, "{page:#}");
        for item in page["items"].as_array().expect("items") {
            seen.push((
                item["distance_m"].as_f64().expect("distance"),
                item["id"].as_str().expect("id").to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected = seen.clone();
    expected.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    expected.dedup();
    assert_eq!(
        seen.len(),
        lats.len(),
        "every building within the radius once"
    );
    assert_eq!(seen, expected, "nearest first, ties by id");
}

#[tokio::test]
async fn cursor_pages_never_repeat_or_skip_while_buildings_are_added() {
    let mut system = System::start().await;
    system.start_worker().await;
    let mut originals = HashSet::new();
    for i in 0..30 {
        originals.insert(
            system
                .register(&bodies::building_at(&format!("M{i:02}"), 40.0, -73.0))
                .await,
        );
    }
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/buildings?limit=7&cursor={c}"),
            None => "/v1/buildings?limit=7".to_owned(),
        };
        let (status, page) = system.get(&path).await;
        assert_eq!(status, 200, "{page:#}");
        for item in page["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        // Inserts before and after the cursor's place, while paging.
        system
            .register(&bodies::building_at(&format!("A{added:02}"), 40.0, -73.0))
            .await;
        system
            .register(&bodies::building_at(&format!("Z{added:02}"), 40.0, -73.0))
            .await;
        added += 1;
        system.wait_until_quiet(Duration::from_secs(15)).await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no building twice");
    assert!(
        originals.iter().all(|id| unique.contains(id)),
        "no original building skipped"
    );
    let (status, _) = system
        .get(
            "/v1/buildings?limit=7&sort=-name&cursor="
                .to_owned()
                .as_str(),
        )
        .await;
    assert_eq!(status, 400, "an empty cursor is refused");
}

#[tokio::test]
async fn organisations_never_see_each_other() {
    let mut system = System::start().await;
    system.start_worker().await;
    let building = system
        .register(&bodies::building_at("Ours", 10.0, 10.0))
        .await;
    let comp = system.record_lease(&building).await;
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let rival = token_with(OTHER_ORG, ALL_SCOPES);
    let get = |path: String| {
        let system = &system;
        let rival = rival.clone();
        async move { system.call_as(&rival, Method::GET, &path, None).await }
    };
    assert_eq!(get(format!("/v1/buildings/{building}")).await.0, 404);
    assert_eq!(
        get(format!("/v1/buildings/{building}/history")).await.0,
        404
    );
    assert_eq!(get(format!("/v1/comps/{comp}")).await.0, 404);
    for path in [
        "/v1/buildings".to_owned(),
        "/v1/buildings?near=10,10&radius_m=1000".to_owned(),
        format!("/v1/comps?building_id={building}"),
        "/v1/comps?near=10,10&radius_m=1000".to_owned(),
        "/v1/market/stats".to_owned(),
        "/v1/audit".to_owned(),
    ] {
        let (status, body) = get(path.clone()).await;
        assert_eq!(status, 200, "{path}: {body:#}");
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(0),
            "{path} leaks: {body:#}"
        );
    }
}

#[tokio::test]
async fn cached_views_answer_304_and_reads_survive_redis_being_away() {
    let mut system = System::start().await;
    system.start_worker().await;
    let building = system
        .register(&bodies::building_at("Cached", 40.0, -73.0))
        .await;
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let url = format!("{}/v1/buildings/{building}", system.address);
    let first = system
        .client
        .get(&url)
        .bearer_auth(crate::helpers::token())
        .send()
        .await
        .expect("get");
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(
        system
            .namespace
            .keys()
            .iter()
            .any(|k| k.contains(":view:0:building:")),
        "the detail is cached in the namespace"
    );
    let again = system
        .client
        .get(&url)
        .bearer_auth(crate::helpers::token())
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), 304);

    // A change refreshes the view: the old tag no longer matches.
    let (status, _) = system
        .call(
            Method::PATCH,
            &format!("/v1/buildings/{building}"),
            Some(&json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(status, 200);
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let changed = system
        .client
        .get(&url)
        .bearer_auth(crate::helpers::token())
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(changed.status(), 200);
    let body: serde_json::Value = changed.json().await.expect("json");
    assert_eq!(body["name"], "Renamed");

    // An api whose Redis is unreachable still reads, from Postgres.
    let blind = System::start_with(
        testkit::TestNamespace::new(),
        crate::helpers::ApiRedis::Unreachable,
    )
    .await;
    let building = blind
        .register(&bodies::building_at("Uncached", 40.0, -73.0))
        .await;
    blind.catch_up_now().await;
    let (status, body) = blind.get(&format!("/v1/buildings/{building}")).await;
    assert_eq!(status, 200, "{body:#}");
    let (status, _) = blind.get("/v1/buildings").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn min_version_waits_and_then_says_the_read_is_lagging() {
    let system = System::start().await;
    let building = system
        .register(&bodies::building_at("Waiting", 40.0, -73.0))
        .await;
    system.catch_up_now().await;
    let (status, _) = system
        .call(
            Method::PATCH,
            &format!("/v1/buildings/{building}"),
            Some(&json!({"floors": 12})),
        )
        .await;
    assert_eq!(status, 200);

    // No worker runs: version 2 never arrives; after the bounded wait, version 1.
    let started = std::time::Instant::now();
    let reply = system
        .client
        .get(format!(
            "{}/v1/buildings/{building}?min_version=2",
            system.address
        ))
        .bearer_auth(crate::helpers::token())
        .send()
        .await
        .expect("get");
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply
            .headers()
            .get("projection-lagging")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("true")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "waited for the projection"
    );
    let body: serde_json::Value = reply.json().await.expect("json");
    assert_eq!(body["version"], 1);

    // With the projection caught up, the same read answers at once.
    system.catch_up_now().await;
    let (status, body) = system
        .get(&format!("/v1/buildings/{building}?min_version=2"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["floors"], 12);
}

#[tokio::test]
async fn an_operator_rebuilds_a_projection_through_the_api() {
    let mut system = System::start().await;
    system.start_worker().await;
    let building = system
        .register(&bodies::building_at("Rebuilt", 40.0, -73.0))
        .await;
    system.record_lease(&building).await;
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let before = system.read_models().await;
    let (status, body) = system
        .call(Method::POST, "/v1/admin/projections/catalog/rebuilds", None)
        .await;
    assert_eq!(status, 202, "{body:#}");
    assert_eq!(body["state"], "queued");
    let id = body["id"].as_str().expect("rebuild id").to_owned();
    let (status, _) = system
        .call(
            Method::POST,
            "/v1/admin/projections/nonsense/rebuilds",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let rebuild = loop {
        let (status, rebuild) = system.get(&format!("/v1/admin/rebuilds/{id}")).await;
        assert_eq!(status, 200);
        if rebuild["state"] == "swapped" {
            break rebuild;
        }
        assert!(
            ["queued", "running", "verifying"].contains(&rebuild["state"].as_str().unwrap_or("")),
            "{rebuild:#}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rebuild never finished: {rebuild:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rebuild["events_applied"], 2);
    assert!(rebuild["finished_at"].is_string());
    let (_, list) = system.get("/v1/admin/projections").await;
    let catalog = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["name"] == "catalog")
        .cloned()
        .expect("catalog");
    assert_eq!(catalog["state"], "running");
    assert_eq!(catalog["generation"], 1, "the swap raised the generation");
    assert!(!catalog["rebuilt_at"].is_null());
    assert_eq!(
        system.read_models().await,
        before,
        "a rebuild yields the live rows"
    );
    // The former name still works, and the list shows both rebuilds, newest first.
    let (status, body) = system
        .call(Method::POST, "/v1/admin/projections/audit/replay", None)
        .await;
    assert_eq!(status, 202, "{body:#}");
    let (_, rebuilds) = system.get("/v1/admin/rebuilds").await;
    let items = rebuilds["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["projection"], "audit");
    let (status, _) = system
        .call_as(
            &token_with(crate::helpers::ORG, &["buildings:read"]),
            Method::GET,
            "/v1/admin/projections",
            None,
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_detail_read_before_its_row_exists_is_not_cached() {
    // A batch marks no cache entry for a detail it creates: that is only right if a
    // read that found nothing left nothing behind. A client that reads right after its
    // command, before the worker ran, gets 404; once projected, the detail is there.
    let system = System::start().await;
    let building = system
        .register(&bodies::building_at("Early", 40.0, -73.0))
        .await;
    let path = format!("/v1/buildings/{building}");
    let (status, _) = system.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "read before the worker ran");
    assert!(
        !system
            .namespace
            .keys()
            .iter()
            .any(|k| k.contains(&building.to_string())),
        "nothing is cached for a detail that was not found"
    );
    system.catch_up_now().await;
    let outbox: Vec<String> = sqlx::query_scalar("SELECT view FROM cache_refresh_outbox")
        .fetch_all(&system.pool)
        .await
        .expect("outbox");
    assert!(
        !outbox.iter().any(|view| view == "building"),
        "the new detail is not marked: {outbox:?}"
    );
    let (status, body) = system.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["name"], "Early");
}
