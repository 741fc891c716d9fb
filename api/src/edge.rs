//! What every request passes through, outermost first:
//! - a request id (a well-formed `X-Request-Id` is kept, else one is made), echoed in
//!   the response and carried by the request's span;
//! - the client's address ([`ClientIp`]): `CF-Connecting-IP` when
//!   `TRUST_CLOUDFLARE_HEADERS=true` (Cloudflare sets it and strips a client's own),
//!   otherwise the socket's peer — the header is never read when the setting is off;
//! - a per-client rate limit kept in Redis (429 with `Retry-After`; operations
//!   endpoints are exempt; when Redis is unreachable requests are let through);
//! - a request body limit (413), whether the body is sized or chunked;
//! - same-origin requests (the bundled Swagger UI) kept out of CORS;
//! - errors that escaped the operations rendered as problems;
//! - security headers on every response;
//! - one log line per request with its status and latency.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use poem::http::{header, HeaderValue, Method};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use projections::cache::RedisLink;
use sentry::SentryFutureExt;
use tracing::Instrument;

use crate::auth::{TokenVerifier, VerifiedBearer};
use crate::config::EdgeSettings;
use crate::metrics::{ApiMetrics, Observed, RouteId};
use crate::problem::{self, ApiError};
use crate::redis_link::Redis;
use crate::request_id::{RequestId, REQUEST_ID_HEADER};

