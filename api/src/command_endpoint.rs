//! What every command endpoint shares: reading `Idempotency-Key` and `If-Match`, and
//! answering with the aggregate's id and new version (`201` with `Location` when the
//! command created it, else `200`), its version as `ETag`, and
//! `Idempotent-Replayed: true` when a retry was answered from the first result.

use std::future::Future;

use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object};
use uuid::Uuid;

use crate::auth::{Actor, Scope};
use crate::commands::{parse_if_match, CommandContext, Committed, Idempotency};
use crate::problem::{ApiError, ProblemResponse};
use crate::request_id::RequestId;

/// The aggregate a command changed and its version afterwards; ask the read side for
/// at least this version to read your own write.
#[derive(Debug, Clone, Object)]
pub struct CommandResult {
    pub id: Uuid,
    pub version: u64,
}

#[derive(Debug, ApiResponse)]
pub enum CommandAccepted {
    /// Created: the body and `Location` name the new resource.
    #[oai(status = 201)]
    Created(
        Json<CommandResult>,
        #[oai(header = "Location")] String,
        #[oai(header = "ETag")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
    /// Applied (or nothing to change): the body gives the current version.
    #[oai(status = 200)]
    Applied(
        Json<CommandResult>,
        #[oai(header = "ETag")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

/// The request the way a command sees it, to build its [`CommandContext`].
#[derive(Debug)]
pub struct CommandRequest<'a> {
    pub actor: Actor,
    /// The scope the command needs.
    pub scope: Scope,
    pub request_id: &'a RequestId,
    pub idempotency_key: Option<&'a str>,
    pub if_match: Option<&'a str>,
    /// `METHOD /path` of the operation, with the resource id.
    pub operation: String,
    /// The body's canonical JSON (keys sorted); empty for bodiless commands.
    pub body: String,
}

impl<'a> CommandRequest<'a> {
    pub fn new(
        actor: Actor,
        scope: Scope,
        request_id: &'a RequestId,
        idempotency_key: Option<&'a str>,
        if_match: Option<&'a str>,
        operation: String,
    ) -> Self {
        Self {
            actor,
            scope,
            request_id,
            idempotency_key,
            if_match,
            operation,
            body: String::new(),
        }
    }

    /// Adds the body to the request's fingerprint.
    pub fn with_body(mut self, body: &impl ToJSON) -> Self {
        self.body = body.to_json().map(|v| v.to_string()).unwrap_or_default();
        self
    }

    fn context(self) -> Result<CommandContext, ApiError> {
        self.actor.require(self.scope)?;
        let fingerprint = format!("{}\n{}", self.operation, self.body);
        Ok(CommandContext {
            actor: self.actor,
            request_id: self.request_id.clone(),
            idempotency: self
                .idempotency_key
                .map(|key| Idempotency::parse(key, &fingerprint))
                .transpose()?,
            expected_version: parse_if_match(self.if_match)?,
        })
    }

    /// Runs `execute` with this request's context and renders its result; `created_at`
    /// is the collection a created resource's `Location` is under.
    pub async fn run<F, Fut>(
        self,
        created_at: &str,
        execute: F,
    ) -> Result<CommandAccepted, ProblemResponse>
    where
        F: FnOnce(CommandContext) -> Fut,
        Fut: Future<Output = Result<Committed, ApiError>>,
    {
        let request_id = self.request_id.clone();
        let result = match self.context() {
            Ok(context) => execute(context).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(committed) => Ok(accepted(committed, created_at)),
            Err(error) => Err(error.into_problem(&request_id)),
        }
    }
}

fn accepted(committed: Committed, created_at: &str) -> CommandAccepted {
    let body = Json(CommandResult {
        id: committed.id,
        version: committed.version,
    });
    let etag = format!("\"{}\"", committed.version);
    let replayed = committed.replayed.then(|| "true".to_owned());
    if committed.created {
        CommandAccepted::Created(
            body,
            format!("{created_at}/{}", committed.id),
            etag,
            replayed,
        )
    } else {
        CommandAccepted::Applied(body, etag, replayed)
    }
}
