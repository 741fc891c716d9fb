//! Test support that needs the crate's internals (feature `testing`): the plans
//! Postgres picks for the log's reads. What every suite shares — Redis namespaces,
//! ports, the statement counter — is in the `testkit` crate.

/// The plan Postgres picks to read the log after `after` (the tests assert that it
/// follows the global-order index rather than sorting).
/// The generic plan of the check for events the horizon holds back: the plan a
/// reader's connection keeps after running it a few times, made for any horizon.
pub async fn explain_held_back(conn: &mut sqlx::PgConnection) -> serde_json::Value {
    for statement in [
        "SET plan_cache_mode = force_generic_plan".to_owned(),
        format!("PREPARE prism_held_back(text) AS {}", crate::log::HELD_BACK),
    ] {
        sqlx::query(&statement)
            .execute(&mut *conn)
            .await
            .expect("prepare");
    }
    let plan = sqlx::query_scalar("EXPLAIN (FORMAT JSON) EXECUTE prism_held_back('0')")
        .fetch_one(&mut *conn)
        .await
        .expect("explain the held-back check");
    for statement in ["DEALLOCATE prism_held_back", "RESET plan_cache_mode"] {
        sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .expect("reset");
    }
    plan
}

/// The generic plan (as a pooled connection's prepared statement ends up using) of
/// the check behind `min_position` ([`crate::checkpoint::reflects`]).
pub async fn explain_reflects(
    conn: &mut sqlx::PgConnection,
    name: &str,
    position: i64,
) -> serde_json::Value {
    for statement in [
        "SET plan_cache_mode = force_generic_plan".to_owned(),
        format!(
            "PREPARE prism_reflects(text, bigint) AS {}",
            crate::checkpoint::REFLECTS
        ),
    ] {
        sqlx::query(&statement)
            .execute(&mut *conn)
            .await
            .expect("prepare");
    }
    let quoted = name.replace('\'', "''");
    let explain = format!("EXPLAIN (FORMAT JSON) EXECUTE prism_reflects('{quoted}', {position})");
    let plan = sqlx::query_scalar(&explain)
        .fetch_one(&mut *conn)
        .await
        .expect("explain the min_position check");
    for statement in ["DEALLOCATE prism_reflects", "RESET plan_cache_mode"] {
        sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .expect("reset");
    }
    plan
}

/// The plan of an `as_of` read's history: a building's events and its comps'.
pub async fn explain_history(
    conn: &mut sqlx::PgConnection,
    building: &str,
    comps: &[String],
) -> serde_json::Value {
    sqlx::query_scalar(&format!(
        "EXPLAIN (FORMAT JSON) {}",
        crate::queries::as_of::HISTORY
    ))
    .bind(building)
    .bind(comps)
    .bind(chrono::Utc::now())
    .fetch_one(conn)
    .await
    .expect("explain the history read")
}

pub async fn explain_log_read(
    conn: &mut sqlx::PgConnection,
    after: (&str, i64),
) -> serde_json::Value {
    sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {}", crate::log::READ_AFTER))
        .bind(after.0)
        .bind(after.1)
        .bind(i64::MAX.to_string())
        .bind(500i64)
        .fetch_one(conn)
        .await
        .expect("explain the log read")
}
