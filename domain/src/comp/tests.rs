//! Given/when/then tests for every Comp command and every refusal. The building
//! directory is an in-memory table: it stands in for the event store the api asks.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::NaiveDate;
use cqrs_es::test::TestFramework;
use rust_decimal::Decimal;

use super::*;

fn org() -> OrgId {
    OrgId::parse("org_acme").expect("org")
}

fn other_org() -> OrgId {
    OrgId::parse("org_rival").expect("org")
}

fn active_building() -> BuildingId {
    BuildingId(uuid::Uuid::from_u128(1))
}

fn archived_building() -> BuildingId {
    BuildingId(uuid::Uuid::from_u128(2))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

fn date(y: i32, m: u32, d: u32) -> DealDate {
    DealDate::parse(NaiveDate::from_ymd_opt(y, m, d).expect("date")).expect("deal date")
}

/// Buildings of `org_acme`: one active, one archived; everything else is unknown.
struct Directory {
    buildings: HashMap<BuildingId, BuildingStatus>,
    down: bool,
}

#[async_trait]
impl BuildingDirectory for Directory {
    async fn status(
        &self,
        org_id: &OrgId,
        building_id: BuildingId,
    ) -> Result<Option<BuildingStatus>, String> {
        if self.down {
            return Err("event store unreachable".to_owned());
        }
        if org_id != &org() {
            return Ok(None);
        }
        Ok(self.buildings.get(&building_id).copied())
    }
}

fn services(down: bool) -> CompServices {
    let buildings = HashMap::from([
        (active_building(), BuildingStatus::Active),
        (archived_building(), BuildingStatus::Archived),
    ]);
    CompServices::new(Arc::new(Directory { buildings, down }))
}

fn test() -> TestFramework<Comp> {
    TestFramework::with(services(false))
}

fn lease() -> LeaseTerms {
    LeaseTerms {
        tenant: PartyName::parse("Globex").expect("tenant"),
        suite: Some(Suite::parse("12A").expect("suite")),
        leased_area_sqft: Area::parse(dec("12500")).expect("area"),
        starting_rent_psf: RentPsf::parse(dec("85.50")).expect("rent"),
        lease_type: LeaseType::Gross,
        term_months: Months::parse_term(120).expect("term"),
        commencement_date: date(2026, 1, 1),
        free_rent_months: Months::parse_free_rent(6).expect("free rent"),
        ti_allowance_psf: AllowancePsf::parse(dec("95")).expect("ti"),
        escalation_pct: EscalationPct::parse(dec("3")).expect("escalation"),
    }
}

fn sale() -> SaleTerms {
    SaleTerms {
        sale_price: Money::parse(dec("125000000")).expect("price"),
        sale_date: date(2025, 6, 30),
        buyer: PartyName::parse("Initech REIT").expect("buyer"),
        seller: PartyName::parse("Hooli Holdings").expect("seller"),
        cap_rate_pct: Some(CapRatePct::parse(dec("5.25")).expect("cap rate")),
    }
}

fn lease_recorded() -> CompEvent {
    CompEvent::LeaseCompRecorded {
        org_id: org(),
        building_id: active_building(),
        terms: lease(),
    }
}

fn on_archived_building(event: CompEvent) -> CompEvent {
    match event {
        CompEvent::LeaseCompRecorded { org_id, terms, .. } => CompEvent::LeaseCompRecorded {
            org_id,
            building_id: archived_building(),
            terms,
        },
        other => other,
    }
}

fn retracted() -> CompEvent {
    CompEvent::CompRetracted {
        reason: Reason::parse("duplicate").expect("reason"),
    }
}

fn ours(command: CompCommand) -> Scoped<CompCommand> {
    Scoped {
        org_id: org(),
        command,
    }
}

fn record_lease(building_id: BuildingId, terms: LeaseTerms) -> CompCommand {
    CompCommand::Record {
        building_id,
        terms: CompTerms::Lease(terms),
    }
}

fn new_rent(rent: &str) -> CompCommand {
    CompCommand::Amend(CompChanges {
        starting_rent_psf: Some(RentPsf::parse(dec(rent)).expect("rent")),
        ..Default::default()
    })
}

fn retract() -> CompCommand {
    CompCommand::Retract {
        reason: Reason::parse("duplicate").expect("reason"),
    }
}

#[test]
fn record_lease_for_an_active_building() {
    test()
        .given_no_previous_events()
        .when(ours(record_lease(active_building(), lease())))
        .then_expect_events(vec![lease_recorded()]);
}

#[test]
fn record_sale_for_an_active_building() {
    test()
        .given_no_previous_events()
        .when(ours(CompCommand::Record {
            building_id: active_building(),
            terms: CompTerms::Sale(sale()),
        }))
        .then_expect_events(vec![CompEvent::SaleCompRecorded {
            org_id: org(),
            building_id: active_building(),
            terms: sale(),
        }]);
}

#[test]
fn record_for_an_archived_building_is_refused() {
    test()
        .given_no_previous_events()
        .when(ours(record_lease(archived_building(), lease())))
        .then_expect_error(DomainError::BuildingArchived);
}

#[test]
fn record_for_an_unknown_building_is_refused() {
    test()
        .given_no_previous_events()
        .when(ours(record_lease(
            BuildingId(uuid::Uuid::from_u128(99)),
            lease(),
        )))
        .then_expect_error(DomainError::UnknownBuilding);
}

#[test]
fn record_for_another_organisations_building_is_refused_as_unknown() {
    test()
        .given_no_previous_events()
        .when(Scoped {
            org_id: other_org(),
            command: record_lease(active_building(), lease()),
        })
        .then_expect_error(DomainError::UnknownBuilding);
}

#[test]
fn record_when_the_directory_fails_is_unavailable_not_unknown() {
    TestFramework::<Comp>::with(services(true))
        .given_no_previous_events()
        .when(ours(record_lease(active_building(), lease())))
        .then_expect_error(DomainError::Unavailable("event store unreachable".into()));
}

#[test]
fn free_rent_must_leave_paid_months() {
    let mut terms = lease();
    terms.free_rent_months = Months::parse_free_rent(120).expect("months");
    test()
        .given_no_previous_events()
        .when(ours(record_lease(active_building(), terms)))
        .then_expect_error(DomainError::InvalidFields(FieldErrors::single(
            "free_rent_months",
            "must be less than term_months",
        )));
}

#[test]
fn record_twice_is_refused() {
    test()
        .given(vec![lease_recorded()])
        .when(ours(record_lease(active_building(), lease())))
        .then_expect_error(DomainError::AlreadyExists);
}

#[test]
fn amend_records_the_full_new_terms() {
    let mut expected = lease();
    expected.starting_rent_psf = RentPsf::parse(dec("90")).expect("rent");
    test()
        .given(vec![lease_recorded()])
        .when(ours(new_rent("90")))
        .then_expect_events(vec![CompEvent::CompAmended {
            terms: CompTerms::Lease(expected),
        }]);
}

#[test]
fn amend_can_clear_the_suite() {
    let mut expected = lease();
    expected.suite = None;
    test()
        .given(vec![lease_recorded()])
        .when(ours(CompCommand::Amend(CompChanges {
            suite: Patch::Clear,
            ..Default::default()
        })))
        .then_expect_events(vec![CompEvent::CompAmended {
            terms: CompTerms::Lease(expected),
        }]);
}

#[test]
fn amend_with_fields_of_the_other_kind_names_each_of_them() {
    let mut expected = FieldErrors::default();
    expected.push("sale_price", "is not a field of a lease comp");
    expected.push("buyer", "is not a field of a lease comp");
    test()
        .given(vec![lease_recorded()])
        .when(ours(CompCommand::Amend(CompChanges {
            sale_price: Some(Money::parse(dec("1")).expect("price")),
            buyer: Some(PartyName::parse("x").expect("buyer")),
            ..Default::default()
        })))
        .then_expect_error(DomainError::InvalidFields(expected));
}

#[test]
fn an_empty_amendment_is_refused() {
    test()
        .given(vec![lease_recorded()])
        .when(ours(CompCommand::Amend(CompChanges::default())))
        .then_expect_error(DomainError::InvalidFields(FieldErrors::single(
            "body",
            "give at least one field to change",
        )));
}

#[test]
fn an_amendment_that_breaks_the_lease_rules_is_refused() {
    test()
        .given(vec![lease_recorded()])
        .when(ours(CompCommand::Amend(CompChanges {
            term_months: Some(Months::parse_term(6).expect("term")),
            ..Default::default()
        })))
        .then_expect_error(DomainError::InvalidFields(FieldErrors::single(
            "free_rent_months",
            "must be less than term_months",
        )));
}

#[test]
fn an_amendment_that_changes_nothing_records_nothing() {
    test()
        .given(vec![lease_recorded()])
        .when(ours(new_rent("85.5")))
        .then_expect_events(vec![]);
}

#[test]
fn amend_and_verify_are_refused_once_the_building_is_archived() {
    for command in [new_rent("90"), CompCommand::Verify] {
        test()
            .given(vec![on_archived_building(lease_recorded())])
            .when(ours(command))
            .then_expect_error(DomainError::BuildingArchived);
    }
}

#[test]
fn verify_marks_the_comp_verified() {
    test()
        .given(vec![lease_recorded()])
        .when(ours(CompCommand::Verify))
        .then_expect_events(vec![CompEvent::CompVerified {}]);
}

#[test]
fn verify_twice_is_refused() {
    test()
        .given(vec![lease_recorded(), CompEvent::CompVerified {}])
        .when(ours(CompCommand::Verify))
        .then_expect_error(DomainError::CompAlreadyVerified);
}

#[test]
fn an_amended_comp_needs_verifying_again() {
    test()
        .given(vec![
            lease_recorded(),
            CompEvent::CompVerified {},
            CompEvent::CompAmended {
                terms: CompTerms::Lease(lease()),
            },
        ])
        .when(ours(CompCommand::Verify))
        .then_expect_events(vec![CompEvent::CompVerified {}]);
}

#[test]
fn retract_records_the_reason_even_on_an_archived_building() {
    test()
        .given(vec![on_archived_building(lease_recorded())])
        .when(ours(retract()))
        .then_expect_events(vec![retracted()]);
}

#[test]
fn a_retracted_comp_accepts_nothing_further() {
    for command in [new_rent("90"), CompCommand::Verify, retract()] {
        test()
            .given(vec![lease_recorded(), retracted()])
            .when(ours(command))
            .then_expect_error(DomainError::CompRetracted);
    }
}

#[test]
fn another_organisations_comp_is_not_found_for_every_command() {
    for command in [new_rent("90"), CompCommand::Verify, retract()] {
        test()
            .given(vec![lease_recorded()])
            .when(Scoped {
                org_id: other_org(),
                command,
            })
            .then_expect_error(DomainError::NotFound);
    }
}

#[test]
fn commands_on_an_unrecorded_comp_are_not_found() {
    test()
        .given_no_previous_events()
        .when(ours(CompCommand::Verify))
        .then_expect_error(DomainError::NotFound);
}

#[test]
fn comp_events_round_trip_through_json() {
    for event in [
        lease_recorded(),
        CompEvent::CompAmended {
            terms: CompTerms::Sale(sale()),
        },
        retracted(),
    ] {
        let json = serde_json::to_value(&event).expect("serialise");
        let back: CompEvent = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, event);
    }
}
