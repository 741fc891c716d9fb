//! Errors as RFC 9457 problems (`application/problem+json`), mapped in one place.
//!
//! [`ApiError`] says what went wrong; [`ApiError::into_problem`] is the single match
//! from each variant to its status and stable `type` URI (all listed in
//! `docs/errors.md`, so the SPA can branch on them). Internal causes are logged with
//! the request id and never sent. Errors raised before a handler runs (no token, a
//! malformed body, an unknown route) are rendered by [`from_poem_error`] in the same
//! shape.

use domain::values::FieldErrors;
use domain::DomainError;
use poem::http::StatusCode;
use std::borrow::Cow;

use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{ApiResponse, Object};
use serde_json::Value;

use crate::input::BodyRejected;
use crate::request_id::RequestId;

/// Prefix of every problem type; the full list is in docs/errors.md.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:prism:problem:";

/// `Retry-After` of a `503 service-unavailable`: a dependency is down or restarting.
pub const RETRY_UNAVAILABLE_SECONDS: u64 = 2;

/// One refused field.
#[derive(Debug, Clone, Object)]
pub struct FieldProblem {
    /// The field's JSON path (`address.country`), header name, or `body`.
    pub field: String,
    pub message: String,
}

/// Every problem type's slug (`urn:prism:problem:<slug>`), as docs/errors.md lists them.
pub const PROBLEM_SLUGS: [&str; 23] = [
    "malformed-request",
    "unauthenticated",
    "forbidden",
    "cross-origin-refused",
    "not-found",
    "method-not-allowed",
    "payload-too-large",
    "rate-limited",
    "unsupported-media-type",
    "validation-failed",
    "idempotency-key-reused",
    "unknown-building",
    "version-conflict",
    "already-exists",
    "building-archived",
    "building-not-archived",
    "comp-retracted",
    "comp-already-verified",
    "concurrent-modification",
    "rebuild-in-progress",
    "rebuild-finished",
    "service-unavailable",
    "internal",
];

/// A problem's `type`: one of [`PROBLEM_SLUGS`] under [`PROBLEM_TYPE_PREFIX`],
/// documented as an enumeration so that clients can branch on it exhaustively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemType(pub String);

