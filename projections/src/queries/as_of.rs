//! A detail as it was at an instant (`as_of`), from the event log.
//!
//! The catalog's own projector folds the aggregate's events recorded up to the instant
//! — a building's with those of its comps, or a comp's with its building's — into
//! temporary tables that shadow the live ones (`pg_temp` comes first on the search
//! path), and the detail's own query reads them; the transaction is rolled back, so
//! nothing of it outlives the request. One projector and one query for the present
//! and the past: a historical answer has exactly the shape and the figures the live
//! one had then.
//!
//! It runs on a connection of its own, opened for it and closed after it: a pooled
//! connection may hold statements prepared against the live tables. The owner's role
//! reads the log (the api's `prism_app` cannot); the aggregate's live row says whose
//! it is before anything is folded, so another organisation's is `404` at no cost. The
//! api bounds how many run at once (each is a connection and a few temporary tables).

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::buildings::BuildingView;
use super::comps::CompView;
use super::QueryError;
use crate::log::LoggedEvent;
use crate::{Projection, ProjectionError, Target};

/// The building `id` of `org_id` as it was at `at`, with its comp statistics then;
/// `None` when it did not exist yet, or is not the organisation's.
pub async fn building(
    pool: &PgPool,
    org_id: &str,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<(BuildingView, String)>, QueryError> {
    let org = org_id.to_owned();
    in_history(pool, org_id, Subject::Building(id), at, move |tx| {
        Box::pin(async move { super::buildings::detail(tx, &org, id).await })
    })
    .await
}

/// The comp `id` of `org_id` as it was at `at`; `None` when it did not exist yet, or
/// is not the organisation's.
pub async fn comp(
    pool: &PgPool,
    org_id: &str,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<(CompView, String)>, QueryError> {
    let org = org_id.to_owned();
    in_history(pool, org_id, Subject::Comp(id), at, move |tx| {
        Box::pin(async move { super::comps::detail(tx, &org, id).await })
    })
    .await
}

/// Whose history a read folds.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Building(Uuid),
    Comp(Uuid),
}

/// A detail query on the folded tables.
type Read<'c, T> = Pin<Box<dyn Future<Output = Result<Option<T>, sqlx::Error>> + Send + 'c>>;

/// `read` on the catalog folded from `subject`'s history up to `at`: on a connection
/// of its own (closed after), in a transaction that is always rolled back. `None`
/// when `org_id` does not own the subject or it did not exist yet.
async fn in_history<T>(
    pool: &PgPool,
    org_id: &str,
    subject: Subject,
    at: DateTime<Utc>,
    read: impl for<'c> FnOnce(&'c mut PgConnection) -> Read<'c, T>,
) -> Result<Option<T>, QueryError> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    let result = async {
        let Some((building, comps)) = scope(&mut conn, org_id, subject).await? else {
            return Ok(None);
        };
        let mut tx = conn.begin().await?;
        let read = async {
            if !fold(&mut tx, building, &comps, at).await? {
                return Ok(None);
            }
            Ok(read(&mut tx).await?)
        }
        .await;
        tx.rollback().await?;
        read
    }
    .await;
    conn.close().await?;
    result
}

/// The building and the comps whose events make `subject`'s history, when `org_id`
/// owns it — decided from the live rows before anything is folded (so a building or
/// a comp not projected yet is not found).
async fn scope(
    conn: &mut PgConnection,
    org_id: &str,
    subject: Subject,
) -> Result<Option<(Uuid, Vec<Uuid>)>, sqlx::Error> {
    match subject {
        Subject::Building(id) => {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT org_id FROM public.buildings WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if owner.as_deref() != Some(org_id) {
                return Ok(None);
            }
            let comps = sqlx::query_scalar("SELECT id FROM public.comps WHERE building_id = $1")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
            Ok(Some((id, comps)))
        }
        Subject::Comp(id) => {
            let found: Option<(Uuid, String)> =
                sqlx::query_as("SELECT building_id, org_id FROM public.comps WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(found
                .filter(|(_, owner)| owner == org_id)
                .map(|(building, _)| (building, vec![id])))
        }
    }
}

/// The events of building `building` and of `comps` recorded at or before `at`, in
/// the log's order.
pub(crate) const HISTORY: &str =
    "SELECT position, transaction_id::text AS transaction_id, aggregate_type, aggregate_id,
            sequence, event_type, event_version, payload::jsonb AS payload,
            metadata::jsonb AS metadata, recorded_at
       FROM events
      WHERE ((aggregate_type = 'building' AND aggregate_id = $1)
          OR (aggregate_type = 'comp' AND aggregate_id = ANY($2)))
        AND recorded_at <= $3
      ORDER BY events.transaction_id, events.position";

/// Folds the history of `building` and `comps` up to `at` into temporary catalog
/// tables, in `conn`'s transaction; `false` when the building had no event by then.
async fn fold(
    conn: &mut PgConnection,
    building: Uuid,
    comps: &[Uuid],
    at: DateTime<Utc>,
) -> Result<bool, QueryError> {
    let comps: Vec<String> = comps.iter().map(Uuid::to_string).collect();
    let events: Vec<LoggedEvent> = sqlx::query_as(HISTORY)
        .bind(building.to_string())
        .bind(&comps)
        .bind(at)
        .fetch_all(&mut *conn)
        .await?;
    if !events
        .iter()
        .any(|event| event.aggregate_type == "building")
    {
        return Ok(false);
    }
    let catalog = Projection::CATALOG.projector();
    for (table, _) in catalog.tables() {
        sqlx::query(&format!(
            "CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP"
        ))
        .execute(&mut *conn)
        .await?;
    }
    // As a rebuild does: no cache refresh is queued for rows nobody else sees.
    catalog
        .apply(conn, &events, Target::Shadow)
        .await
        .map_err(|error| match error {
            ProjectionError::Database(error) => QueryError::Database(error),
            other => QueryError::History(other.to_string()),
        })?;
    Ok(true)
}
