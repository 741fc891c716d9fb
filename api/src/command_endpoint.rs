//! What every command endpoint shares. A handler takes one [`Command`] (or
//! [`NewCommand`]) extractor — the verified caller, the app state, the
//! `Idempotency-Key` and `If-Match` headers and the operation's name from its route —
//! and hands it the body:
//!
//! ```text
//! async fn archive(&self, command: Command<Buildings>, id: Path<Uuid>,
//!                  body: JsonBody<ReasonRequest>) -> CommandResponse {
//!     command.change(id.0, body.0).await
//! }
//! ```
//!
//! The body is a [`CommandBody`] (it parses into the resource's command, naming every
//! refused field); the [`Resource`] decides it on its aggregate. The extractor checks
//! the scope, the key and the version, then answers with the aggregate's id, new
//! version and log position (`201` with `Location` from a creating endpoint,
//! [`CreateResponse`]; `200` from one on an existing aggregate, [`CommandResponse`]), its
//! version as `ETag`, and `Idempotent-Replayed: true` when a retry was answered from
//! the first result. The headers are a parameter group (`crate::params`), written out
//! one by one in the OpenAPI document.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use domain::values::{BuildingId, CompId, Reason};
use domain::{BuildingCommand, CompCommand};
use poem::{Request, RequestBody};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaParamIn, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object};
use uuid::Uuid;

use crate::auth::{Actor, Scope};
use crate::bearer::BearerAuth;
use crate::commands::{parse_if_match, CommandContext, Committed, Idempotency};
use crate::input::{field, Parsed};
use crate::params::{register_group, GroupMember};
use crate::problem::{ApiError, ProblemResponse};
use crate::request_id::RequestId;
use crate::state::AppState;

/// The aggregate a command changed, its version afterwards, and the global position of
/// its last event: pass `position` as `min_position` to any read (lists, details,
/// statistics, audit) — or `version` as `min_version` to the aggregate's own detail —
/// to read your own write.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct CommandResult {
    /// The aggregate's id.
    pub id: Uuid,
    /// The aggregate's version after the command (its number of events).
    pub version: u64,
    /// The global position of the aggregate's last event, in the log of every event.
    pub position: u64,
}

impl poem_openapi::types::Example for CommandResult {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0192_f1d0_5c3a_7b6e_9d4f_1a2b_3c4d_5e6f),
            version: 3,
            position: 1207,
        }
    }
}

