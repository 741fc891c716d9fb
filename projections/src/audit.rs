//! The `audit` projection: one row per event — who (user), when, in which request,
//! what (the event and its payload) — keyed by the event's global position, so
//! applying an event twice changes nothing.

use sqlx::PgConnection;

use crate::log::LoggedEvent;
use crate::projector::{Check, Projector, Target};
use crate::ProjectionError;

/// The `audit` projector.
#[derive(Debug)]
pub struct Audit;

#[async_trait::async_trait]
impl Projector for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn lock_key(&self) -> i64 {
        0x5052_4a5f_4155_4431 // "PRJ_AUD1"
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[("audit_log", "position")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[LoggedEvent],
        _target: Target,
    ) -> Result<(), ProjectionError> {
        apply(conn, events).await
    }

    fn checks(&self) -> &'static [Check] {
        &[Check {
            name: "audit_log",
            expected: "SELECT metadata::jsonb ->> 'org_id', count(*)::bigint,
                           sum(('x' || left(md5(position::text), 15))::bit(60)::bigint)
                      FROM events WHERE (transaction_id, position) <= ($1::text::xid8, $2)
                     GROUP BY 1",
            actual: "SELECT org_id, count(*)::bigint,
                         sum(('x' || left(md5(position::text), 15))::bit(60)::bigint)
                    FROM audit_log GROUP BY org_id",
        }]
    }
}

/// Appends a batch's events to the audit log in one statement.
async fn apply(conn: &mut PgConnection, events: &[LoggedEvent]) -> Result<(), ProjectionError> {
    let mut orgs = Vec::with_capacity(events.len());
    for event in events {
        let Some(org_id) = event.meta("org_id") else {
            return Err(ProjectionError::Unapplicable {
                position: event.position,
                event_type: event.event_type.clone(),
                reason: "the event's metadata names no organisation".into(),
            });
        };
        orgs.push(org_id);
    }
    let column = |f: fn(&LoggedEvent) -> Option<&str>| events.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO audit_log (position, org_id, aggregate_type, aggregate_id, sequence,
             event_type, event_version, user_id, request_id, idempotency_key, recorded_at,
             payload)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
             $12::jsonb[])
         ON CONFLICT (position) DO NOTHING",
    )
    .bind(events.iter().map(|e| e.position).collect::<Vec<_>>())
    .bind(orgs)
    .bind(column(|e| Some(e.aggregate_type.as_str())))
    .bind(column(|e| Some(e.aggregate_id.as_str())))
    .bind(events.iter().map(|e| e.sequence).collect::<Vec<_>>())
    .bind(column(|e| Some(e.event_type.as_str())))
    .bind(column(|e| Some(e.event_version.as_str())))
    .bind(column(|e| e.meta("user_id")))
    .bind(column(|e| e.meta("request_id")))
    .bind(column(|e| e.meta("idempotency_key")))
    .bind(events.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
