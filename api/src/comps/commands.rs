//! `/v1/comps`: record lease and sale comps, amend, verify, retract. The Comp
//! aggregate checks the building against the event store (exists, same organisation,
//! not archived) before anything is recorded.

use std::sync::Arc;

use domain::values::{
    AllowancePsf, Area, BuildingId, CapRatePct, CompId, DealDate, EscalationPct, FieldErrors,
    InvalidValue, LeaseType, Money, Months, PartyName, Reason, RentPsf, Suite,
};
use domain::{CompChanges, CompCommand, CompTerms, LeaseTerms, SaleTerms};
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::command_endpoint::{CommandAccepted, CommandRequest};
use crate::input::{
    change, change_or_clear, optional, required, Choice, Exact, IsoDate, JsonBody, ParsedOr,
    ReasonRequest,
};
use crate::problem::{ApiError, ProblemResponse};
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::tags::ApiTags;

/// A lease comparable.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RecordLeaseCompRequest {
    pub building_id: Uuid,
    pub tenant: String,
    pub suite: Option<String>,
    /// Leased area in square feet, greater than 0.
    pub leased_area_sqft: Exact,
    /// Starting rent per square foot per year, greater than 0.
    pub starting_rent_psf: Exact,
    pub lease_type: Choice<LeaseType>,
    /// 1 to 600.
    pub term_months: i64,
    pub commencement_date: IsoDate,
    /// Months of free rent, fewer than the term; default 0.
    pub free_rent_months: Option<i64>,
    /// Tenant-improvement allowance per square foot; default 0.
    pub ti_allowance_psf: Option<Exact>,
    /// Annual rent escalation in percent, 0 to 100; default 0.
    pub escalation_pct: Option<Exact>,
}

/// A sale comparable.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RecordSaleCompRequest {
    pub building_id: Uuid,
    /// Greater than 0.
    pub sale_price: Exact,
    pub sale_date: IsoDate,
    pub buyer: String,
    pub seller: String,
    /// Capitalisation rate in percent, greater than 0 and at most 100.
    pub cap_rate_pct: Option<Exact>,
}

/// The terms to change; fields of the other kind of comp are refused by name. Absent
/// fields stay as they are; `null` clears `suite` or `cap_rate_pct`. An amended comp
/// is no longer verified.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AmendCompRequest {
    pub tenant: MaybeUndefined<String>,
    pub suite: MaybeUndefined<String>,
    pub leased_area_sqft: MaybeUndefined<Exact>,
    pub starting_rent_psf: MaybeUndefined<Exact>,
    pub lease_type: MaybeUndefined<Choice<LeaseType>>,
    pub term_months: MaybeUndefined<i64>,
    pub commencement_date: MaybeUndefined<IsoDate>,
    pub free_rent_months: MaybeUndefined<i64>,
    pub ti_allowance_psf: MaybeUndefined<Exact>,
    pub escalation_pct: MaybeUndefined<Exact>,
    pub sale_price: MaybeUndefined<Exact>,
    pub sale_date: MaybeUndefined<IsoDate>,
    pub buyer: MaybeUndefined<String>,
    pub seller: MaybeUndefined<String>,
    pub cap_rate_pct: MaybeUndefined<Exact>,
}

fn exact<T>(
    parse: fn(Decimal) -> Result<T, InvalidValue>,
) -> impl Fn(Exact) -> Result<T, InvalidValue> {
    move |raw| parse(raw.0)
}

fn date(raw: IsoDate) -> Result<DealDate, InvalidValue> {
    DealDate::parse(raw.0)
}

