//! The event store's repository: postgres-es reads aggregates' events; appends are
//! ours, so that a keyed command's first result is recorded in the same transaction
//! as its events. Either both are committed or neither: a retry after a lost response
//! always finds the result, and a concurrent duplicate hits the primary key instead
//! of appending twice.
//!
//! Appends are committed in groups: commands that finish deciding while another
//! group is being written wait for the next one, and a group is one statement — one
//! round trip and one WAL flush for all of them. A group the database refuses (a
//! command that lost a race, say) is retried command by command, so each command
//! gets its own answer and a refused command never takes another down with it.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::problem::database_unavailable;

/// Metadata keys every event carries (see docs/events.md).
pub mod metadata {
    pub const ORG_ID: &str = "org_id";
    pub const USER_ID: &str = "user_id";
    pub const REQUEST_ID: &str = "request_id";
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    /// SHA-256 of the request the key was first used with.
    pub const IDEMPOTENCY_REQUEST_HASH: &str = "idempotency_request_hash";
    pub const RECORDED_AT: &str = "recorded_at";
}

/// The first result of a keyed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstResult {
    pub request_hash: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
}

#[derive(Clone)]
pub struct EventLog {
    pool: PgPool,
    reader: Arc<PostgresEventRepository>,
    appends: mpsc::Sender<Append>,
}

/// One command's events, waiting for its group; answered with the global position of
/// its last event.
struct Append {
    events: Vec<SerializedEvent>,
    done: oneshot::Sender<Result<i64, sqlx::Error>>,
}

tokio::task_local! {
    /// Where [`EventLog`]'s `persist` leaves the global position of the last event it
    /// appended, for the command that called it: cqrs-es's `commit` returns the events
    /// without it. Set only inside [`capturing_position`].
    static APPENDED_AT: Cell<Option<i64>>;
}

/// Runs `commit` (a cqrs-es commit through this log, awaited in this task) and gives
/// its output with the global position of the last event it appended, if it did.
pub async fn capturing_position<F: Future>(commit: F) -> (F::Output, Option<i64>) {
    APPENDED_AT
        .scope(Cell::new(None), async move {
            let output = commit.await;
            (output, APPENDED_AT.with(Cell::get))
        })
        .await
}

/// Groups written at once: while they are, the next commands queue up.
const WRITERS: usize = 4;

/// Commands in one group at most.
const GROUP_LIMIT: usize = 64;

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

fn database_error(error: sqlx::Error) -> PersistenceError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            PersistenceError::OptimisticLockError
        }
        // The database is unavailable (503), whatever the way it says so.
        _ if database_unavailable(&error) => PersistenceError::ConnectionError(Box::new(error)),
        _ => PersistenceError::UnknownError(Box::new(error)),
    }
}

fn text<'a>(metadata: &'a Value, key: &str) -> Option<&'a str> {
    metadata.get(key).and_then(Value::as_str)
}

impl EventLog {
    /// The log over `pool`, with its group writers (tasks that end when the last clone
    /// of the log is dropped).
    pub fn new(pool: PgPool) -> Self {
        let (appends, queue) = mpsc::channel(WRITERS * GROUP_LIMIT);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            tokio::spawn(write_groups(pool.clone(), Arc::clone(&queue)));
        }
        Self {
            reader: Arc::new(PostgresEventRepository::new(pool.clone())),
            pool,
            appends,
        }
    }

    /// The first result recorded for `key` in `org_id`, if any.
    pub async fn first_result(
        &self,
        org_id: &str,
        key: &str,
    ) -> Result<Option<FirstResult>, sqlx::Error> {
        let row: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT request_hash, aggregate_type, aggregate_id, version
               FROM command_idempotency
              WHERE org_id = $1 AND idempotency_key = $2",
        )
        .bind(org_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(request_hash, aggregate_type, aggregate_id, version)| FirstResult {
                request_hash,
                aggregate_type,
                aggregate_id,
                version: u64::try_from(version).unwrap_or_default(),
            },
        ))
    }

    /// The global position of an aggregate's event (`version` is its sequence): what a
    /// read must reflect to show the aggregate at that version. `None` before its first
    /// event.
    pub async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        version: u64,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT position FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
    }

    /// Appends a command's events — and, for a keyed command, its first result — with
    /// the commands of its group, atomically for the command; gives the global position
    /// of its last event.
    async fn append(&self, events: &[SerializedEvent]) -> Result<Option<i64>, sqlx::Error> {
        if events.is_empty() {
            return Ok(None);
        }
        let (done, answer) = oneshot::channel();
        let append = Append {
            events: events.to_vec(),
            done,
        };
        if self.appends.send(append).await.is_err() {
            return Err(sqlx::Error::PoolClosed);
        }
        answer
            .await
            .unwrap_or(Err(sqlx::Error::PoolClosed))
            .map(Some)
    }
}

