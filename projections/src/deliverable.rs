//! Whether this database can deliver the log past the checkpoints.
//!
//! Readers deliver in (`transaction_id`, `position`) order, and `transaction_id` is the
//! writing transaction's `xid8` ([`crate::log`]). On the cluster that wrote them every
//! stored id is below the next one the cluster hands out. A dump restored into another
//! cluster whose transaction counter is behind the dump's ids breaks that: new events
//! get *smaller* ids than the restored events and checkpoints, sort before them, and a
//! catch-up resuming from a restored checkpoint never applies them; the restored events
//! themselves stay above every reader's horizon, so even a rebuild reads none of them
//! (and would swap in empty tables). Nothing fails; events are silently not delivered.
//! [`check`] finds this before the worker serves (it refuses to start) and before a
//! rebuild starts; the recovery is the runbook section [`RUNBOOK`].

use sqlx::PgPool;

/// The runbook section that says how to recover.
pub const RUNBOOK: &str = "docs/ops/rollback.md#transaction-ids-behind-a-restored-log";

/// What stands at or above the database's next transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ahead {
    /// The newest event of the log.
    Log { transaction_id: String },
    /// A projection's checkpoint.
    Checkpoint {
        projection: String,
        transaction_id: String,
    },
}

/// The log or checkpoints are ahead of what this database's transactions can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this database's transaction counter is behind its event log or checkpoints: the next \
     transaction id is {next_transaction_id}, but {}. New events would get smaller ids, sort \
     before them and never be delivered (a restore into another Postgres cluster does this). \
     Recover as the runbook says: {RUNBOOK}",
    describe(ahead)
)]
pub struct BehindTheLog {
    /// `pg_snapshot_xmax` of a current snapshot: every transaction from now on gets an
    /// id at or above it.
    pub next_transaction_id: String,
    /// Everything at or above it.
    pub ahead: Vec<Ahead>,
}

impl BehindTheLog {
    /// Whether the log itself is ahead (not only checkpoints): no reader, not even a
    /// rebuild, can read the events above the counter.
    pub fn log_is_ahead(&self) -> bool {
        self.ahead.iter().any(|a| matches!(a, Ahead::Log { .. }))
    }
}

fn describe(ahead: &[Ahead]) -> String {
    ahead
        .iter()
        .map(|a| match a {
            Ahead::Log { transaction_id } => {
                format!("the log's newest event has transaction id {transaction_id}")
            }
            Ahead::Checkpoint {
                projection,
                transaction_id,
            } => format!("the checkpoint of {projection} is at transaction id {transaction_id}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Ok(())` when every checkpoint and every event is below the next transaction id;
/// else what is ahead. A healthy database never is: a stored id belonged to a
/// transaction this cluster had already handed out. Takes no transaction id itself.
pub async fn check(pool: &PgPool) -> Result<Result<(), BehindTheLog>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let rows: Vec<(String, Option<String>, String, String)> = sqlx::query_as(
        "WITH next AS (SELECT pg_snapshot_xmax(pg_current_snapshot()) AS xid)
         SELECT 'log', NULL::text, newest::text, next.xid::text
           FROM next, (SELECT max(transaction_id) AS newest FROM events) AS log
          WHERE newest >= next.xid
         UNION ALL
         SELECT 'checkpoint', name, transaction_id::text, next.xid::text
           FROM next, projection_checkpoints
          WHERE transaction_id >= next.xid
          ORDER BY 1 DESC, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    let Some(next_transaction_id) = rows.first().map(|row| row.3.clone()) else {
        return Ok(Ok(()));
    };
    let ahead = rows
        .into_iter()
        .map(
            |(kind, name, transaction_id, _)| match (kind.as_str(), name) {
                ("checkpoint", Some(projection)) => Ahead::Checkpoint {
                    projection,
                    transaction_id,
                },
                _ => Ahead::Log { transaction_id },
            },
        )
        .collect();
    Ok(Err(BehindTheLog {
        next_transaction_id,
        ahead,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_what_is_ahead_and_the_runbook() {
        let behind = BehindTheLog {
            next_transaction_id: "740".into(),
            ahead: vec![
                Ahead::Log {
                    transaction_id: "20345".into(),
                },
                Ahead::Checkpoint {
                    projection: "catalog".into(),
                    transaction_id: "20340".into(),
                },
            ],
        };
        let message = behind.to_string();
        assert!(message.contains("next transaction id is 740"), "{message}");
        assert!(
            message.contains("the log's newest event has transaction id 20345"),
            "{message}"
        );
        assert!(
            message.contains("the checkpoint of catalog is at transaction id 20340"),
            "{message}"
        );
        assert!(message.ends_with(RUNBOOK), "{message}");
        assert!(behind.log_is_ahead());
    }
}
