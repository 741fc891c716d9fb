//! Given/when/then tests for every Building command and every refusal.

use cqrs_es::test::TestFramework;
use rust_decimal::Decimal;

use super::*;
use crate::values::{City, CountryCode, Street};

type Test = TestFramework<Building>;

fn org() -> OrgId {
    OrgId::parse("org_acme").expect("org")
}

fn other_org() -> OrgId {
    OrgId::parse("org_rival").expect("org")
}

fn details() -> BuildingDetails {
    BuildingDetails {
        name: BuildingName::parse("One Vanderbilt").expect("name"),
        property_type: PropertyType::Office,
        building_class: Some(BuildingClass::A),
        rentable_area_sqft: Area::parse(Decimal::from(1_750_000)).expect("area"),
        year_built: Some(YearBuilt::parse(2020).expect("year")),
        floors: Some(Floors::parse(93).expect("floors")),
        submarket: Some(Submarket::parse("Grand Central").expect("submarket")),
    }
}

fn address(street: &str) -> Address {
    Address {
        street: Street::parse(street).expect("street"),
        city: City::parse("New York").expect("city"),
        region: None,
        postal_code: None,
        country: CountryCode::parse("US").expect("country"),
    }
}

fn location() -> Location {
    Location::new(40.7527, -73.9787).expect("location")
}

fn registered() -> BuildingEvent {
    BuildingEvent::BuildingRegistered {
        org_id: org(),
        details: details(),
        address: address("1 Vanderbilt Ave"),
        location: location(),
    }
}

fn archived() -> BuildingEvent {
    BuildingEvent::BuildingArchived {
        reason: Reason::parse("demolished").expect("reason"),
    }
}

fn by(org_id: OrgId, command: BuildingCommand) -> Scoped<BuildingCommand> {
    Scoped { org_id, command }
}

fn ours(command: BuildingCommand) -> Scoped<BuildingCommand> {
    by(org(), command)
}

fn register() -> BuildingCommand {
    BuildingCommand::Register {
        details: details(),
        address: address("1 Vanderbilt Ave"),
        location: location(),
    }
}

fn rename(name: &str) -> BuildingCommand {
    BuildingCommand::UpdateDetails(BuildingDetailsPatch {
        name: Some(BuildingName::parse(name).expect("name")),
        ..Default::default()
    })
}

fn archive() -> BuildingCommand {
    BuildingCommand::Archive {
        reason: Reason::parse("sold").expect("reason"),
    }
}

#[test]
fn register_records_the_building_for_the_organisation() {
    Test::with(())
        .given_no_previous_events()
        .when(ours(register()))
        .then_expect_events(vec![registered()]);
}

#[test]
fn register_twice_is_refused() {
    Test::with(())
        .given(vec![registered()])
        .when(ours(register()))
        .then_expect_error(DomainError::AlreadyExists);
}

#[test]
fn update_details_records_the_full_new_details() {
    let mut expected = details();
    expected.name = BuildingName::parse("The Vanderbilt").expect("name");
    Test::with(())
        .given(vec![registered()])
        .when(ours(rename("The Vanderbilt")))
        .then_expect_events(vec![BuildingEvent::BuildingDetailsUpdated {
            details: expected,
        }]);
}

#[test]
fn update_details_can_clear_an_optional_field() {
    let mut expected = details();
    expected.building_class = None;
    let patch = BuildingDetailsPatch {
        building_class: Patch::Clear,
        ..Default::default()
    };
    Test::with(())
        .given(vec![registered()])
        .when(ours(BuildingCommand::UpdateDetails(patch)))
        .then_expect_events(vec![BuildingEvent::BuildingDetailsUpdated {
            details: expected,
        }]);
}

#[test]
fn update_details_that_change_nothing_record_nothing() {
    Test::with(())
        .given(vec![registered()])
        .when(ours(rename("One Vanderbilt")))
        .then_expect_events(vec![]);
}

#[test]
fn an_empty_update_is_refused() {
    Test::with(())
        .given(vec![registered()])
        .when(ours(BuildingCommand::UpdateDetails(
            BuildingDetailsPatch::default(),
        )))
        .then_expect_error(DomainError::InvalidFields(FieldErrors::single(
            "body",
            "give at least one field to change",
        )));
}