/// A group writer: takes every append waiting (up to [`GROUP_LIMIT`]) and commits them
/// in one statement.
async fn write_groups(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Append>>>) {
    loop {
        let group = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < GROUP_LIMIT {
                match queue.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            group
        };
        let commands: Vec<&[SerializedEvent]> = group.iter().map(|a| a.events.as_slice()).collect();
        match append_group(&pool, &commands).await {
            Ok(positions) => {
                for (append, position) in group.into_iter().zip(positions) {
                    let _ = append.done.send(Ok(position));
                }
            }
            // The database refused the group and committed none of it: each command
            // alone, to find the one it refuses.
            Err(error @ sqlx::Error::Database(_))
                if group.len() > 1 && !database_unavailable(&error) =>
            {
                for append in group {
                    let alone = append_group(&pool, &[append.events.as_slice()]).await;
                    let _ = append.done.send(alone.map(|positions| positions[0]));
                }
            }
            // The group's fate is unknown (the connection failed), the database is
            // unavailable, or it was one command: every command gets the error.
            Err(error) => {
                let mut group = group;
                if database_unavailable(&error) {
                    // The commands queued meanwhile would only wait for a connection
                    // the pool has just failed to get: they are answered now (503),
                    // so that no command waits longer than one acquire timeout. The
                    // queue is left alone when another writer is collecting from it.
                    if let Ok(mut queue) = queue.try_lock() {
                        while let Ok(next) = queue.try_recv() {
                            group.push(next);
                        }
                    }
                }
                let mut group = group.into_iter();
                if let Some(first) = group.next() {
                    for append in group {
                        let _ = append.done.send(Err(same_error(&error)));
                    }
                    let _ = first.done.send(Err(error));
                }
            }
        }
    }
}

/// An error like `error` for another command of its group (an unavailable database
/// stays unavailable: 503 for each of them).
fn same_error(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other if database_unavailable(other) => sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            other.to_string(),
        )),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// Appends the events of `commands` — and each keyed command's first result — in one
