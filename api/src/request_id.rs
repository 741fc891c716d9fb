//! The id of one request: kept from a well-formed `X-Request-Id` or made by the edge,
//! carried in logs, problem bodies and event metadata. The edge serves each request
//! inside [`RequestId::scope`], so whatever runs for it — a handler, a problem being
//! rendered — reads the id with [`RequestId::current`] instead of being passed it.
//! Depends on nothing else in the crate, so every layer can name it.

use std::fmt;
use std::future::Future;

use poem::http::HeaderValue;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of one request: in logs, problem bodies and event metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Keeps a client's id when it is 1–128 characters of `[A-Za-z0-9._-]`.
    pub fn from_header(value: Option<&HeaderValue>) -> Option<Self> {
        let text = value?.to_str().ok()?;
        let well_formed = !text.is_empty()
            && text.len() <= 128
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        well_formed.then(|| Self(text.to_owned()))
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Runs `future` as the request with this id.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// The id of the request being served ([`Self::scope`]); outside any request (a
    /// background task), a new id, so what it reports can still be found.
    pub fn current() -> Self {
        CURRENT
            .try_with(Self::clone)
            .unwrap_or_else(|_| Self::generate())
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

    #[tokio::test]
    async fn the_current_id_is_the_scope_s_own() {
        let id = RequestId("abc".into());
        let seen = id.clone().scope(async { RequestId::current() }).await;
        assert_eq!(seen, id);
        assert_ne!(RequestId::current(), id, "outside the scope: a new id");
    }
}
