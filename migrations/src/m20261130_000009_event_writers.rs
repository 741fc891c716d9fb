//! Event writers announce themselves, so that delivery waits only for transactions
//! that can still commit events.
//!
//! A catch-up reader must not pass a transaction that may still commit events below
//! its checkpoint. Waiting for every open transaction (the snapshot's `xmin`) was
//! correct but let any long transaction — a rebuild, a report, a migration — hold back
//! every projection. Now every statement that inserts into `events` first takes a
//! shared transaction-level advisory lock (key `EVENT_WRITER_LOCK` in
//! `projections::log`), *before* its transaction has an id, and the reader's horizon
//! is the oldest announced writer's transaction (or the snapshot's `xmax`): only
//! event writers can hold delivery back. A transaction that already has an id when it
//! first inserts an event (it wrote something else first) could be passed by a reader
//! that never saw it announced, so that insert is refused.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE FUNCTION prism_announce_event_writer() RETURNS trigger
                   LANGUAGE plpgsql AS $$
                   BEGIN
                     IF current_setting('prism.event_writer', true) IS DISTINCT FROM 'on' THEN
                       IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
                         RAISE EXCEPTION 'events must be the first thing a transaction writes'
                           USING HINT = 'a transaction that wrote other rows first already has an id a catch-up reader may have passed';
                       END IF;
                       -- "PRISMEVW": projections::log::EVENT_WRITER_LOCK.
                       PERFORM pg_advisory_xact_lock_shared(5787769093252011607);
                       PERFORM set_config('prism.event_writer', 'on', true);
                     END IF;
                     RETURN NULL;
                   END $$"#,
                "CREATE TRIGGER events_announce_writer BEFORE INSERT ON events \
                 FOR EACH STATEMENT EXECUTE FUNCTION prism_announce_event_writer()",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "DROP TRIGGER IF EXISTS events_announce_writer ON events",
                "DROP FUNCTION IF EXISTS prism_announce_event_writer()",
            ],
        )
        .await
    }
}