impl RecordLeaseCompRequest {
    fn to_command(&self) -> Result<CompCommand, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let tenant = required(e, "tenant", self.tenant.as_str(), PartyName::parse);
        let suite = optional(e, "suite", self.suite.as_deref(), Suite::parse);
        let area = required(
            e,
            "leased_area_sqft",
            self.leased_area_sqft,
            exact(Area::parse),
        );
        let rent = required(
            e,
            "starting_rent_psf",
            self.starting_rent_psf,
            exact(RentPsf::parse),
        );
        let term = required(e, "term_months", self.term_months, Months::parse_term);
        let commencement = required(e, "commencement_date", self.commencement_date, date);
        let free_rent = required(
            e,
            "free_rent_months",
            self.free_rent_months.unwrap_or(0),
            Months::parse_free_rent,
        );
        let ti = required(
            e,
            "ti_allowance_psf",
            self.ti_allowance_psf.unwrap_or(Exact(Decimal::ZERO)),
            exact(AllowancePsf::parse),
        );
        let escalation = required(
            e,
            "escalation_pct",
            self.escalation_pct.unwrap_or(Exact(Decimal::ZERO)),
            exact(EscalationPct::parse),
        );
        let parsed = (|| {
            Some(CompCommand::Record {
                building_id: BuildingId(self.building_id),
                terms: CompTerms::Lease(LeaseTerms {
                    tenant: tenant?,
                    suite: suite?,
                    leased_area_sqft: area?,
                    starting_rent_psf: rent?,
                    lease_type: self.lease_type.0,
                    term_months: term?,
                    commencement_date: commencement?,
                    free_rent_months: free_rent?,
                    ti_allowance_psf: ti?,
                    escalation_pct: escalation?,
                }),
            })
        })();
        errors.into_result()?;
        parsed.ok_or_default()
    }
}

impl RecordSaleCompRequest {
    fn to_command(&self) -> Result<CompCommand, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let price = required(e, "sale_price", self.sale_price, exact(Money::parse));
        let sale_date = required(e, "sale_date", self.sale_date, date);
        let buyer = required(e, "buyer", self.buyer.as_str(), PartyName::parse);
        let seller = required(e, "seller", self.seller.as_str(), PartyName::parse);
        let cap_rate = optional(
            e,
            "cap_rate_pct",
            self.cap_rate_pct,
            exact(CapRatePct::parse),
        );
        let parsed = (|| {
            Some(CompCommand::Record {
                building_id: BuildingId(self.building_id),
                terms: CompTerms::Sale(SaleTerms {
                    sale_price: price?,
                    sale_date: sale_date?,
                    buyer: buyer?,
                    seller: seller?,
                    cap_rate_pct: cap_rate?,
                }),
            })
        })();
        errors.into_result()?;
        parsed.ok_or_default()
    }
}

impl AmendCompRequest {
    fn to_command(&self) -> Result<CompCommand, FieldErrors> {
        let mut errors = FieldErrors::default();
        let e = &mut errors;
        let changes = (|| {
            Some(CompChanges {
                tenant: change(e, "tenant", self.tenant.as_deref(), PartyName::parse)?,
                suite: change_or_clear(e, "suite", self.suite.as_deref(), Suite::parse)?,
                leased_area_sqft: change(
                    e,
                    "leased_area_sqft",
                    self.leased_area_sqft,
                    exact(Area::parse),
                )?,
                starting_rent_psf: change(
                    e,
                    "starting_rent_psf",
                    self.starting_rent_psf,
                    exact(RentPsf::parse),
                )?,
                lease_type: change(e, "lease_type", self.lease_type, |c| Ok(c.0))?,
                term_months: change(e, "term_months", self.term_months, Months::parse_term)?,
                commencement_date: change(e, "commencement_date", self.commencement_date, date)?,
                free_rent_months: change(
                    e,
                    "free_rent_months",
                    self.free_rent_months,
                    Months::parse_free_rent,
                )?,
                ti_allowance_psf: change(
                    e,
                    "ti_allowance_psf",
                    self.ti_allowance_psf,
                    exact(AllowancePsf::parse),
                )?,
                escalation_pct: change(
                    e,
                    "escalation_pct",
                    self.escalation_pct,
                    exact(EscalationPct::parse),
                )?,
                sale_price: change(e, "sale_price", self.sale_price, exact(Money::parse))?,
                sale_date: change(e, "sale_date", self.sale_date, date)?,
                buyer: change(e, "buyer", self.buyer.as_deref(), PartyName::parse)?,
                seller: change(e, "seller", self.seller.as_deref(), PartyName::parse)?,
                cap_rate_pct: change_or_clear(
                    e,
                    "cap_rate_pct",
                    self.cap_rate_pct,
                    exact(CapRatePct::parse),
                )?,
            })
        })();
        errors.into_result()?;
        changes.map(CompCommand::Amend).ok_or_default()
    }
}

