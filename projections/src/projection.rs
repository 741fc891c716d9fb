//! The one list of projections: [`Projection::ALL`]. Catch-up, rebuilds, status,
//! metrics, the admin API, the CLI and the tests all read it, so adding a projection
//! is its module (a [`Projector`]), its migration and one line here.

use std::fmt;

use crate::projector::Projector;
use crate::{audit, catalog};

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

    /// Whether it reflects every committed event at or below global `position` (a
    /// command's result): [`crate::checkpoint::reflects`].
    pub async fn reflects(
        self,
        db: impl sqlx::PgExecutor<'_>,
        position: i64,
    ) -> Result<bool, sqlx::Error> {
        crate::checkpoint::reflects(db, self.name(), position).await
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
