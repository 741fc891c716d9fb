//! The `audit` projection: one row per event — who (user), when, in which request,
//! what (the event and its payload) — keyed by the event's global position, so
//! applying an event twice changes nothing.

use sqlx::PgConnection;

use crate::log::LoggedEvent;
use crate::ProjectionError;

/// Appends a batch's events to the audit log.
pub async fn apply(conn: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), ProjectionError> {
    for event in events {
        let Some(org_id) = event.meta("org_id") else {
            return Err(ProjectionError::Unapplicable {
                position: event.position,
                event_type: event.event_type.clone(),
                reason: "the event's metadata names no organisation".into(),
            });
        };
        sqlx::query(
            "INSERT INTO audit_log (position, org_id, aggregate_type, aggregate_id, sequence,
                 event_type, event_version, user_id, request_id, idempotency_key, recorded_at,
                 payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (position) DO NOTHING",
        )
        .bind(event.position)
        .bind(org_id)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .bind(&event.event_type)
        .bind(&event.event_version)
        .bind(event.meta("user_id"))
        .bind(event.meta("request_id"))
        .bind(event.meta("idempotency_key"))
        .bind(event.recorded_at)
        .bind(&event.payload)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Empties the audit log (a rebuild, inside its transaction).
pub async fn clear(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM audit_log").execute(conn).await?;
    Ok(())
}