impl Type for ProblemType {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "ProblemType".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference("ProblemType".to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>("ProblemType".to_owned(), |_| MetaSchema {
            description: Some("The kind of problem; docs/errors.md says what each means."),
            enum_items: PROBLEM_SLUGS
                .iter()
                .map(|slug| Value::from(format!("{PROBLEM_TYPE_PREFIX}{slug}")))
                .collect(),
            ..MetaSchema::new("string")
        });
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for ProblemType {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for ProblemType {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// Stable identifier of the kind of problem (`urn:prism:problem:validation-failed`).
    #[oai(rename = "type")]
    pub problem_type: ProblemType,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// Every refused field; empty when the problem is not about fields.
    pub errors: Vec<FieldProblem>,
    /// The aggregate's current version, on a version conflict.
    #[oai(skip_serializing_if_is_none)]
    pub current_version: Option<u64>,
    /// The request's id, for support and logs.
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
}

/// Every problem response an operation may give.
#[derive(Debug, ApiResponse)]
pub enum ProblemResponse {
    /// The request is malformed: unreadable JSON, wrong types, unknown fields, bad headers.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No valid bearer token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>, #[oai(header = "WWW-Authenticate")] String),
    /// The token lacks a scope the operation needs.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// The resource does not exist in the caller's organisation.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The resource's state or version does not allow the command.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request body is larger than the api accepts (`MAX_REQUEST_BODY_BYTES`).
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The request body is not JSON.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// The values are well-formed but not acceptable.
    #[oai(status = 422, content_type = "application/problem+json")]
    UnprocessableEntity(Json<Problem>),
    /// Too many requests from this client; retry after `Retry-After` seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] String),
    /// Something failed on our side; the request id finds it in the logs.
    #[oai(status = 500, content_type = "application/problem+json")]
    InternalServerError(Json<Problem>),
    /// A dependency (the database, Clerk's keys) is unavailable; retry after
    /// `Retry-After` seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    ServiceUnavailable(Json<Problem>, #[oai(header = "Retry-After")] String),
}

/// What went wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `malformed-request`: the request cannot be read as sent.
    #[error("malformed request: {detail}")]
    MalformedRequest { detail: String, errors: FieldErrors },
    /// 401 `unauthenticated`: no token, or one that does not verify.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// 403 `forbidden`: the token lacks the named scope.
    #[error("forbidden: needs scope {0}")]
    Forbidden(&'static str),
    /// 403 `cross-origin-refused`: the request's origin, method or headers are not
    /// allowed for cross-origin calls (`ALLOWED_ORIGINS`).
    #[error("cross-origin request refused")]
    CrossOriginRefused,
    /// 404 `not-found`: no such resource in the caller's organisation (or no route).
    #[error("not found")]
    NotFound,
    /// 405 `method-not-allowed`; `Allow` lists the path's methods when it is known.
    #[error("method not allowed")]
    MethodNotAllowed { allow: Option<String> },
    /// 413 `payload-too-large`: the body is over the limit (bytes).
    #[error("payload too large")]
    PayloadTooLarge { limit: u64 },
    /// 429 `rate-limited`: the client sent too many requests; retry after the seconds.
    #[error("rate limited")]
    RateLimited { retry_after_seconds: u64 },
    /// 415 `unsupported-media-type`: the body must be `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 422 `validation-failed`: fields with unacceptable values, each named.
    #[error("validation failed: {0}")]
    InvalidFields(FieldErrors),
    /// 422 `idempotency-key-reused`: the key was first used with another request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// 422 `unknown-building`: a comp names a building the organisation does not have.
    #[error("unknown building")]
    UnknownBuilding,
    /// 409 `version-conflict`: `If-Match` named another version than the current one.
    #[error("version conflict")]
    VersionConflict { current: Option<u64> },
    /// 409 `already-exists`.
    #[error("already exists")]
    AlreadyExists,
    /// 409 `building-archived`: an archived building accepts nothing but restore.
    #[error("building archived")]
    BuildingArchived,
    /// 409 `building-not-archived`: restore of an active building.
    #[error("building not archived")]
    BuildingNotArchived,
    /// 409 `comp-retracted`: a retracted comp accepts nothing further.
    #[error("comp retracted")]
    CompRetracted,
    /// 409 `comp-already-verified`.
    #[error("comp already verified")]
    CompAlreadyVerified,
    /// 409 `concurrent-modification`: others kept changing the resource; retry.
    #[error("concurrent modification")]
    ConcurrentModification,
    /// 409 `rebuild-in-progress`: the projection is already being rebuilt (that
    /// rebuild's id and state).
    #[error("rebuild in progress")]
    RebuildInProgress { id: uuid::Uuid, state: &'static str },
    /// 409 `rebuild-finished`: a finished rebuild cannot be cancelled.
    #[error("rebuild finished")]
    RebuildFinished { state: &'static str },
    /// 503 `service-unavailable`: a dependency failed; safe to retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500 `internal`: a bug or an unexpected failure; the cause is only logged.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::InvalidFields(errors) => Self::InvalidFields(errors),
            DomainError::NotFound => Self::NotFound,
            DomainError::AlreadyExists => Self::AlreadyExists,
            DomainError::BuildingArchived => Self::BuildingArchived,
            DomainError::BuildingNotArchived => Self::BuildingNotArchived,
            DomainError::UnknownBuilding => Self::UnknownBuilding,
            DomainError::CompRetracted => Self::CompRetracted,
            DomainError::CompAlreadyVerified => Self::CompAlreadyVerified,
            DomainError::Unavailable(cause) => Self::Unavailable(cause),
        }
    }
}

impl ApiError {
    /// A database error as the client should see it: `503 service-unavailable` when
    /// the database is unavailable ([`database_unavailable`]), else `500 internal`.
    pub fn from_database(error: sqlx::Error) -> Self {
        if database_unavailable(&error) {
            Self::Unavailable(error.to_string())
        } else {
            Self::Internal(error.into())
        }
    }
}

/// Whether `error` says the database is unavailable — down, restarting, refusing or
/// dropping connections, or slower than our timeouts — rather than a fault in the
/// request or in our code. These are answered 503 (retry), never 500:
///
/// - no connection within `DATABASE_ACQUIRE_TIMEOUT_MS` (`PoolTimedOut`; a refused
///   connection is retried until then), a closed pool, IO and TLS errors (reset,
///   broken pipe, end of stream), a crashed connection worker;
/// - SQLSTATE class `08` (connection exception) and `53` (insufficient resources:
///   too many connections, out of memory or disk), `57P01` admin shutdown, `57P02`
///   crash shutdown, `57P03` cannot connect now (starting up, shutting down), `57014`
///   cancelled (`statement_timeout`), `55P03` lock not available, `25006` read-only
///   transaction (a standby), `40001` and `40P01` (serialization failure, deadlock:
///   retryable).
pub fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "25006" | "40001" | "40P01"
                )
        }),
        _ => false,
    }
}