/// Whether the request's `Origin` is the server's own (scheme aside), as for the
/// Swagger UI served at `/docs`.
fn is_same_origin(request: &Request) -> bool {
    let headers = request.headers();
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// The client's address, as [`Edge`] decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

const CF_CONNECTING_IP: &str = "cf-connecting-ip";

/// Paths probes and scrapers call; never rate limited.
fn is_operations_path(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// The security headers every response carries. The API serves JSON only, so its
/// content policy forbids everything; the Swagger UI at `/docs` needs its own scripts
/// and styles and gets no content policy.
fn add_security_headers(response: &mut Response, path: &str, hsts: bool) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-site"),
    );
    if !path.starts_with("/docs") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

/// Per-client fixed-window counters in Redis: the first request of a window starts a
/// one-minute key, each request increments it, one round trip. A client is a user
/// once its token verifies, else an address.
#[derive(Debug, Clone)]
struct RateLimiter {
    redis: RedisLink,
    prefix: String,
    per_minute: u32,
    script: Arc<redis::Script>,
}

/// What the limiter counted for one request: the budget's state after it.
#[derive(Debug, Clone, Copy)]
struct Counted {
    count: u64,
    limit: u64,
    reset_seconds: u64,
}

impl Counted {
    fn refused(&self) -> bool {
        self.count > self.limit
    }

    /// `RateLimit` and `RateLimit-Policy` (IETF draft-ietf-httpapi-ratelimit-headers):
    /// the requests left in the window and the seconds until it resets.
    fn headers(&self) -> [(&'static str, String); 2] {
        let remaining = self.limit.saturating_sub(self.count);
        [
            (
                "ratelimit-policy",
                format!("\"{POLICY}\";q={};w={}", self.limit, WINDOW_MS / 1000),
            ),
            (
                "ratelimit",
                format!("\"{POLICY}\";r={remaining};t={}", self.reset_seconds),
            ),
        ]
    }
}

/// The name of the one rate-limit policy, in the headers.
const POLICY: &str = "default";

const WINDOW_MS: u64 = 60_000;

impl RateLimiter {
    fn new(redis: &Redis, per_minute: u32) -> Self {
        Self {
            redis: redis.link().clone(),
            prefix: format!("{}:ratelimit:", redis.namespace()),
            per_minute,
            script: Arc::new(redis::Script::new(
                r"local n = redis.call('INCR', KEYS[1])
                  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
                  local ttl = redis.call('PTTL', KEYS[1])
                  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
                  return {n, ttl}",
            )),
        }
    }

    /// Counts a request of `client`; `None` when Redis is unreachable (the request is
    /// served: serving beats refusing everyone).
    async fn count(&self, client: &str) -> Option<Counted> {
        let key = format!("{}{client}", self.prefix);
        let script = Arc::clone(&self.script);
        let counted: Option<(u64, u64)> = self
            .redis
            .call(|mut connection| async move {
                script
                    .key(key)
                    .arg(WINDOW_MS)
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
        counted.map(|(count, ttl_ms)| Counted {
            count,
            limit: u64::from(self.per_minute),
            reset_seconds: ttl_ms.div_ceil(1000).max(1),
        })
    }

    /// Gives back a request that cost the server nothing new (a `304`).
    async fn refund(&self, client: &str) {
        let key = format!("{}{client}", self.prefix);
        let _: Option<i64> = self
            .redis
            .call(|mut connection| async move {
                redis::cmd("DECR")
                    .arg(key)
                    .query_async(&mut connection)
                    .await
            })
            .await;
    }
}

/// Renders an operation's result: an error that travels as one (a problem) becomes
/// its response; any other error is rendered as a problem.
fn render(result: poem::Result<Response>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) if error.is_from_response() => error.into_response(),
        Err(error) => problem::from_poem_error(error),
    }
}

/// The outer middleware: request id, client address, the request's span and log line,
/// security headers. Install with `EndpointExt::around`, outside everything else.
#[derive(Debug, Clone)]
pub struct Edge {
    trust_cloudflare_headers: bool,
    hsts: bool,
    metrics: Arc<ApiMetrics>,
}

impl Edge {
    pub fn new(settings: &EdgeSettings, metrics: Arc<ApiMetrics>) -> Self {
        Self {
            trust_cloudflare_headers: settings.trust_cloudflare_headers,
            hsts: settings.hsts,
            metrics,
        }
    }

    fn client_ip(&self, request: &Request) -> ClientIp {
        let forwarded = self
            .trust_cloudflare_headers
            .then(|| request.headers().get(CF_CONNECTING_IP))
            .flatten()
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<IpAddr>().ok());
        ClientIp(forwarded.or_else(|| {
            request
                .remote_addr()
                .as_socket_addr()
                .map(|addr| addr.ip().to_canonical())
        }))
    }

    pub async fn handle<E: Endpoint>(
        &self,
        next: E,
        mut request: Request,
    ) -> poem::Result<Response> {
        // CORS is for other origins; poem's refuses any origin not listed, which would
        // refuse the API's own Swagger UI. A same-origin request needs no CORS headers.
        if is_same_origin(&request) {
            request.headers_mut().remove(header::ORIGIN);
        }
        let request_id = RequestId::from_header(request.headers().get(REQUEST_ID_HEADER))
            .unwrap_or_else(RequestId::generate);
        // Everything that runs for the request reads its id from the scope.
        request_id
            .clone()
            .scope(self.serve(next, request, request_id))
            .await
    }

    async fn serve<E: Endpoint>(
        &self,
        next: E,
        mut request: Request,
        request_id: RequestId,
    ) -> poem::Result<Response> {
        let client = self.client_ip(&request);
        request.extensions_mut().insert(client);
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let resolved = self.metrics.route(&method, &path);
        request.extensions_mut().insert(RouteId(resolved.id));
        let route = resolved.template;
        let request_bytes = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0);
        let span = tracing::info_span!(
            "request",
            request.id = %request_id,
            http.method = %method,
            http.route = route,
            http.path = %path,
            client.ip = client.0.map(tracing::field::display),
            trace.id = tracing::field::Empty,
        );
        if let Some(trace_id) = telemetry::traces::trace_id(&span) {
            span.record("trace.id", trace_id.as_str());
        }
        let started = Instant::now();
        // With Sentry on, a hub per request: what the request learns (its organisation)
        // tags only its own events. With it off, nothing is allocated.
        let hub = sentry::Hub::current();
        let hub = hub.client().is_some().then(|| {
            let hub = Arc::new(sentry::Hub::new_from_top(hub));
            hub.configure_scope(|scope| {
                scope.set_tag("request_id", request_id.as_str());
                scope.set_tag("route", route);
                scope.set_tag("http.method", method.as_str());
            });
            hub
        });
        let call = next.call(request).instrument(span.clone());
        let result = match &hub {
            Some(hub) => call.bind_hub(Arc::clone(hub)).await,
            None => call.await,
        }
        .map(IntoResponse::into_response);
        let mut response = render(result);
        if let (Some(hub), true) = (&hub, response.status().is_server_error()) {
            hub.configure_scope(|scope| {
                scope.set_tag("http.status", response.status().as_u16());
            });
            hub.capture_message(
                &format!("{method} {route} answered {}", response.status().as_u16()),
                sentry::Level::Error,
            );
        }
        if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        add_security_headers(&mut response, &path, self.hsts);
        // Bodies here are small JSON documents already in memory: measuring is cheap.
        let body = response.take_body().into_bytes().await.unwrap_or_default();
        let response_bytes = body.len() as u64;
        response.set_body(body);
        self.metrics.observe(&Observed {
            method: &method,
            route: resolved,
            status: response.status(),
            elapsed: started.elapsed(),
            request_bytes,
            response_bytes,
        });
        // Probes and scrapes come every few seconds from every replica: their answers
        // are counted in the metrics, and only their failures are logged.
        if !is_operations_path(&path) || !response.status().is_success() {
            span.in_scope(|| {
                tracing::info!(
                    http.status = response.status().as_u16(),
                    latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "request served"
                );
            });
        }
        Ok(response)
    }
}

/// The inner middleware, inside CORS (so its refusals carry CORS headers the SPA can
/// read): the rate limit, the body limit, and errors rendered as problems. Install
/// with `EndpointExt::around` on the routes.
#[derive(Debug, Clone)]
pub struct Admission {
    max_body_bytes: u64,
    limiter: Option<RateLimiter>,
    /// Resolves requests to the documented routes.
    metrics: Arc<ApiMetrics>,
    /// Tells whose budget a request spends.
    verifier: Arc<TokenVerifier>,
}

