//! Databases for tests (feature `testing`): each test gets its own, so tests run in
//! parallel. A migrated database is a `CREATE DATABASE … TEMPLATE` copy (milliseconds)
//! of a template migrated once per migration fingerprint and kept between runs; an
//! empty one is for testing the migrations themselves. Each is dropped when its
//! handle is, panics included.
//!
//! The server is `PRISM_TEST_DATABASE_URL` (a superuser's URL to any database on it),
//! by default `postgres://postgres@127.0.0.1:5432/postgres`.

use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::{Migrator, MigratorTrait, FINGERPRINT};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Serialises template creation across test processes (an advisory lock key).
const TEMPLATE_LOCK: i64 = 0x5052_4953_4d54_504c; // "PRISMTPL"

/// The admin URL with its database name replaced.
fn url_for(admin_url: &str, database: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

fn admin_url() -> String {
    std::env::var("PRISM_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    kept: bool,
}

impl TestDatabase {
    /// An empty database (no migrations applied).
    pub async fn empty() -> Self {
        Self::create(&admin_url(), "test", None).await
    }

    /// An empty database named `prism_{label}_…` on the server at `admin_url` (a
    /// superuser's URL): a benchmark's, which its binaries migrate.
    pub async fn empty_on(admin_url: &str, label: &str) -> Self {
        Self::create(admin_url, label, None).await
    }

    /// A database with every migration applied.
    pub async fn migrated() -> Self {
        let admin_url = admin_url();
        let template = ensure_template(&admin_url).await;
        Self::create(&admin_url, "test", Some(&template)).await
    }

    async fn create(admin_url: &str, label: &str, template: Option<&str>) -> Self {
        let name = format!("prism_{label}_{}", Uuid::new_v4().simple());
        let mut admin = connect(admin_url).await;
        let statement = match template {
            Some(template) => format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#),
            None => format!(r#"CREATE DATABASE "{name}""#),
        };
        admin
            .execute(statement.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let url = url_for(admin_url, &name);
        Self {
            name,
            url,
            admin_url: admin_url.to_owned(),
            kept: false,
        }
    }

    /// Leaves the database in place when the handle drops (to look at it afterwards).
    pub fn keep(&mut self) {
        self.kept = true;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL to connect to this database with.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.kept {
            eprintln!("kept database {}", self.name);
            return;
        }
        // Drop may run inside an async test: do the blocking work on a thread of its own.
        let statement = format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name);
        let admin_url = self.admin_url.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(statement.as_str()).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {} was not dropped", self.name);
        }
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the Postgres server as a superuser (PRISM_TEST_DATABASE_URL, or the benchmarks' PRISM_BENCH_DATABASE_URL): {e}"))
}

/// The name of a template database migrated to the current fingerprint, created if
/// missing. Templates of other fingerprints are dropped when a new one is made.
async fn ensure_template(admin_url: &str) -> String {
    let template = format!("prism_tmpl_{FINGERPRINT}");
    let mut admin = connect(admin_url).await;
    if template_exists(&mut admin, &template).await {
        return template;
    }
    admin
        .execute(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})").as_str())
        .await
        .expect("template lock");
    if !template_exists(&mut admin, &template).await {
        let building = format!("{template}_building");
        admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#).as_str())
            .await
            .expect("drop a half-built template");
        admin
            .execute(format!(r#"CREATE DATABASE "{building}""#).as_str())
            .await
            .expect("create template");
        let db = sea_orm::Database::connect(url_for(admin_url, &building))
            .await
            .expect("connect to template");
        Migrator::up(&db, None).await.expect("migrate template");
        db.close().await.expect("close template connection");
        drop_other_templates(&mut admin, &[&template, &building]).await;
        // Publish under the final name only once fully migrated.
        admin
            .execute(
                format!(
                    r#"ALTER DATABASE "{building}" RENAME TO "{template}";
                       ALTER DATABASE "{template}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"#
                )
                .as_str(),
            )
            .await
            .expect("publish template");
    }
    admin
        .execute(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})").as_str())
        .await
        .expect("template unlock");
    let _ = admin.close().await;
    template
}

async fn template_exists(admin: &mut PgConnection, template: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(template)
        .fetch_one(&mut *admin)
        .await
        .expect("look up template")
}

async fn drop_other_templates(admin: &mut PgConnection, keep: &[&str]) {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'prism\\_tmpl\\_%' AND datname <> ALL($1)",
    )
    .bind(keep)
    .fetch_all(&mut *admin)
    .await
    .expect("list templates");
    for name in stale {
        // Best effort: a concurrent run may still be copying from an older template.
        let _ = admin
            .execute(format!(r#"ALTER DATABASE "{name}" WITH IS_TEMPLATE false"#).as_str())
            .await;
        let _ = admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{name}""#).as_str())
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::url_for;

    #[test]
    fn url_for_replaces_only_the_database_name() {
        assert_eq!(
            url_for("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(url_for("postgres://u@h/db", "y"), "postgres://u@h/y");
    }
}
