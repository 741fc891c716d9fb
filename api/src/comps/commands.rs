//! `/v1/comps`: record lease and sale comps, amend, verify, retract. The Comp
//! aggregate checks the building against the event store (exists, same organisation,
//! not archived) before anything is recorded.

use domain::values::{
    AllowancePsf, Area, BuildingId, CapRatePct, DealDate, EscalationPct, InvalidValue, LeaseType,
    Money, Months, PartyName, RentPsf, Suite,
};
use domain::{CompChanges, CompCommand, CompTerms, LeaseTerms, SaleTerms};
use poem_openapi::param::Path;
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Object, OpenApi};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::command_endpoint::{
    Command, CommandBody, CommandResponse, Comps, CreateResponse, NewCommand, ReasonRequest,
};
use crate::input::{
    change, field, optional, patch, AllParsed, Choice, Exact, IsoDate, JsonBody, Parsed,
};
use crate::tags::ApiTags;

/// A lease comparable.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, example)]
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
#[oai(deny_unknown_fields, example)]
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
#[oai(deny_unknown_fields, example)]
pub struct AmendCompRequest {
    pub tenant: MaybeUndefined<String>,
    /// `null` clears it.
    #[oai(nullable)]
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
    /// `null` clears it.
    #[oai(nullable)]
    pub cap_rate_pct: MaybeUndefined<Exact>,
}

/// The building of the comp examples: replace it with one of yours (the only field of
/// the examples that cannot be sent as it is).
const EXAMPLE_BUILDING: Uuid = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);

fn example_decimal(text: &str) -> Exact {
    Exact(text.parse().unwrap_or_default())
}

impl Example for RecordLeaseCompRequest {
    fn example() -> Self {
        Self {
            building_id: EXAMPLE_BUILDING,
            tenant: "Globex".into(),
            suite: Some("12A".into()),
            leased_area_sqft: example_decimal("12500"),
            starting_rent_psf: example_decimal("85.50"),
            lease_type: Choice(LeaseType::Gross),
            term_months: 120,
            commencement_date: IsoDate(
                chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            ),
            free_rent_months: Some(6),
            ti_allowance_psf: Some(example_decimal("95.00")),
            escalation_pct: Some(example_decimal("3")),
        }
    }
}

impl Example for RecordSaleCompRequest {
    fn example() -> Self {
        Self {
            building_id: EXAMPLE_BUILDING,
            sale_price: example_decimal("125000000"),
            sale_date: IsoDate(chrono::NaiveDate::from_ymd_opt(2025, 6, 30).unwrap_or_default()),
            buyer: "Initech REIT".into(),
            seller: "Hooli Holdings".into(),
            cap_rate_pct: Some(example_decimal("5.25")),
        }
    }
}

impl Example for AmendCompRequest {
    fn example() -> Self {
        Self {
            tenant: MaybeUndefined::Undefined,
            suite: MaybeUndefined::Null,
            leased_area_sqft: MaybeUndefined::Undefined,
            starting_rent_psf: MaybeUndefined::Value(example_decimal("87.25")),
            lease_type: MaybeUndefined::Undefined,
            term_months: MaybeUndefined::Undefined,
            commencement_date: MaybeUndefined::Undefined,
            free_rent_months: MaybeUndefined::Undefined,
            ti_allowance_psf: MaybeUndefined::Undefined,
            escalation_pct: MaybeUndefined::Undefined,
            sale_price: MaybeUndefined::Undefined,
            sale_date: MaybeUndefined::Undefined,
            buyer: MaybeUndefined::Undefined,
            seller: MaybeUndefined::Undefined,
            cap_rate_pct: MaybeUndefined::Undefined,
        }
    }
}

fn exact<T>(
    parse: fn(Decimal) -> Result<T, InvalidValue>,
) -> impl Fn(Exact) -> Result<T, InvalidValue> {
    move |raw| parse(raw.0)
}

fn date(raw: IsoDate) -> Result<DealDate, InvalidValue> {
    DealDate::parse(raw.0)
}

impl CommandBody<CompCommand> for RecordLeaseCompRequest {
    fn to_command(&self) -> Parsed<CompCommand> {
        let zero = Exact(Decimal::ZERO);
        let (
            tenant,
            suite,
            leased_area_sqft,
            starting_rent_psf,
            term_months,
            commencement_date,
            free_rent_months,
            ti_allowance_psf,
            escalation_pct,
        ) = (
            field("tenant", self.tenant.as_str(), PartyName::parse),
            optional("suite", self.suite.as_deref(), Suite::parse),
            field(
                "leased_area_sqft",
                self.leased_area_sqft,
                exact(Area::parse),
            ),
            field(
                "starting_rent_psf",
                self.starting_rent_psf,
                exact(RentPsf::parse),
            ),
            field("term_months", self.term_months, Months::parse_term),
            field("commencement_date", self.commencement_date, date),
            field(
                "free_rent_months",
                self.free_rent_months.unwrap_or(0),
                Months::parse_free_rent,
            ),
            field(
                "ti_allowance_psf",
                self.ti_allowance_psf.unwrap_or(zero),
                exact(AllowancePsf::parse),
            ),
            field(
                "escalation_pct",
                self.escalation_pct.unwrap_or(zero),
                exact(EscalationPct::parse),
            ),
        )
            .all()?;
        Ok(CompCommand::Record {
            building_id: BuildingId(self.building_id),
            terms: CompTerms::Lease(LeaseTerms {
                tenant,
                suite,
                leased_area_sqft,
                starting_rent_psf,
                lease_type: self.lease_type.0,
                term_months,
                commencement_date,
                free_rent_months,
                ti_allowance_psf,
                escalation_pct,
            }),
        })
    }
}