#[derive(Debug, Default)]
pub struct CompsApi;

const COMPS: &str = "/v1/comps";

#[OpenApi(tag = "ApiTags::Comps")]
impl CompsApi {
    /// Record a lease comp
    ///
    /// The building must exist in the caller's organisation and not be archived.
    #[oai(
        path = "/v1/comps/lease",
        method = "post",
        operation_id = "record_lease_comp"
    )]
    async fn record_lease(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<RecordLeaseCompRequest>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let id = CompId::new();
        CommandRequest::new(
            auth.0,
            Scope::CompsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            None,
            format!("POST {COMPS}/lease"),
        )
        .with_body(&body.0)
        .run(COMPS, |context| async move {
            let command = body.0.to_command().map_err(ApiError::from)?;
            state.write.new_comp(id, command, &context).await
        })
        .await
    }

    /// Record a sale comp
    ///
    /// The building must exist in the caller's organisation and not be archived.
    #[oai(
        path = "/v1/comps/sale",
        method = "post",
        operation_id = "record_sale_comp"
    )]
    async fn record_sale(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<RecordSaleCompRequest>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let id = CompId::new();
        CommandRequest::new(
            auth.0,
            Scope::CompsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            None,
            format!("POST {COMPS}/sale"),
        )
        .with_body(&body.0)
        .run(COMPS, |context| async move {
            let command = body.0.to_command().map_err(ApiError::from)?;
            state.write.new_comp(id, command, &context).await
        })
        .await
    }

    /// Amend a comp
    ///
    /// Changes the given terms. An amended comp needs verifying again.
    #[oai(path = "/v1/comps/:id", method = "patch", operation_id = "amend_comp")]
    #[allow(clippy::too_many_arguments)]
    async fn amend(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: JsonBody<AmendCompRequest>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let operation = format!("PATCH {COMPS}/{}", id.0);
        CommandRequest::new(
            auth.0,
            Scope::CompsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            if_match.0.as_deref(),
            operation,
        )
        .with_body(&body.0)
        .run(COMPS, |context| async move {
            let command = body.0.to_command().map_err(ApiError::from)?;
            state.write.comp(CompId(id.0), command, &context).await
        })
        .await
    }

    /// Verify a comp
    ///
    /// Marks the comp as checked against its source.
    #[oai(
        path = "/v1/comps/:id/verify",
        method = "post",
        operation_id = "verify_comp"
    )]
    async fn verify(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let operation = format!("POST {COMPS}/{}/verify", id.0);
        CommandRequest::new(
            auth.0,
            Scope::CompsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            if_match.0.as_deref(),
            operation,
        )
        .run(COMPS, |context| async move {
            state
                .write
                .comp(CompId(id.0), CompCommand::Verify, &context)
                .await
        })
        .await
    }

    /// Retract a comp
    ///
    /// A retracted comp accepts nothing further.
    #[oai(
        path = "/v1/comps/:id/retract",
        method = "post",
        operation_id = "retract_comp"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn retract(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: JsonBody<ReasonRequest>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let operation = format!("POST {COMPS}/{}/retract", id.0);
        CommandRequest::new(
            auth.0,
            Scope::CompsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            if_match.0.as_deref(),
            operation,
        )
        .with_body(&body.0)
        .run(COMPS, |context| async move {
            let reason =
                Reason::parse(&body.0.reason).map_err(|e| FieldErrors::single("reason", e.0))?;
            state
                .write
                .comp(CompId(id.0), CompCommand::Retract { reason }, &context)
                .await
        })
        .await
    }
}
