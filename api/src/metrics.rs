//! The api's metrics, served at `/metrics` in Prometheus text format (the endpoint
//! and who may scrape it are in `ops`).
//!
//! HTTP series carry `method`, `path` and `status`; `path` is the route template from
//! the OpenAPI document (`/v1/buildings/{id}`, see `route_table`), never the raw path,
//! and every path matching no route is `unmatched`, so label values stay bounded.
//! Domain counters: commands by operation and outcome, cache lookups by view and
//! outcome, token refusals by reason. Process and runtime series come from
//! [`telemetry::metrics`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use poem::http::{Method, StatusCode};
use telemetry::metrics::Registry;

use crate::route_table::{ResolvedRoute, RouteTable};

/// The `method` label: the standard methods, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// How a command ended, by status.
fn command_outcome(status: StatusCode) -> &'static str {
    if status.is_success() {
        "accepted"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "unauthorised"
    } else if status.is_client_error() {
        "rejected"
    } else {
        "failed"
    }
}

/// One finished request, as the edge saw it.
#[derive(Debug)]
pub struct Observed<'a> {
    pub method: &'a Method,
    /// From [`ApiMetrics::route`].
    pub route: ResolvedRoute<'a>,
    pub status: StatusCode,
    pub elapsed: Duration,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// The route the edge resolved a request to, kept in the request's extensions so that
/// the layers inside it do not match the path again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId(pub usize);

/// Method label, route id and status.
type SeriesKey = (&'static str, usize, u16);

/// The series one kind of request (method, route, status) counts in, looked up once.
#[derive(Debug)]
struct Series {
    requests: metrics::Counter,
    duration: metrics::Histogram,
    request_size: metrics::Histogram,
    response_size: metrics::Histogram,
    command: Option<metrics::Counter>,
}

/// The api's metrics.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    routes: RouteTable,
    /// Series by (method, route id, status): a request records into handles, with no
    /// label strings built and no registry lookup once its kind has been seen.
    series: std::sync::RwLock<HashMap<SeriesKey, Arc<Series>>>,
}

impl ApiMetrics {
    pub fn new(registry: Registry, routes: RouteTable) -> Self {
        use metrics::Unit;
        registry.describe_counter(
            "http_requests_total",
            None,
            "HTTP requests by method, route template and status.",
        );
        registry.describe_histogram(
            "http_request_duration_seconds",
            Some(Unit::Seconds),
            "Time from receiving a request to its response.",
        );
        registry.describe_histogram(
            "http_request_size_bytes",
            Some(Unit::Bytes),
            "Request body sizes (Content-Length).",
        );
        registry.describe_histogram(
            "http_response_size_bytes",
            Some(Unit::Bytes),
            "Response body sizes.",
        );
        registry.describe_counter(
            "prism_commands_total",
            None,
            "Commands by operation and outcome (accepted, rejected, unauthorised, failed).",
        );
        registry.describe_counter(
            "prism_cache_requests_total",
            None,
            "Cache view lookups by view and outcome (hit, miss, unavailable).",
        );
        registry.describe_counter(
            "prism_auth_failures_total",
            None,
            "Refused bearer tokens by reason.",
        );
        Self {
            registry,
            routes,
            series: std::sync::RwLock::default(),
        }
    }

    /// The route of a request.
    pub fn route(&self, method: &Method, path: &str) -> ResolvedRoute<'_> {
        self.routes.resolve(method, path)
    }

    /// A route resolved before, by its id ([`RouteId`]).
    pub fn route_by_id(&self, id: RouteId, method: &Method) -> ResolvedRoute<'_> {
        self.routes.route(id.0, method)
    }

    fn series(&self, request: &Observed<'_>) -> Arc<Series> {
        let method = method_label(request.method);
        let key = (method, request.route.id, request.status.as_u16());
        if let Some(series) = self.series.read().ok().and_then(|s| s.get(&key).cloned()) {
            return series;
        }
        let labels = || {
            vec![
                ("method", method.to_owned()),
                ("path", request.route.template.to_owned()),
                ("status", request.status.as_u16().to_string()),
            ]
        };
        let is_command = matches!(*request.method, Method::POST | Method::PATCH)
            && (request.route.template.starts_with("/v1/buildings")
                || request.route.template.starts_with("/v1/comps"));
        let series = Arc::new(Series {
            requests: self.registry.counter("http_requests_total", labels()),
            duration: self
                .registry
                .histogram("http_request_duration_seconds", labels()),
            request_size: self.registry.histogram("http_request_size_bytes", labels()),
            response_size: self
                .registry
                .histogram("http_response_size_bytes", labels()),
            command: request
                .route
                .operation
                .filter(|_| is_command)
                .map(|operation| {
                    self.registry.counter(
                        "prism_commands_total",
                        vec![
                            ("command", operation.to_owned()),
                            ("outcome", command_outcome(request.status).to_owned()),
                        ],
                    )
                }),
        });
        if let Ok(mut all) = self.series.write() {
            all.insert(key, Arc::clone(&series));
        }
        series
    }

    pub fn observe(&self, request: &Observed<'_>) {
        let series = self.series(request);
        series.requests.increment(1);
        series.duration.record(request.elapsed.as_secs_f64());
        series.request_size.record(request.request_bytes as f64);
        series.response_size.record(request.response_bytes as f64);
        if let Some(command) = &series.command {
            command.increment(1);
        }
    }

    /// A cache lookup of `view` (`building`, `comp`, `buildings_page`, …).
    pub fn cache(&self, view: &'static str, outcome: projections::cache::CacheOutcome) {
        use projections::cache::CacheOutcome as O;
        let outcome = match outcome {
            O::Hit => "hit",
            O::Miss => "miss",
            O::Unavailable => "unavailable",
        };
        self.registry
            .counter(
                "prism_cache_requests_total",
                vec![("view", view.to_owned()), ("outcome", outcome.to_owned())],
            )
            .increment(1);
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.registry
            .counter(
                "prism_auth_failures_total",
                vec![("reason", reason.to_owned())],
            )
            .increment(1);
    }

    pub fn render(&self) -> String {
        self.registry.render()
    }
}