/// What a command that creates its aggregate answers (a retry too).
#[derive(Debug, ApiResponse)]
pub enum CommandCreated {
    /// Created: the body and `Location` name the new resource.
    #[oai(status = 201)]
    Created(
        Json<CommandResult>,
        #[oai(header = "Location")] String,
        #[oai(header = "ETag")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

/// What a command on an existing aggregate answers.
#[derive(Debug, ApiResponse)]
pub enum CommandApplied {
    /// Applied (or nothing to change): the body gives the current version.
    #[oai(status = 200)]
    Applied(
        Json<CommandResult>,
        #[oai(header = "ETag")] String,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

/// What a command endpoint on an existing aggregate answers.
pub type CommandResponse = Result<CommandApplied, ProblemResponse>;

/// What a command endpoint that creates its aggregate answers.
pub type CreateResponse = Result<CommandCreated, ProblemResponse>;

/// Why a building is archived or a comp retracted.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, example)]
pub struct ReasonRequest {
    pub reason: String,
}

impl poem_openapi::types::Example for ReasonRequest {
    fn example() -> Self {
        Self {
            reason: "Sold to another owner".into(),
        }
    }
}

/// A resource whose commands share a scope, a collection and an aggregate.
pub trait Resource: Send + Sync + 'static {
    /// The scope its commands need.
    const WRITE_SCOPE: Scope;
    /// The collection a created resource's `Location` is under.
    const COLLECTION: &'static str;
    /// Its aggregate's commands.
    type Command: Send + 'static;

    /// Decides `command` on a new aggregate, with an id made here.
    fn create(
        state: &AppState,
        command: Self::Command,
        context: &CommandContext,
    ) -> impl Future<Output = Result<Committed, ApiError>> + Send;

    /// Decides `command` on aggregate `id`.
    fn change(
        state: &AppState,
        id: Uuid,
        command: Self::Command,
        context: &CommandContext,
    ) -> impl Future<Output = Result<Committed, ApiError>> + Send;
}

/// Buildings: `buildings:write`, `/v1/buildings/{id}`.
#[derive(Debug)]
pub struct Buildings;

impl Resource for Buildings {
    const WRITE_SCOPE: Scope = Scope::BuildingsWrite;
    const COLLECTION: &'static str = "/v1/buildings";
    type Command = BuildingCommand;

    async fn create(
        state: &AppState,
        command: BuildingCommand,
        context: &CommandContext,
    ) -> Result<Committed, ApiError> {
        state
            .write
            .new_building(BuildingId::new(), command, context)
            .await
    }

    async fn change(
        state: &AppState,
        id: Uuid,
        command: BuildingCommand,
        context: &CommandContext,
    ) -> Result<Committed, ApiError> {
        state.write.building(BuildingId(id), command, context).await
    }
}

/// Comps: `comps:write`, `/v1/comps/{id}`.
#[derive(Debug)]
pub struct Comps;

impl Resource for Comps {
    const WRITE_SCOPE: Scope = Scope::CompsWrite;
    const COLLECTION: &'static str = "/v1/comps";
    type Command = CompCommand;

    async fn create(
        state: &AppState,
        command: CompCommand,
        context: &CommandContext,
    ) -> Result<Committed, ApiError> {
        state.write.new_comp(CompId::new(), command, context).await
    }

    async fn change(
        state: &AppState,
        id: Uuid,
        command: CompCommand,
        context: &CommandContext,
    ) -> Result<Committed, ApiError> {
        state.write.comp(CompId(id), command, context).await
    }
}

/// A request body that parses into a command `C`, naming every refused field.
pub trait CommandBody<C>: ToJSON + Send + 'static {
    fn to_command(&self) -> Parsed<C>;
}

/// `{"reason": …}` archives a building.
impl CommandBody<BuildingCommand> for ReasonRequest {
    fn to_command(&self) -> Parsed<BuildingCommand> {
        let reason = field("reason", self.reason.as_str(), Reason::parse)?;
        Ok(BuildingCommand::Archive { reason })
    }
}

/// `{"reason": …}` retracts a comp.
impl CommandBody<CompCommand> for ReasonRequest {
    fn to_command(&self) -> Parsed<CompCommand> {
        let reason = field("reason", self.reason.as_str(), Reason::parse)?;
        Ok(CompCommand::Retract { reason })
    }
}

/// The domain's refusals of a body that matches its schema are its command's (see
/// [`DomainChecked`]).
macro_rules! checked_by_its_command {
    ($($body:ty => $command:ty),+ $(,)?) => {$(
        impl $crate::input::DomainChecked for $body {
            fn refusals(&self) -> Option<domain::values::FieldErrors> {
                $crate::command_endpoint::CommandBody::<$command>::to_command(self).err()
            }
        }
    )+};
}

pub(crate) use checked_by_its_command;

// A reason is the same whichever aggregate it is for.
checked_by_its_command!(ReasonRequest => BuildingCommand);

/// Whether a command changes an existing aggregate (it honours `If-Match`) or makes a
/// new one.
pub trait Target: Send + Sync + 'static {
    /// Whether `If-Match` is read.
    const IF_MATCH: bool;
    /// The name of its headers' group (`crate::params`).
    const HEADERS: &'static str;
}

/// A command on an existing aggregate.
#[derive(Debug)]
pub struct Existing;

impl Target for Existing {
    const IF_MATCH: bool = true;
    const HEADERS: &'static str = "CommandParameters";
}

/// A command that creates its aggregate.
#[derive(Debug)]
pub struct Creation;

impl Target for Creation {
    const IF_MATCH: bool = false;
    const HEADERS: &'static str = "CreationCommandParameters";
}

/// A command on an existing aggregate of resource `R`.
pub type Command<R> = CommandRequest<R, Existing>;
/// A command that creates an aggregate of resource `R`.
pub type NewCommand<R> = CommandRequest<R, Creation>;

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
const IF_MATCH: &str = "If-Match";
const IDEMPOTENCY_KEY_DESCRIPTION: &str = "1 to 255 printable ASCII characters, new for each \
     intended change: a retry with the same key and body is answered with the first result \
     (`Idempotent-Replayed: true`) instead of being applied twice.";
const IF_MATCH_DESCRIPTION: &str = "The version last read (`\"3\"`, or the `ETag` of a command's \
     answer): the command is applied only if the aggregate is still at that version, else \
     409 `version-conflict` with the current version.";

/// A command request as its endpoint receives it: see the module's documentation.
pub struct CommandRequest<R, T> {
    actor: Actor,
    state: Arc<AppState>,
    idempotency_key: Option<String>,
    if_match: Option<String>,
    /// `METHOD /path` of the operation, with the resource's id.
    operation: String,
    kind: PhantomData<fn() -> (R, T)>,
}

impl<R, T> std::fmt::Debug for CommandRequest<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandRequest")
            .field("operation", &self.operation)
            .field("idempotency_key", &self.idempotency_key)
            .field("if_match", &self.if_match)
            .finish_non_exhaustive()
    }
}

impl<R: Resource, T: Target> CommandRequest<R, T> {
    fn context(&self, body: Option<&serde_json::Value>) -> Result<CommandContext, ApiError> {
        self.actor.require(R::WRITE_SCOPE)?;
        // A retry must send the same body; a bodiless command has an empty one.
        let body = body.map(ToString::to_string).unwrap_or_default();
        let fingerprint = format!("{}\n{body}", self.operation);
        Ok(CommandContext {
            actor: self.actor.clone(),
            request_id: RequestId::current(),
            idempotency: self
                .idempotency_key
                .as_deref()
                .map(|key| Idempotency::parse(key, &fingerprint))
                .transpose()?,
            expected_version: parse_if_match(self.if_match.as_deref())?,
        })
    }

