//! What every request passes through: a request id (a well-formed `X-Request-Id` is
//! kept, else one is made), echoed in the response and carried by the request's
//! span; same-origin requests (the bundled Swagger UI) kept out of CORS; errors that
//! escaped the operations rendered as problems; one log line per request with its
//! status and latency.

use std::fmt;
use std::time::Instant;

use poem::http::{header, HeaderValue};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

use crate::problem;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one request: in logs, problem bodies and event metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Keeps a client's id when it is 1–128 characters of `[A-Za-z0-9._-]`.
    fn from_header(value: Option<&HeaderValue>) -> Option<Self> {
        let text = value?.to_str().ok()?;
        let well_formed = !text.is_empty()
            && text.len() <= 128
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        well_formed.then(|| Self(text.to_owned()))
    }

    fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

/// The middleware; install with `EndpointExt::around`, outside CORS.
pub async fn around<E: Endpoint>(next: E, mut request: Request) -> poem::Result<Response> {
    // CORS is for other origins; poem's refuses any origin not listed, which would
    // refuse the API's own Swagger UI. A same-origin request needs no CORS headers.
    if is_same_origin(&request) {
        request.headers_mut().remove(header::ORIGIN);
    }
    let request_id = RequestId::from_header(request.headers().get(REQUEST_ID_HEADER))
        .unwrap_or_else(RequestId::generate);
    request.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        http.method = %request.method(),
        http.path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = async {
        match next.call(request).await {
            Ok(response) => response.into_response(),
            // An operation's own error response (e.g. a problem) travels as an error.
            Err(error) if error.is_from_response() => error.into_response(),
            Err(error) => problem::from_poem_error(error, &request_id),
        }
    }
    .instrument(span.clone())
    .await;
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    span.in_scope(|| {
        tracing::info!(
            http.status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request served"
        );
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_request_ids_are_kept() {
        let ok = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(
            RequestId::from_header(Some(&ok)).map(|r| r.0),
            Some("abc-123_x.y".into())
        );
        let spaces = HeaderValue::from_static("a b");
        assert!(RequestId::from_header(Some(&spaces)).is_none());
        let long = HeaderValue::from_str(&"a".repeat(129)).expect("header");
        assert!(RequestId::from_header(Some(&long)).is_none());
        assert!(RequestId::from_header(None).is_none());
    }
}