/// Whether `error` or one of its causes is a database unavailability
/// ([`database_unavailable`]) or an IO error (errors boxed by cqrs-es and postgres-es).
pub fn caused_by_unavailability(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(database) = error.downcast_ref::<sqlx::Error>() {
            if database_unavailable(database) {
                return true;
            }
        }
        if error.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        next = error.source();
    }
    false
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        Self::InvalidFields(errors)
    }
}

struct Kind {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
}

const fn kind(status: StatusCode, slug: &'static str, title: &'static str) -> Kind {
    Kind {
        status,
        slug,
        title,
    }
}

impl ApiError {
    fn kind(&self) -> Kind {
        use StatusCode as S;
        match self {
            Self::MalformedRequest { .. } => {
                kind(S::BAD_REQUEST, "malformed-request", "Malformed request")
            }
            Self::Unauthenticated(_) => kind(
                S::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            Self::Forbidden(_) => kind(S::FORBIDDEN, "forbidden", "Forbidden"),
            Self::CrossOriginRefused => kind(
                S::FORBIDDEN,
                "cross-origin-refused",
                "Cross-origin request refused",
            ),
            Self::NotFound => kind(S::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed { .. } => kind(
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::PayloadTooLarge { .. } => kind(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::RateLimited { .. } => {
                kind(S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            }
            Self::UnsupportedMediaType => kind(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::InvalidFields(_) => kind(
                S::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            Self::IdempotencyKeyReused => kind(
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            Self::UnknownBuilding => kind(
                S::UNPROCESSABLE_ENTITY,
                "unknown-building",
                "Unknown building",
            ),
            Self::VersionConflict { .. } => {
                kind(S::CONFLICT, "version-conflict", "Version conflict")
            }
            Self::AlreadyExists => kind(S::CONFLICT, "already-exists", "Already exists"),
            Self::BuildingArchived => kind(S::CONFLICT, "building-archived", "Building archived"),
            Self::BuildingNotArchived => kind(
                S::CONFLICT,
                "building-not-archived",
                "Building not archived",
            ),
            Self::CompRetracted => kind(S::CONFLICT, "comp-retracted", "Comp retracted"),
            Self::CompAlreadyVerified => kind(
                S::CONFLICT,
                "comp-already-verified",
                "Comp already verified",
            ),
            Self::ConcurrentModification => kind(
                S::CONFLICT,
                "concurrent-modification",
                "Concurrent modification",
            ),
            Self::RebuildInProgress { .. } => {
                kind(S::CONFLICT, "rebuild-in-progress", "Rebuild in progress")
            }
            Self::RebuildFinished { .. } => {
                kind(S::CONFLICT, "rebuild-finished", "Rebuild finished")
            }
            Self::Unavailable(_) => kind(
                S::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => kind(S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// What the client is told; never an internal cause.
    fn detail(&self) -> Option<String> {
        match self {
            Self::MalformedRequest { detail, .. } => Some(detail.clone()),
            Self::Unauthenticated(reason) => Some(reason.clone()),
            Self::Forbidden(scope) => Some(format!("this operation needs the {scope} scope")),
            Self::CrossOriginRefused => Some(
                "this origin, method or header is not allowed to call the API from a browser"
                    .into(),
            ),
            Self::InvalidFields(_) => Some("one or more fields are not acceptable".into()),
            Self::PayloadTooLarge { limit } => {
                Some(format!("the request body must be at most {limit} bytes"))
            }
            Self::RateLimited {
                retry_after_seconds,
            } => Some(format!(
                "too many requests from this client; retry in {retry_after_seconds} s"
            )),
            Self::IdempotencyKeyReused => Some(
                "this Idempotency-Key was first used with a different request; use a new key"
                    .into(),
            ),
            Self::UnknownBuilding => {
                Some("building_id names no building of your organisation".into())
            }
            Self::VersionConflict { .. } => {
                Some("the resource changed since the version in If-Match; reload and retry".into())
            }
            Self::ConcurrentModification => {
                Some("the resource is being changed by others; retry".into())
            }
            Self::RebuildInProgress { id, state } => Some(format!(
                "rebuild {id} of this projection is {state}; follow it at /v1/admin/rebuilds/{id}"
            )),
            Self::RebuildFinished { state } => Some(format!(
                "the rebuild is {state}; only an active rebuild can be cancelled"
            )),
            Self::Unavailable(_) => Some(format!(
                "a dependency is unavailable; retry in {RETRY_UNAVAILABLE_SECONDS} s"
            )),
            Self::UnsupportedMediaType => {
                Some("send the body as JSON, with Content-Type: application/json".into())
            }
            Self::MethodNotAllowed { allow: Some(allow) } => {
                Some(format!("this path answers {allow}"))
            }
            Self::Internal(_) => Some("an internal error occurred; quote the request id".into()),
            _ => None,
        }
    }

    /// The problem response for this error, naming the current request
    /// ([`RequestId::current`]); internal causes are logged here, once.
    pub fn into_problem(self) -> ProblemResponse {
        let request_id = &RequestId::current();
        match &self {
            Self::Internal(cause) => {
                tracing::error!(request.id = %request_id, error = ?cause, "request failed");
            }
            Self::Unavailable(cause) => {
                tracing::warn!(request.id = %request_id, error = %cause, "dependency unavailable");
            }
            _ => {}
        }
        let Kind {
            status,
            slug,
            title,
        } = self.kind();
        let field_errors = match &self {
            Self::MalformedRequest { errors, .. } | Self::InvalidFields(errors) => errors
                .iter()
                .map(|e| FieldProblem {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            Self::UnknownBuilding => vec![FieldProblem {
                field: "building_id".into(),
                message: "names no building of your organisation".into(),
            }],
            _ => Vec::new(),
        };
        let problem = Json(Problem {
            problem_type: ProblemType(format!("{PROBLEM_TYPE_PREFIX}{slug}")),
            title: title.into(),
            status: status.as_u16(),
            detail: self.detail(),
            errors: field_errors,
            current_version: match self {
                Self::VersionConflict { current } => current,
                _ => None,
            },
            request_id: Some(request_id.to_string()),
        });
        if let Self::RateLimited {
            retry_after_seconds,
        } = self
        {
            return ProblemResponse::TooManyRequests(problem, retry_after_seconds.to_string());
        }
        match status {
            StatusCode::BAD_REQUEST => ProblemResponse::BadRequest(problem),
            StatusCode::UNAUTHORIZED => {
                ProblemResponse::Unauthorized(problem, r#"Bearer realm="prism""#.into())
            }
            StatusCode::FORBIDDEN => ProblemResponse::Forbidden(problem),
            StatusCode::NOT_FOUND => ProblemResponse::NotFound(problem),
            StatusCode::CONFLICT => ProblemResponse::Conflict(problem),
            StatusCode::PAYLOAD_TOO_LARGE => ProblemResponse::PayloadTooLarge(problem),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemResponse::UnsupportedMediaType(problem),
            StatusCode::UNPROCESSABLE_ENTITY => ProblemResponse::UnprocessableEntity(problem),
            StatusCode::SERVICE_UNAVAILABLE => {
                ProblemResponse::ServiceUnavailable(problem, RETRY_UNAVAILABLE_SECONDS.to_string())
            }
            // 500, and 405 (no operation matched, so `from_poem_error` sets the status).
            _ => ProblemResponse::InternalServerError(problem),
        }
    }
}

/// A handler's `?` on an [`ApiError`].
impl From<ApiError> for ProblemResponse {
    fn from(error: ApiError) -> Self {
        error.into_problem()
    }
}

/// A handler's `?` on refused fields: `422 validation-failed`.
impl From<FieldErrors> for ProblemResponse {
    fn from(errors: FieldErrors) -> Self {
        ApiError::InvalidFields(errors).into_problem()
    }
}

/// An [`ApiError`] raised before an operation runs (a refused bearer token) travels
/// as a `poem::Error` with its status; [`from_poem_error`] renders it as the problem.
impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.kind().status
    }
}

/// Renders an error that escaped the operations (extractors, routing) as a problem.
pub fn from_poem_error(error: poem::Error) -> poem::Response {
    let error = match error.downcast::<ApiError>() {
        Ok(api_error) => return response(api_error),
        Err(error) => error,
    };
    let api_error = if let Some(rejected) = error.downcast_ref::<BodyRejected>() {
        ApiError::MalformedRequest {
            detail: rejected.detail.clone(),
            errors: rejected.errors.clone(),
        }
    } else if let Some(param) = error.downcast_ref::<poem_openapi::error::ParseParamError>() {
        ApiError::MalformedRequest {
            detail: format!(
                "parameter {} is not acceptable: {}",
                param.name, param.reason
            ),
            errors: FieldErrors::single(param.name, param.reason.clone()),
        }
    } else if error.downcast_ref::<poem::error::CorsError>().is_some() {
        ApiError::CrossOriginRefused
    } else {
        match error.status() {
            StatusCode::UNAUTHORIZED => {
                ApiError::Unauthenticated("a bearer token is required".into())
            }
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed { allow: None },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            status if status.is_client_error() => ApiError::MalformedRequest {
                detail: error.to_string(),
                errors: FieldErrors::default(),
            },
            _ => ApiError::Internal(anyhow::anyhow!("{error}")),
        }
    };
    response(api_error)
}

/// The problem response of `error`, with its own status (also for a 405, which no
/// [`ProblemResponse`] variant has) and, for a 405, `Allow`.
pub fn response(error: ApiError) -> poem::Response {
    use poem::IntoResponse;
    let status = error.kind().status;
    let allow = match &error {
        ApiError::MethodNotAllowed { allow } => allow.clone(),
        _ => None,
    };
    let mut response = error.into_problem().into_response();
    response.set_status(status);
    if let Some(value) = allow.and_then(|allow| allow.parse().ok()) {
        response
            .headers_mut()
            .insert(poem::http::header::ALLOW, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every kind. The match is exhaustive: a new variant does not compile
    /// until it is given an example here, and so a slug checked below.
    fn examples() -> Vec<ApiError> {
        let every = vec![
            ApiError::MalformedRequest {
                detail: String::new(),
                errors: FieldErrors::default(),
            },
            ApiError::Unauthenticated(String::new()),
            ApiError::Forbidden("x"),
            ApiError::CrossOriginRefused,
            ApiError::NotFound,
            ApiError::MethodNotAllowed { allow: None },
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::RateLimited {
                retry_after_seconds: 1,
            },
            ApiError::UnsupportedMediaType,
            ApiError::InvalidFields(FieldErrors::default()),
            ApiError::IdempotencyKeyReused,
            ApiError::UnknownBuilding,
            ApiError::VersionConflict { current: None },
            ApiError::AlreadyExists,
            ApiError::BuildingArchived,
            ApiError::BuildingNotArchived,
            ApiError::CompRetracted,
            ApiError::CompAlreadyVerified,
            ApiError::ConcurrentModification,
            ApiError::RebuildInProgress {
                id: uuid::Uuid::nil(),
                state: "running",
            },
            ApiError::RebuildFinished { state: "swapped" },
            ApiError::Unavailable(String::new()),
            ApiError::Internal(anyhow::anyhow!("x")),
        ];
        for error in &every {
            match error {
                ApiError::MalformedRequest { .. }
                | ApiError::Unauthenticated(_)
                | ApiError::Forbidden(_)
                | ApiError::CrossOriginRefused
                | ApiError::NotFound
                | ApiError::MethodNotAllowed { .. }
                | ApiError::PayloadTooLarge { .. }
                | ApiError::RateLimited { .. }
                | ApiError::UnsupportedMediaType
                | ApiError::InvalidFields(_)
                | ApiError::IdempotencyKeyReused
                | ApiError::UnknownBuilding
                | ApiError::VersionConflict { .. }
                | ApiError::AlreadyExists
                | ApiError::BuildingArchived
                | ApiError::BuildingNotArchived
                | ApiError::CompRetracted
                | ApiError::CompAlreadyVerified
                | ApiError::ConcurrentModification
                | ApiError::RebuildInProgress { .. }
                | ApiError::RebuildFinished { .. }
                | ApiError::Unavailable(_)
                | ApiError::Internal(_) => {}
            }
        }
        every
    }

    #[test]
    fn every_problem_type_is_documented_once() {
        let slugs: Vec<&str> = examples().iter().map(|e| e.kind().slug).collect();
        let mut listed = PROBLEM_SLUGS.to_vec();
        listed.sort_unstable();
        let mut raised = slugs.clone();
        raised.sort_unstable();
        assert_eq!(
            raised, listed,
            "PROBLEM_SLUGS lists exactly the raised types"
        );
        let errors_md = include_str!("../../docs/errors.md");
        for slug in slugs {
            assert!(
                errors_md.contains(&format!("`{slug}`")),
                "{slug} in docs/errors.md"
            );
        }
    }
}