impl CommandBody<CompCommand> for RecordSaleCompRequest {
    fn to_command(&self) -> Parsed<CompCommand> {
        let (sale_price, sale_date, buyer, seller, cap_rate_pct) = (
            field("sale_price", self.sale_price, exact(Money::parse)),
            field("sale_date", self.sale_date, date),
            field("buyer", self.buyer.as_str(), PartyName::parse),
            field("seller", self.seller.as_str(), PartyName::parse),
            optional("cap_rate_pct", self.cap_rate_pct, exact(CapRatePct::parse)),
        )
            .all()?;
        Ok(CompCommand::Record {
            building_id: BuildingId(self.building_id),
            terms: CompTerms::Sale(SaleTerms {
                sale_price,
                sale_date,
                buyer,
                seller,
                cap_rate_pct,
            }),
        })
    }
}

impl CommandBody<CompCommand> for AmendCompRequest {
    fn to_command(&self) -> Parsed<CompCommand> {
        let (
            tenant,
            suite,
            leased_area_sqft,
            starting_rent_psf,
            lease_type,
            term_months,
            commencement_date,
            free_rent_months,
            ti_allowance_psf,
            escalation_pct,
            sale_price,
            sale_date,
            buyer,
            seller,
            cap_rate_pct,
        ) = (
            change("tenant", self.tenant.as_deref(), PartyName::parse),
            patch("suite", self.suite.as_deref(), Suite::parse),
            change(
                "leased_area_sqft",
                self.leased_area_sqft,
                exact(Area::parse),
            ),
            change(
                "starting_rent_psf",
                self.starting_rent_psf,
                exact(RentPsf::parse),
            ),
            change(
                "lease_type",
                self.lease_type,
                |c: Choice<LeaseType>| Ok(c.0),
            ),
            change("term_months", self.term_months, Months::parse_term),
            change("commencement_date", self.commencement_date, date),
            change(
                "free_rent_months",
                self.free_rent_months,
                Months::parse_free_rent,
            ),
            change(
                "ti_allowance_psf",
                self.ti_allowance_psf,
                exact(AllowancePsf::parse),
            ),
            change(
                "escalation_pct",
                self.escalation_pct,
                exact(EscalationPct::parse),
            ),
            change("sale_price", self.sale_price, exact(Money::parse)),
            change("sale_date", self.sale_date, date),
            change("buyer", self.buyer.as_deref(), PartyName::parse),
            change("seller", self.seller.as_deref(), PartyName::parse),
            patch("cap_rate_pct", self.cap_rate_pct, exact(CapRatePct::parse)),
        )
            .all()?;
        Ok(CompCommand::Amend(CompChanges {
            tenant,
            suite,
            leased_area_sqft,
            starting_rent_psf,
            lease_type,
            term_months,
            commencement_date,
            free_rent_months,
            ti_allowance_psf,
            escalation_pct,
            sale_price,
            sale_date,
            buyer,
            seller,
            cap_rate_pct,
        }))
    }
}

crate::command_endpoint::checked_by_its_command! {
    RecordLeaseCompRequest => CompCommand,
    RecordSaleCompRequest => CompCommand,
    AmendCompRequest => CompCommand,
}

#[derive(Debug, Default)]
pub struct CompsApi;

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
        command: NewCommand<Comps>,
        body: JsonBody<RecordLeaseCompRequest>,
    ) -> CreateResponse {
        command.create(body.0).await
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
        command: NewCommand<Comps>,
        body: JsonBody<RecordSaleCompRequest>,
    ) -> CreateResponse {
        command.create(body.0).await
    }

    /// Amend a comp
    ///
    /// Changes the given terms. An amended comp needs verifying again.
    #[oai(path = "/v1/comps/:id", method = "patch", operation_id = "amend_comp")]
    async fn amend(
        &self,
        command: Command<Comps>,
        /// The comp's id.
        id: Path<Uuid>,
        body: JsonBody<AmendCompRequest>,
    ) -> CommandResponse {
        command.change(id.0, body.0).await
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
        command: Command<Comps>,
        /// The comp's id.
        id: Path<Uuid>,
    ) -> CommandResponse {
        command.send(id.0, CompCommand::Verify).await
    }

    /// Retract a comp
    ///
    /// A retracted comp accepts nothing further.
    #[oai(
        path = "/v1/comps/:id/retract",
        method = "post",
        operation_id = "retract_comp"
    )]
    async fn retract(
        &self,
        command: Command<Comps>,
        /// The comp's id.
        id: Path<Uuid>,
        body: JsonBody<ReasonRequest>,
    ) -> CommandResponse {
        command.change(id.0, body.0).await
    }
}
