//! Operations endpoints: `/health` says the process serves; `/ready` says it can do
//! its work — Postgres answers with every migration applied, and Redis answers.
//! Neither needs a token. `/metrics` serves the api's metrics (`metrics`).
//!
//! With `ENV=production`, `/metrics` needs `Authorization: Bearer $METRICS_SCRAPE_TOKEN`
//! (compared in constant time) or a token with `audit:read`; anything else gets 401.

use std::sync::Arc;

use poem::web::Data;
use poem::{handler, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::problem::ApiError;
use crate::state::AppState;
use crate::tags::ApiTags;

/// How long each readiness check may take; the checks run side by side.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Object)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// One dependency's state.
#[derive(Debug, Object)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Why the check failed.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

#[derive(Debug, Object)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    pub checks: Vec<Check>,
}

#[derive(Debug, ApiResponse)]
pub enum ReadyResponse {
    /// Every dependency answers.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// A dependency failed; the body names it.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[derive(Debug, Default)]
pub struct OpsApi;

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness
    ///
    /// 200 while the process serves requests.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness
    ///
    /// 200 when Postgres answers with every migration applied and Redis answers; else
    /// 503 with the failing check named. Each check has 500 ms and they run side by
    /// side, so the answer comes within a second even while a dependency hangs.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, state: Data<&Arc<AppState>>) -> ReadyResponse {
        let postgres = async {
            match tokio::time::timeout(CHECK_TIMEOUT, migrations::missing(&state.database)).await {
                Ok(Ok(pending)) if pending.is_empty() => Check {
                    name: "postgres".into(),
                    ok: true,
                    detail: None,
                },
                Ok(Ok(pending)) => Check {
                    name: "postgres".into(),
                    ok: false,
                    detail: Some(format!("{} migration(s) not applied", pending.len())),
                },
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "readiness: postgres");
                    Check {
                        name: "postgres".into(),
                        ok: false,
                        detail: Some("postgres does not answer".into()),
                    }
                }
                Err(_) => {
                    tracing::warn!("readiness: postgres did not answer in time");
                    Check {
                        name: "postgres".into(),
                        ok: false,
                        detail: Some(format!(
                            "postgres does not answer within {} ms",
                            CHECK_TIMEOUT.as_millis()
                        )),
                    }
                }
            }
        };
        let redis = async {
            let answered = state.redis.ping(CHECK_TIMEOUT).await;
            Check {
                name: "redis".into(),
                ok: answered,
                detail: (!answered).then(|| "redis does not answer".into()),
            }
        };
        let (database, cache) = tokio::join!(postgres, redis);
        let checks = vec![database, cache];
        if checks.iter().all(|c| c.ok) {
            ReadyResponse::Ready(Json(Readiness {
                status: "ready".into(),
                checks,
            }))
        } else {
            ReadyResponse::NotReady(Json(Readiness {
                status: "not_ready".into(),
                checks,
            }))
        }
    }
}

/// `GET /metrics`.
#[handler]
pub async fn scrape(request: &Request, state: Data<&Arc<AppState>>) -> Response {
    if !state.scrape_guard.admits(request, &state.verifier).await {
        return ApiError::Unauthenticated(
            "scraping needs the metrics scrape token or a token with audit:read".into(),
        )
        .into_problem()
        .into_response();
    }
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
