//! The id of one request: kept from a well-formed `X-Request-Id` or made by the edge,
//! carried in logs, problem bodies and event metadata. Depends on nothing else in the
//! crate, so every layer can name it.

use std::fmt;

use poem::http::HeaderValue;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

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
}