/// statement: one round trip, atomic for all of them. Gives, for each command (none of
/// them empty), the global position of its last event.
pub(crate) async fn append_group(
    pool: &PgPool,
    commands: &[&[SerializedEvent]],
) -> Result<Vec<i64>, sqlx::Error> {
    let events: Vec<&SerializedEvent> = commands.iter().flat_map(|c| c.iter()).collect();
    if events.is_empty() {
        return Ok(vec![0; commands.len()]);
    }
    let column =
        |f: fn(&SerializedEvent) -> String| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    let mut keyed = KeyedResults::default();
    for command in commands {
        let (Some(first), Some(last)) = (command.first(), command.last()) else {
            continue;
        };
        if let (Some(org_id), Some(key), Some(request_hash)) = (
            text(&first.metadata, metadata::ORG_ID),
            text(&first.metadata, metadata::IDEMPOTENCY_KEY),
            text(&first.metadata, metadata::IDEMPOTENCY_REQUEST_HASH),
        ) {
            keyed.org_ids.push(org_id.to_owned());
            keyed.keys.push(key.to_owned());
            keyed.request_hashes.push(request_hash.to_owned());
            keyed.aggregate_types.push(last.aggregate_type.clone());
            keyed.aggregate_ids.push(last.aggregate_id.clone());
            keyed
                .versions
                .push(i64::try_from(last.sequence).unwrap_or(i64::MAX));
            keyed
                .statuses
                .push(if first.sequence == 1 { 201 } else { 200 });
        }
    }
    let insert_events = "INSERT INTO events
            (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT t, id, seq, et, ev, p::json, m::json
           FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                       $6::text[], $7::text[]) WITH ORDINALITY AS u(t, id, seq, et, ev, p, m, n)
          ORDER BY n
         RETURNING aggregate_type, aggregate_id, sequence, position";
    let sql = if keyed.keys.is_empty() {
        insert_events.to_owned()
    } else {
        format!(
            "WITH appended AS ({insert_events}),
             keyed AS (
               INSERT INTO command_idempotency
                  (org_id, idempotency_key, request_hash, aggregate_type, aggregate_id, version, status)
               SELECT * FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                                    $13::bigint[], $14::smallint[])
                WHERE EXISTS (SELECT 1 FROM appended))
             SELECT * FROM appended"
        )
    };
    let mut query = sqlx::query_as::<_, (String, String, i64, i64)>(&sql)
        .bind(column(|e| e.aggregate_type.clone()))
        .bind(column(|e| e.aggregate_id.clone()))
        .bind(
            events
                .iter()
                .map(|e| i64::try_from(e.sequence).unwrap_or(i64::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(column(|e| e.event_type.clone()))
        .bind(column(|e| e.event_version.clone()))
        .bind(column(|e| e.payload.to_string()))
        .bind(column(|e| e.metadata.to_string()));
    if !keyed.keys.is_empty() {
        query = query
            .bind(keyed.org_ids)
            .bind(keyed.keys)
            .bind(keyed.request_hashes)
            .bind(keyed.aggregate_types)
            .bind(keyed.aggregate_ids)
            .bind(keyed.versions)
            .bind(keyed.statuses);
    }
    let positions: HashMap<(String, String, i64), i64> = query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(aggregate_type, aggregate_id, sequence, position)| {
            ((aggregate_type, aggregate_id, sequence), position)
        })
        .collect();
    // Each command's last event is a row of the statement (its key is the primary
    // key). Were one missing, the group's last position still covers it: a read that
    // waits for more than it needs is slower, one that waits for less is wrong.
    let group_last = positions.values().copied().max().unwrap_or(0);
    Ok(commands
        .iter()
        .map(|command| {
            command.last().map_or(group_last, |last| {
                let key = (
                    last.aggregate_type.clone(),
                    last.aggregate_id.clone(),
                    i64::try_from(last.sequence).unwrap_or(i64::MAX),
                );
                positions.get(&key).copied().unwrap_or(group_last)
            })
        })
        .collect())
}

/// The first results of a group's keyed commands, as columns.
#[derive(Default)]
struct KeyedResults {
    org_ids: Vec<String>,
    keys: Vec<String>,
    request_hashes: Vec<String>,
    aggregate_types: Vec<String>,
    aggregate_ids: Vec<String>,
    versions: Vec<i64>,
    statuses: Vec<i16>,
}

impl PersistedEventRepository for EventLog {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reader.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reader
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.reader.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            // The stores are built without snapshots (see WriteSide::new).
            return Err(PersistenceError::UnknownError(
                "snapshots are not enabled for this event log".into(),
            ));
        }
        let position = self.append(events).await.map_err(database_error)?;
        // Outside `capturing_position` (a test appending directly) nobody asks.
        let _ = APPENDED_AT.try_with(|slot| slot.set(position));
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.reader.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.reader.stream_all_events::<A>().await
    }
}
