//! What a projection is: a [`Projector`] implemented once per read model and listed in
//! [`Projection::ALL`]. Catch-up, rebuilds, status, metrics, the admin API and the
//! tests all read that one list, so adding a projection is its module, its migration
//! and one line there.

use std::fmt;

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::log::LoggedEvent;
use crate::verify::{Check, Fold};
use crate::{audit, catalog, ProjectionError};

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

/// A projection: a handle on its [`Projector`], cheap to copy.
#[derive(Clone, Copy)]
pub struct Projection(&'static dyn Projector);

impl Projection {
    /// Buildings, comps, per-building comp statistics and market statistics.
    pub const CATALOG: Projection = Projection(&catalog::Catalog);
    /// One row per event: who did what, when.
    pub const AUDIT: Projection = Projection(&audit::Audit);

    /// Every projection, in the order they are caught up and reported.
    pub const ALL: [Projection; 2] = [Self::CATALOG, Self::AUDIT];

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn projector(self) -> &'static dyn Projector {
        self.0
    }

    pub(crate) fn lock_key(self) -> i64 {
        self.0.lock_key()
    }
}

impl PartialEq for Projection {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Projection {}

impl std::hash::Hash for Projection {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Projection({})", self.name())
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