#[test]
fn update_of_an_unregistered_building_is_not_found() {
    Test::with(())
        .given_no_previous_events()
        .when(ours(rename("x")))
        .then_expect_error(DomainError::NotFound);
}

#[test]
fn another_organisations_building_is_not_found_for_every_command() {
    for command in [
        rename("x"),
        BuildingCommand::Relocate {
            address: None,
            location: Some(location()),
        },
        archive(),
        BuildingCommand::Restore,
    ] {
        Test::with(())
            .given(vec![registered(), archived()])
            .when(by(other_org(), command))
            .then_expect_error(DomainError::NotFound);
    }
}

#[test]
fn an_archived_building_refuses_changes() {
    for command in [
        rename("x"),
        BuildingCommand::Relocate {
            address: Some(address("2 Park Ave")),
            location: None,
        },
        archive(),
    ] {
        Test::with(())
            .given(vec![registered(), archived()])
            .when(ours(command))
            .then_expect_error(DomainError::BuildingArchived);
    }
}

#[test]
fn relocate_to_a_new_address_keeps_the_location() {
    Test::with(())
        .given(vec![registered()])
        .when(ours(BuildingCommand::Relocate {
            address: Some(address("2 Park Ave")),
            location: None,
        }))
        .then_expect_events(vec![BuildingEvent::BuildingRelocated {
            address: address("2 Park Ave"),
            location: location(),
        }]);
}

#[test]
fn relocate_to_a_new_location_keeps_the_address() {
    let moved = Location::new(40.0, -74.0).expect("location");
    Test::with(())
        .given(vec![registered()])
        .when(ours(BuildingCommand::Relocate {
            address: None,
            location: Some(moved),
        }))
        .then_expect_events(vec![BuildingEvent::BuildingRelocated {
            address: address("1 Vanderbilt Ave"),
            location: moved,
        }]);
}

#[test]
fn relocate_without_address_or_location_is_refused() {
    Test::with(())
        .given(vec![registered()])
        .when(ours(BuildingCommand::Relocate {
            address: None,
            location: None,
        }))
        .then_expect_error(DomainError::InvalidFields(FieldErrors::single(
            "body",
            "give an address, a location or both",
        )));
}

#[test]
fn relocate_to_the_same_place_records_nothing() {
    Test::with(())
        .given(vec![registered()])
        .when(ours(BuildingCommand::Relocate {
            address: Some(address("1 Vanderbilt Ave")),
            location: Some(location()),
        }))
        .then_expect_events(vec![]);
}

#[test]
fn archive_records_the_reason() {
    Test::with(())
        .given(vec![registered()])
        .when(ours(archive()))
        .then_expect_events(vec![BuildingEvent::BuildingArchived {
            reason: Reason::parse("sold").expect("reason"),
        }]);
}

#[test]
fn restore_brings_an_archived_building_back() {
    Test::with(())
        .given(vec![registered(), archived()])
        .when(ours(BuildingCommand::Restore))
        .then_expect_events(vec![BuildingEvent::BuildingRestored {}]);
}

#[test]
fn restore_of_an_active_building_is_refused() {
    Test::with(())
        .given(vec![registered()])
        .when(ours(BuildingCommand::Restore))
        .then_expect_error(DomainError::BuildingNotArchived);
}

#[test]
fn a_restored_building_accepts_changes_again() {
    let mut expected = details();
    expected.name = BuildingName::parse("Back").expect("name");
    Test::with(())
        .given(vec![
            registered(),
            archived(),
            BuildingEvent::BuildingRestored {},
        ])
        .when(ours(rename("Back")))
        .then_expect_events(vec![BuildingEvent::BuildingDetailsUpdated {
            details: expected,
        }]);
}

#[test]
fn status_tells_the_owner_only() {
    let mut building = Building::default();
    building.apply(registered());
    assert_eq!(building.status_for(&org()), Some(BuildingStatus::Active));
    assert_eq!(building.status_for(&other_org()), None);
    building.apply(archived());
    assert_eq!(building.status_for(&org()), Some(BuildingStatus::Archived));
}

#[test]
fn events_round_trip_through_json_with_exact_decimals() {
    let event = registered();
    let json = serde_json::to_value(&event).expect("serialise");
    assert_eq!(
        json["BuildingRegistered"]["rentable_area_sqft"],
        serde_json::json!("1750000")
    );
    let back: BuildingEvent = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, event);
    assert_eq!(event.event_type(), "BuildingRegistered");
}
