//! `prism-api migrate up|down [N|all]|status|fresh`: the migrations crate against
//! `DATABASE_URL`. A session advisory lock makes concurrent migrators (two replicas
//! starting) take turns; each run is one transaction. `fresh` rolls every migration
//! back through its own `down` (sea-orm's `fresh` cannot drop PostGIS's tables) and
//! applies them again; it refuses to run when `ENV=production`.

use anyhow::{bail, Context};
use api::cli::{MigrateAction, Steps};
use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// Advisory lock key held while migrating ("PRISMMIG").
const MIGRATION_LOCK: i64 = 0x5052_4953_4d4d_4947;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down(Option<u32>),
    Status,
    Fresh,
}

impl Action {
    /// The action `prism-api migrate ACTION [STEPS]` names; only `down` takes steps.
    pub fn new(action: MigrateAction, steps: Option<Steps>) -> anyhow::Result<Self> {
        Ok(match (action, steps) {
            (MigrateAction::Down, None) => Self::Down(Some(1)),
            (MigrateAction::Down, Some(Steps::Count(n))) => Self::Down(Some(n)),
            (MigrateAction::Down, Some(Steps::All)) => Self::Down(None),
            (_, Some(_)) => bail!("usage: prism-api migrate up | down [N|all] | status | fresh"),
            (MigrateAction::Up, None) => Self::Up,
            (MigrateAction::Status, None) => Self::Status,
            (MigrateAction::Fresh, None) => Self::Fresh,
        })
    }
}

pub async fn run(database_url: &str, action: Action, production: bool) -> anyhow::Result<()> {
    if production && action == Action::Fresh {
        bail!("migrate fresh deletes every table; it refuses to run with ENV=production");
    }
    let db = Database::connect(database_url)
        .await
        .context("cannot connect to DATABASE_URL")?;
    let lock = Database::connect(database_url).await?;
    lock.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await?;
    let result = apply(&db, action).await;
    lock.execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await?;
    result
}

async fn apply(db: &DatabaseConnection, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Up => Migrator::up(db, None).await?,
        Action::Down(steps) => Migrator::down(db, steps).await?,
        Action::Fresh => {
            Migrator::down(db, None).await?;
            Migrator::up(db, None).await?;
        }
        Action::Status => {}
    }
    for migration in Migrator::get_migration_with_status(db).await? {
        println!(
            "{:<8} {}",
            format!("{}", migration.status()).to_lowercase(),
            migration.name()
        );
    }
    Ok(())
}
