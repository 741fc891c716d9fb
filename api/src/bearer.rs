//! The security scheme every operation names: a Clerk session token in
//! `Authorization: Bearer …`, verified with the app state's [`TokenVerifier`]
//! (`auth`) — or taken as the rate limit already verified it in this request. A refused token becomes the problem its [`AuthRejected`] maps to (401, or
//! 503 when the keys are unavailable) and is counted by reason.
//!
//! [`TokenVerifier`]: crate::auth::TokenVerifier
//! [`AuthRejected`]: crate::auth::AuthRejected

use std::sync::Arc;

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

use crate::auth::{Actor, VerifiedBearer};
use crate::problem::ApiError;
use crate::state::AppState;

/// A Clerk session token in `Authorization: Bearer …`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "verify_bearer")]
pub struct BearerAuth(pub Actor);

async fn verify_bearer(request: &Request, bearer: Bearer) -> poem::Result<Actor> {
    let state = request.data::<Arc<AppState>>().ok_or_else(|| {
        poem::Error::from_string(
            "no application state",
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        )
    })?;
    let earlier = request
        .extensions()
        .get::<VerifiedBearer>()
        .filter(|verified| verified.token == bearer.token)
        .map(|verified| verified.actor.clone());
    let verified = match earlier {
        Some(actor) => Ok(actor),
        None => state.verifier.verify(&bearer.token).await,
    };
    if let Ok(actor) = &verified {
        // Tags the request's Sentry events (its hub is bound by the edge); without
        // Sentry there is nothing to tag.
        let hub = sentry::Hub::current();
        if hub.client().is_some() {
            hub.configure_scope(|scope| scope.set_tag("org_id", actor.org_id.as_str()));
        }
    }
    verified.map_err(|rejected| {
        tracing::info!(auth.failure = rejected.reason(), "token refused");
        state.metrics.auth_failure(rejected.reason());
        poem::Error::from(ApiError::from(rejected))
    })
}
