//! What a projection implements: the [`Projector`] trait, and the [`Check`]s and
//! [`Fold`]s with which it states what its rows must be. The projectors themselves
//! (`catalog`, `audit`) implement it; `projection` lists them.

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::log::LoggedEvent;
use crate::ProjectionError;

/// A read model built from the event log.
#[async_trait]
pub trait Projector: Send + Sync + 'static {
    /// The stable name: checkpoints, metrics, the admin API and the CLI use it.
    fn name(&self) -> &'static str;

    /// The advisory-lock key that serialises this projection's batches. Never change
    /// it: during a rolling deploy old and new workers must agree on it.
    fn lock_key(&self) -> i64;

    /// The tables the projection owns (a rebuild builds and swaps exactly these), with
    /// the `ORDER BY` that lists their rows in a stable order.
    fn tables(&self) -> &'static [(&'static str, &'static str)];

    /// Applies events, in log order, in the batch's transaction. Table names are
    /// unqualified: a rebuild points them at its shadow tables.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[LoggedEvent],
        target: Target,
    ) -> Result<(), ProjectionError>;

    /// What a rebuild proves before it swaps: each check folds the log independently
    /// of [`Self::apply`] and compares per-organisation counts and digests with the rows.
    fn checks(&self) -> &'static [Check];

    /// Folds of the log that several of [`Self::checks`] read, made once per
    /// verification.
    fn folds(&self) -> &'static [Fold] {
        &[]
    }

    /// Whether the Redis cache views are read from this projection's tables (a swap
    /// then raises the views' generation).
    fn feeds_cache(&self) -> bool {
        false
    }
}

/// Whose tables a batch is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The tables queries read: what readers see changes with the batch (the catalog
    /// queues its cache refreshes).
    Live,
    /// A rebuild's shadow tables: nobody reads them until the swap, which moves the
    /// cache to a new generation instead of refreshing views one by one.
    Shadow,
}

/// One comparison. Both queries return `(org_id text, rows bigint, digest numeric)`
/// per organisation; `expected` reads `events` up to the cursor (`$1` transaction id as
/// text, `$2` position), `actual` reads the projection's tables. A row's hash is
/// `('x' || left(md5(<text>), 15))::bit(60)::bigint`, summed into the digest.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub name: &'static str,
    pub expected: &'static str,
    pub actual: &'static str,
}

/// A fold of the log that several checks read: made once per verification, as a
/// temporary table `name` dropped with the verification's transaction. `query` reads
/// `events` up to the cursor like [`Check::expected`] (`$1`, `$2`).
#[derive(Debug, Clone, Copy)]
pub struct Fold {
    pub name: &'static str,
    pub query: &'static str,
}
