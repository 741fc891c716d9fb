//! Opaque cursors for keyset pagination. A cursor holds the sort key and id of the
//! last row of a page and a fingerprint of the query it belongs to; the next page
//! starts strictly after that row, so rows inserted meanwhile never make a page repeat
//! or skip one. A cursor used with other filters or another sort is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::queries::QueryError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The last row's sort key, as text (`None` for a NULL key).
    #[serde(rename = "k")]
    pub key: Option<String>,
    /// The last row's id (the tie-breaker).
    #[serde(rename = "i")]
    pub id: String,
    /// Fingerprint of the query (filters and sort) the cursor was made for.
    #[serde(rename = "q")]
    pub query: String,
}

/// A short fingerprint of a query's normalised filters and sort.
pub fn fingerprint(normalised_query: &str) -> String {
    let digest = Sha256::digest(normalised_query.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes `raw` and checks it belongs to the query with `fingerprint`.
    pub fn decode(raw: &str, fingerprint: &str) -> Result<Self, QueryError> {
        let cursor: Cursor = URL_SAFE_NO_PAD
            .decode(raw.as_bytes())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| QueryError::invalid("cursor", "is not a cursor this API issued"))?;
        if cursor.query != fingerprint {
            return Err(QueryError::invalid(
                "cursor",
                "belongs to a query with other filters or another sort; start again without it",
            ));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_is_bound_to_its_query() {
        let cursor = Cursor {
            key: Some("Tower".into()),
            id: "0192".into(),
            query: fingerprint("sort=name"),
        };
        let raw = cursor.encode();
        assert_eq!(
            Cursor::decode(&raw, &fingerprint("sort=name")).ok(),
            Some(cursor)
        );
        assert!(Cursor::decode(&raw, &fingerprint("sort=-name")).is_err());
        assert!(Cursor::decode("not-a-cursor", &fingerprint("sort=name")).is_err());
    }
}
