//! The api's metrics, served at `/metrics` in Prometheus text format.
//!
//! HTTP series carry `method`, `path` and `status`; `path` is the route template from
//! the OpenAPI document (`/v1/buildings/{id}`), never the raw path, and every path
//! matching no route is `unmatched`, so label values stay bounded. Domain counters:
//! commands by operation and outcome, cache lookups by view and outcome, token
//! refusals by reason. Process and runtime series come from [`telemetry::metrics`].
//!
//! With `ENV=production`, `/metrics` needs `Authorization: Bearer $METRICS_SCRAPE_TOKEN`
//! (compared in constant time) or a token with `audit:read`; anything else gets 401.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use poem::http::{header, Method, StatusCode};
use poem::{handler, web::Data, IntoResponse, Request, Response};
use telemetry::metrics::{bearer, Registry, ScrapeToken};

use crate::auth::{Scope, TokenVerifier};
use crate::config::Secret;
use crate::edge::RequestId;
use crate::problem::ApiError;

/// The `path` label of requests that match no route.
pub const UNMATCHED: &str = "unmatched";

/// Routes served outside the OpenAPI document, by path prefix.
const OTHER_ROUTES: [&str; 3] = ["/openapi.json", "/metrics", "/docs"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
}

/// One documented path: its template, segments, and operation ids by method.
#[derive(Debug)]
struct Route {
    template: String,
    segments: Vec<Segment>,
    operations: HashMap<String, String>,
}

/// Resolves a request to its route template (and operation id) from the OpenAPI
/// document, without depending on how the router names its parameters.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// The table of the document `spec` (OpenAPI JSON).
    pub fn from_spec(spec: &str) -> Self {
        let document: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes: Vec<Route> = document["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(template, item)| Route {
                        template: template.clone(),
                        segments: template
                            .split('/')
                            .skip(1)
                            .map(|segment| {
                                if segment.starts_with('{') {
                                    Segment::Parameter
                                } else {
                                    Segment::Literal(segment.to_owned())
                                }
                            })
                            .collect(),
                        operations: item
                            .as_object()
                            .map(|methods| {
                                methods
                                    .iter()
                                    .filter_map(|(method, op)| {
                                        Some((
                                            method.to_ascii_uppercase(),
                                            op["operationId"].as_str()?.to_owned(),
                                        ))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Literal segments win over parameters (`/v1/comps/lease` before `/v1/comps/{id}`).
        routes.sort_by_key(|route| {
            route
                .segments
                .iter()
                .filter(|s| **s == Segment::Parameter)
                .count()
        });
        Self { routes }
    }

    /// The template and, when the method has one, the operation id of `path`.
    pub fn resolve(&self, method: &Method, path: &str) -> ResolvedRoute<'_> {
        let parts = path.split('/').skip(1);
        let count = parts.clone().count();
        for (id, route) in self.routes.iter().enumerate() {
            let matches =
                route.segments.len() == count
                    && route.segments.iter().zip(parts.clone()).all(
                        |(segment, part)| match segment {
                            Segment::Literal(literal) => literal == part,
                            Segment::Parameter => !part.is_empty(),
                        },
                    );
            if matches {
                return ResolvedRoute {
                    id,
                    template: route.template.as_str(),
                    operation: route.operations.get(method.as_str()).map(String::as_str),
                };
            }
        }
        for (n, other) in OTHER_ROUTES.into_iter().enumerate() {
            let nested = path
                .strip_prefix(other)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if nested {
                return ResolvedRoute {
                    id: self.routes.len() + n,
                    template: other,
                    operation: None,
                };
            }
        }
        ResolvedRoute {
            id: self.routes.len() + OTHER_ROUTES.len(),
            template: UNMATCHED,
            operation: None,
        }
    }
}

/// A request's route: an id for the series cache, the template for the `path`
/// label, and the operation id when the method has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedRoute<'a> {
    pub id: usize,
    pub template: &'a str,
    pub operation: Option<&'a str>,
}

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

/// Who may scrape: anyone, or (production) the scrape token's holder or an
/// `audit:read` token.
#[derive(Debug)]
pub struct ScrapeGuard {
    protected: bool,
    token: Option<ScrapeToken>,
}

impl ScrapeGuard {
    pub fn new(protected: bool, token: Option<&Secret>) -> Self {
        Self {
            protected,
            token: token.map(ScrapeToken::new),
        }
    }

    async fn admits(&self, request: &Request, verifier: &TokenVerifier) -> bool {
        if !self.protected {
            return true;
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(presented) = bearer(authorization) else {
            return false;
        };
        if self.token.as_ref().is_some_and(|t| t.matches(presented)) {
            return true;
        }
        verifier
            .verify(presented)
            .await
            .is_ok_and(|actor| actor.has(Scope::AuditRead))
    }
}

/// `GET /metrics`.
#[handler]
pub async fn scrape(
    request: &Request,
    metrics: Data<&Arc<ApiMetrics>>,
    guard: Data<&Arc<ScrapeGuard>>,
    verifier: Data<&Arc<TokenVerifier>>,
    request_id: Data<&RequestId>,
) -> Response {
    if !guard.admits(request, &verifier).await {
        return ApiError::Unauthenticated(
            "scraping needs the metrics scrape token or a token with audit:read".into(),
        )
        .into_problem(&request_id)
        .into_response();
    }
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_their_templates_and_others_collapse() {
        let table = RouteTable::from_spec(&crate::spec::document());
        let id = "01a211de-85b1-74e2-ab37-c248cf58d5fa";
        let resolve = |method: &Method, path: &str| {
            let route = table.resolve(method, path);
            (
                route.template.to_owned(),
                route.operation.map(str::to_owned),
            )
        };
        assert_eq!(
            resolve(&Method::GET, &format!("/v1/buildings/{id}")),
            ("/v1/buildings/{id}".into(), Some("get_building".into()))
        );
        assert_eq!(
            resolve(&Method::POST, "/v1/comps/lease"),
            ("/v1/comps/lease".into(), Some("record_lease_comp".into()))
        );
        assert_eq!(
            resolve(&Method::POST, &format!("/v1/comps/{id}/verify")).0,
            "/v1/comps/{id}/verify"
        );
        assert_eq!(resolve(&Method::GET, "/docs/index.css").0, "/docs");
        assert_eq!(resolve(&Method::GET, "/docsy").0, UNMATCHED);
        assert_eq!(
            resolve(&Method::GET, "/wp-admin.php"),
            (UNMATCHED.into(), None)
        );
        assert_eq!(resolve(&Method::GET, "/v1/buildings/").0, UNMATCHED);
        assert_ne!(
            table.resolve(&Method::GET, "/health").id,
            table.resolve(&Method::GET, "/ready").id,
            "each route its own series"
        );
    }
}