    /// Checks the scope, the key and the version (`body` is the request's canonical
    /// JSON, `None` without one), then `command` (the body parsed) is decided by the
    /// resource on aggregate `id`, or a new one; gives the result.
    async fn execute(
        self,
        id: Option<Uuid>,
        body: Option<serde_json::Value>,
        command: impl FnOnce() -> Parsed<R::Command>,
    ) -> Result<Committed, ProblemResponse> {
        let context = self.context(body.as_ref())?;
        let command = command()?;
        Ok(match id {
            Some(id) => R::change(&self.state, id, command, &context).await?,
            None => R::create(&self.state, command, &context).await?,
        })
    }
}

impl<R: Resource> CommandRequest<R, Creation> {
    /// The command of `body`, on a new aggregate: `201` with its `Location`.
    pub async fn create(self, body: impl CommandBody<R::Command>) -> CreateResponse {
        let committed = self
            .execute(None, body.to_json(), || body.to_command())
            .await?;
        let (body, etag, replayed) = answer(&committed);
        let location = format!("{}/{}", R::COLLECTION, committed.id);
        Ok(CommandCreated::Created(body, location, etag, replayed))
    }
}

impl<R: Resource> CommandRequest<R, Existing> {
    /// The command of `body`, on aggregate `id`.
    pub async fn change(self, id: Uuid, body: impl CommandBody<R::Command>) -> CommandResponse {
        let committed = self
            .execute(Some(id), body.to_json(), || body.to_command())
            .await?;
        let (body, etag, replayed) = answer(&committed);
        Ok(CommandApplied::Applied(body, etag, replayed))
    }

    /// `command`, which takes no body, on aggregate `id`.
    pub async fn send(self, id: Uuid, command: R::Command) -> CommandResponse {
        let committed = self.execute(Some(id), None, || Ok(command)).await?;
        let (body, etag, replayed) = answer(&committed);
        Ok(CommandApplied::Applied(body, etag, replayed))
    }
}

/// The operation's name for the request fingerprint: the method and the route with
/// each parameter's value (a UUID in its canonical form, as the handler reads it).
fn operation_name(request: &Request) -> String {
    let pattern = request
        .data::<poem::PathPattern>()
        .map(|pattern| pattern.0.to_string())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let path: Vec<String> = pattern
        .split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => {
                let value = request.raw_path_param(name).unwrap_or_default();
                Uuid::parse_str(value)
                    .map(|id| id.to_string())
                    .unwrap_or_else(|_| value.to_owned())
            }
            None => segment.to_owned(),
        })
        .collect();
    format!("{} {}", request.method(), path.join("/"))
}

/// The first value of header `name` that is visible ASCII, as poem-openapi's
/// `Header<Option<String>>` reads it.
fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(name)
        .iter()
        .find_map(|value| value.to_str().ok())
        .map(str::to_owned)
}

impl<'a, R: Resource, T: Target> ApiExtractor<'a> for CommandRequest<R, T> {
    /// The bearer scheme (verified here) and the group of the command's headers.
    const TYPES: &'static [ApiExtractorType] = &[
        ApiExtractorType::SecurityScheme,
        ApiExtractorType::Parameter,
    ];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        BearerAuth::register(registry);
        let header = |name, description| GroupMember {
            name,
            schema: String::schema_ref(),
            description: Some(description),
            required: false,
        };
        let mut members = vec![header(IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_DESCRIPTION)];
        if T::IF_MATCH {
            members.push(header(IF_MATCH, IF_MATCH_DESCRIPTION));
        }
        register_group(registry, T::HEADERS, members);
    }

    fn security_schemes() -> Vec<&'static str> {
        BearerAuth::security_schemes()
    }

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Header)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(MetaSchemaRef::Reference(T::HEADERS.to_owned()))
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let options = ExtractParamOptions {
            name: "",
            ignore_case: false,
            default_value: None,
            example_value: None,
            explode: true,
            style: None,
        };
        let BearerAuth(actor) = BearerAuth::from_request(request, body, options).await?;
        let state = request.data::<Arc<AppState>>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("no application state for the command"))
        })?;
        Ok(Self {
            actor,
            state,
            idempotency_key: header(request, IDEMPOTENCY_KEY),
            if_match: T::IF_MATCH.then(|| header(request, IF_MATCH)).flatten(),
            operation: operation_name(request),
            kind: PhantomData,
        })
    }
}

/// A command's answer: its result, its version as `ETag`, and whether it was replayed.
fn answer(committed: &Committed) -> (Json<CommandResult>, String, Option<String>) {
    let body = Json(CommandResult {
        id: committed.id,
        version: committed.version,
        position: committed.position,
    });
    let etag = format!("\"{}\"", committed.version);
    let replayed = committed.replayed.then(|| "true".to_owned());
    (body, etag, replayed)
}
