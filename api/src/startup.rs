//! The application value: built from settings, binds its own listener (port 0 in
//! tests), reports its port, and serves until a shutdown future fires. Every
//! dependency of the endpoints is built here, once, into one [`AppState`] that each
//! request is given (`.data`); the middleware (`Edge`, `Admission`, CORS) hold their own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::Cors;
use poem::{EndpointExt, Route, Server};
use sea_orm::SqlxPostgresConnector;
use sqlx::PgPool;

use crate::auth::{ScrapeGuard, TokenVerifier};
use crate::commands::WriteSide;
use crate::config::Settings;
use crate::edge::{Admission, Edge};
use crate::jobs::JobQueue;
use crate::metrics::ApiMetrics;
use crate::ops;
use crate::redis_link::Redis;
use crate::route_table::RouteTable;
use crate::state::AppState;
use crate::views::Views;
use telemetry::metrics::Registry;

/// How long in-flight requests may take to finish after shutdown is asked for.
const GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(10);

/// The Postgres pool the event store and the read models share.
pub async fn connect_database(settings: &Settings) -> anyhow::Result<PgPool> {
    projections::connect_pool_with(
        settings.database_url.expose(),
        &projections::PoolSettings {
            max_connections: settings.database_max_connections,
            acquire_timeout: settings.database_acquire_timeout,
            statement_timeout: settings.database_statement_timeout,
        },
    )
    .await
    .context("cannot connect to DATABASE_URL")
}

pub struct Application {
    acceptor: TcpAcceptor,
    port: u16,
    endpoint: poem::endpoint::BoxEndpoint<'static>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = connect_database(&settings).await?;
        let verifier = Arc::new(TokenVerifier::from_settings(&settings.auth).await?);
        verifier.spawn_refresh();
        let endpoint = routes(pool, verifier, &settings);
        let acceptor = TcpListener::bind(format!("{}:{}", settings.host, settings.port))
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().map(|a| a.port()))
            .context("the listener has no port")?;
        Ok(Self {
            acceptor,
            port,
            endpoint,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.endpoint, shutdown, Some(GRACEFUL_SHUTDOWN))
            .await
    }
}

fn routes(
    pool: PgPool,
    verifier: Arc<TokenVerifier>,
    settings: &Settings,
) -> poem::endpoint::BoxEndpoint<'static> {
    let api = crate::spec::openapi();
    // Served as committed (see `spec`): the UI embeds the document.
    let raw = api.spec();
    let document = crate::spec::render(&raw);
    let docs_html = api.swagger_ui_html().replace(&raw, &document);
    let routes = RouteTable::from_spec(&document);
    let docs = poem::endpoint::make_sync(move |_| poem::web::Html(docs_html.clone()));
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(document.clone())
    });
    let redis = Redis::new(settings);
    let jobs = JobQueue::new(&redis);
    let metrics = Arc::new(ApiMetrics::new(Registry::new(), routes));
    let state = Arc::new(AppState {
        write: WriteSide::new(pool.clone(), jobs.clone()),
        views: Views {
            pool: pool.clone(),
            cache: redis.view_cache(),
            metrics: Arc::clone(&metrics),
            history: Arc::new(tokio::sync::Semaphore::new(crate::views::HISTORY_READS)),
        },
        jobs,
        database: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
        redis: redis.clone(),
        verifier,
        metrics: Arc::clone(&metrics),
        scrape_guard: ScrapeGuard::new(
            settings.log.env.is_production(),
            settings.metrics_scrape_token.as_ref(),
        ),
    });
    let mut cors = Cors::new()
        .allow_methods(["GET", "POST", "PATCH", "DELETE", "OPTIONS"])
        .allow_headers([
            "authorization",
            "content-type",
            "idempotency-key",
            "if-match",
            "if-none-match",
            "x-request-id",
        ])
        .expose_headers([
            "etag",
            "location",
            "idempotent-replayed",
            "projection-lagging",
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
            "x-request-id",
        ])
        .max_age(600);
    for origin in &settings.edge.allowed_origins {
        cors = cors.allow_origin(origin.as_str());
    }
    let admission = Arc::new(Admission::new(
        &settings.edge,
        &redis,
        Arc::clone(&metrics),
        Arc::clone(&state.verifier),
    ));
    let edge = Arc::new(Edge::new(&settings.edge, Arc::clone(&metrics)));
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .at("/metrics", poem::get(ops::scrape))
        .at("/docs", docs)
        .around(move |next, request| {
            let admission = Arc::clone(&admission);
            async move { admission.handle(next, request).await }
        })
        .with(cors)
        .data(state)
        .around(move |next, request| {
            let edge = Arc::clone(&edge);
            async move { edge.handle(next, request).await }
        })
        .boxed()
}
