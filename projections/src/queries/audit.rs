//! The audit log: who did what, when — for an organisation, or one building's history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};

use super::cursor::{fingerprint, Cursor};
use super::{page_end, Page, QueryError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditEntryView {
    /// The event's place in the global log.
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The aggregate's version after this event.
    pub version: i64,
    pub event_type: String,
    pub event_version: String,
    /// Who: the user (`sub`) whose request recorded the event.
    pub user_id: Option<String>,
    pub request_id: Option<String>,
    pub recorded_at: DateTime<Utc>,
    /// What: the event's data.
    pub payload: Value,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub user_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// The filter as its cursors' fingerprint reads it: every field, in a fixed order,
    /// as JSON, never `Debug` output. Destructured, so a new field does not compile
    /// until it is part of the key.
    pub fn key(&self) -> String {
        let AuditFilter {
            aggregate_type,
            aggregate_id,
            user_id,
            from,
            to,
        } = self;
        serde_json::json!([
            "audit",
            aggregate_type,
            aggregate_id,
            user_id,
            from.map(|at| at.to_rfc3339()),
            to.map(|at| at.to_rfc3339())
        ])
        .to_string()
    }
}

/// A page of `org_id`'s audit log, newest first.
pub async fn list(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    filter: &AuditFilter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<AuditEntryView>, QueryError> {
    let query_fingerprint = fingerprint(&filter.key());
    let after = cursor
        .map(|raw| Cursor::decode(raw, &query_fingerprint))
        .transpose()?;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT position, aggregate_type, aggregate_id, sequence AS version, event_type,
                event_version, user_id, request_id, recorded_at, payload
           FROM audit_log WHERE org_id = ",
    );
    qb.push_bind(org_id);
    if let Some(aggregate_type) = &filter.aggregate_type {
        qb.push(" AND aggregate_type = ").push_bind(aggregate_type);
    }
    if let Some(aggregate_id) = &filter.aggregate_id {
        qb.push(" AND aggregate_id = ").push_bind(aggregate_id);
    }
    if let Some(user_id) = &filter.user_id {
        qb.push(" AND user_id = ").push_bind(user_id);
    }
    if let Some(from) = filter.from {
        qb.push(" AND recorded_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        qb.push(" AND recorded_at <= ").push_bind(to);
    }
    if let Some(after) = &after {
        let position: i64 = after
            .id
            .parse()
            .map_err(|_| QueryError::invalid("cursor", "is not a cursor this API issued"))?;
        qb.push(" AND position < ").push_bind(position);
    }
    qb.push(" ORDER BY position DESC LIMIT ")
        .push_bind(limit + 1);
    let mut rows: Vec<AuditEntryView> = qb.build_query_as().fetch_all(db).await?;
    let next_cursor = page_end(&mut rows, limit, |last| {
        Cursor {
            key: None,
            id: last.position.to_string(),
            query: query_fingerprint.clone(),
        }
        .encode()
    });
    Ok(Page {
        items: rows,
        next_cursor,
    })
}

/// One building's history: its events, oldest first. `None` when the organisation
/// has no such building.
pub async fn building_history(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    building_id: &str,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Option<Page<AuditEntryView>>, QueryError> {
    let query_fingerprint = fingerprint(&format!("history|{building_id}"));
    let after_version: i64 = match cursor {
        Some(raw) => Cursor::decode(raw, &query_fingerprint)?
            .id
            .parse()
            .map_err(|_| QueryError::invalid("cursor", "is not a cursor this API issued"))?,
        None => 0,
    };
    let mut rows: Vec<AuditEntryView> = sqlx::query_as(
        "SELECT position, aggregate_type, aggregate_id, sequence AS version, event_type,
                event_version, user_id, request_id, recorded_at, payload
           FROM audit_log
          WHERE org_id = $1 AND aggregate_type = 'building' AND aggregate_id = $2
            AND sequence > $3
          ORDER BY sequence LIMIT $4",
    )
    .bind(org_id)
    .bind(building_id)
    .bind(after_version)
    .bind(limit + 1)
    .fetch_all(db)
    .await?;
    if rows.is_empty() && after_version == 0 {
        return Ok(None);
    }
    let next_cursor = page_end(&mut rows, limit, |last| {
        Cursor {
            key: None,
            id: last.version.to_string(),
            query: query_fingerprint.clone(),
        }
        .encode()
    });
    Ok(Some(Page {
        items: rows,
        next_cursor,
    }))
}