impl Admission {
    pub fn new(
        settings: &EdgeSettings,
        redis: &Redis,
        metrics: Arc<ApiMetrics>,
        verifier: Arc<TokenVerifier>,
    ) -> Self {
        Self {
            max_body_bytes: settings.max_body_bytes,
            limiter: (settings.rate_limit_per_minute > 0)
                .then(|| RateLimiter::new(redis, settings.rate_limit_per_minute)),
            metrics,
            verifier,
        }
    }

    /// Refuses a body over the limit: by `Content-Length` at once, or, for a body
    /// without one (chunked), by reading at most the limit.
    async fn limit_body(&self, request: &mut Request) -> Result<(), ApiError> {
        let too_large = ApiError::PayloadTooLarge {
            limit: self.max_body_bytes,
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<u64>().ok());
        match declared {
            Some(length) if length > self.max_body_bytes => Err(too_large),
            Some(_) => Ok(()),
            None if request.headers().contains_key(header::TRANSFER_ENCODING) => {
                let limit = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
                match request.take_body().into_bytes_limit(limit).await {
                    Ok(bytes) => {
                        request.set_body(Body::from(bytes));
                        Ok(())
                    }
                    Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(too_large),
                    Err(error) => Err(ApiError::MalformedRequest {
                        detail: format!("the request body cannot be read: {error}"),
                        errors: domain::values::FieldErrors::default(),
                    }),
                }
            }
            None => Ok(()),
        }
    }

    /// Refuses what the OpenAPI document does not offer: a method the path does not
    /// have (405 with `Allow`), a query parameter the operation does not read (400
    /// naming each), so that a typo is never a filter silently ignored.
    fn offered(&self, request: &Request) -> Result<(), ApiError> {
        let method = match request.method() {
            &Method::HEAD => &Method::GET,
            method => method,
        };
        // The edge resolved the route already (for its metrics).
        let route = match request.extensions().get::<RouteId>() {
            Some(id) => self.metrics.route_by_id(*id, method),
            None => self.metrics.route(method, request.uri().path()),
        };
        let Some(query) = route.query else {
            return match route.allow {
                Some(allow) if method != Method::OPTIONS => Err(ApiError::MethodNotAllowed {
                    allow: Some(allow.to_owned()),
                }),
                _ => Ok(()),
            };
        };
        let pairs: Vec<(String, String)> = request.params().unwrap_or_default();
        let mut unknown = domain::values::FieldErrors::default();
        let mut named = Vec::new();
        for (name, _) in pairs {
            if !query.contains(&name) && !named.contains(&name) {
                unknown.push(name.clone(), "is not a parameter of this operation");
                named.push(name);
            }
        }
        if named.is_empty() {
            return Ok(());
        }
        let reads = if query.is_empty() {
            "none".to_owned()
        } else {
            query.join(", ")
        };
        Err(ApiError::MalformedRequest {
            detail: format!(
                "unknown query parameter {}; this operation reads: {reads}",
                named.join(", ")
            ),
            errors: unknown,
        })
    }

    /// Whose budget a request spends: its user's (within the organisation) once its
    /// bearer token verifies, else its address's. `None` for what is never limited
    /// (probes, scrapes, preflights) or when the client has neither.
    async fn client_of(&self, request: &mut Request) -> Option<String> {
        if request.method() == Method::OPTIONS || is_operations_path(request.uri().path()) {
            return None;
        }
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| token.trim().to_owned());
        if let Some(token) = token {
            if let Ok(actor) = self.verifier.verify(&token).await {
                let client = format!("user:{}:{}", actor.org_id.as_str(), actor.user_id.as_str());
                // The operation's check takes it from here: verified once a request.
                request
                    .extensions_mut()
                    .insert(VerifiedBearer { token, actor });
                return Some(client);
            }
        }
        let ip = request.extensions().get::<ClientIp>().and_then(|c| c.0)?;
        Some(format!("ip:{ip}"))
    }

    async fn admit(&self, request: &mut Request) -> Result<(), ApiError> {
        self.offered(request)?;
        self.limit_body(request).await
    }

    pub async fn handle<E: Endpoint>(
        &self,
        next: E,
        mut request: Request,
    ) -> poem::Result<Response> {
        let counted = match &self.limiter {
            Some(limiter) => match self.client_of(&mut request).await {
                Some(client) => limiter
                    .count(&client)
                    .await
                    .map(|counted| (limiter, client, counted)),
                None => None,
            },
            None => None,
        };
        let mut response = match counted.as_ref().map(|(_, _, counted)| *counted) {
            Some(counted) if counted.refused() => {
                tracing::info!("rate limited");
                problem::response(ApiError::RateLimited {
                    retry_after_seconds: counted.reset_seconds,
                })
            }
            _ => match self.admit(&mut request).await {
                Err(refused) => problem::response(refused),
                Ok(()) => render(next.call(request).await.map(IntoResponse::into_response)),
            },
        };
        if let Some((limiter, client, mut counted)) = counted {
            // A revalidation answered `304` is not counted against the page's budget.
            if response.status() == poem::http::StatusCode::NOT_MODIFIED {
                limiter.refund(&client).await;
                counted.count = counted.count.saturating_sub(1);
            }
            for (name, value) in counted.headers() {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        Ok(response)
    }
}
