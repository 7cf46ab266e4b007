use super::*;
use crate::destination::{DestinationId, Kind};
use crate::lead::{LeadRow, Source};

fn lead(lead_source: &str, offer_name: &str, country: &str) -> Lead {
    Lead::from_row(&LeadRow {
        partition_key: "p".into(),
        row_key: format!("{lead_source}{offer_name}{country}"),
        lead_source: Some(lead_source.into()),
        offer_display_name: Some(offer_name.into()),
        customer_info: Some(format!(r#"{{"Country":"{country}"}}"#)),
        ..LeadRow::default()
    })
}

fn route(text: &str) -> Route {
    parse("ROUTE_TEAMS_CRM", text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn error(text: &str) -> RouteError {
    match parse("ROUTE_EMAIL_EMEA", text) {
        Ok(route) => panic!("{text} parsed as {route:?}"),
        Err(e) => e,
    }
}

fn id(kind: Kind, name: &str) -> DestinationId {
    DestinationId::named(kind, name).unwrap()
}

#[test]
fn conditions_all_hold_values_any_match() {
    let r = route("country=DE,FR,GB;action=PLT,INS");
    let Route::When(conditions) = &r else {
        panic!("{r:?}")
    };
    let holds = |l: &Lead| conditions.iter().all(|c| c.holds(l));
    assert!(holds(&lead("SPZA-PLT|contoso.crm", "Contoso CRM", "DE")));
    assert!(holds(&lead("AzureMarketplace-INS|x.y", "Y", "gb")));
    assert!(!holds(&lead("SPZA-PLT|contoso.crm", "Contoso CRM", "US")));
    assert!(!holds(&lead(
        "SPZA-Create|contoso.crm",
        "Contoso CRM",
        "FR"
    )));
}

#[test]
fn offer_wildcards_match_id_or_display_name_in_any_case() {
    let p = OfferPattern::new("contoso.crm-*");
    assert!(p.matches("contoso.crm-preview"));
    assert!(p.matches("CONTOSO.CRM-"));
    assert!(!p.matches("contoso.crm"));
    assert!(!p.matches("fabrikam.contoso.crm-x"));
    let p = OfferPattern::new("*analytics*");
    assert!(p.matches("Fabrikam Analytics Suite"));
    assert!(!p.matches("Fabrikam CRM"));
    let p = OfferPattern::new("a*b*a");
    assert!(p.matches("aba"));
    assert!(p.matches("axxbyya"));
    assert!(!p.matches("ab"));
    assert!(!p.matches("a"));
    assert!(OfferPattern::new("*").matches("anything"));
    assert!(OfferPattern::new("Contoso CRM").matches("contoso crm"));

    let r = route("offer=contoso.crm-*,Fabrikam Analytics");
    let Route::When(c) = &r else { panic!() };
    assert!(c[0].holds(&lead("SPZA-PLT|contoso.crm-eu", "Whatever", "DE")));
    assert!(c[0].holds(&lead("SPZA-PLT|fabrikam.bi", "fabrikam analytics", "DE")));
    assert!(!c[0].holds(&lead("SPZA-PLT|fabrikam.bi", "Fabrikam BI", "DE")));
}

#[test]
fn actions_and_sources_by_code_or_words() {
    assert_eq!(
        route("action=Contact me, getitnow ,dnc,Create,StartTestDrive"),
        Route::When(vec![Condition::Action(vec![
            Action::ContactMe,
            Action::Install,
            Action::DoNotContact,
            Action::Create,
            Action::StartTestDrive
        ])])
    );
    assert_eq!(
        route("source=AppSource,SPZA,azure marketplace,AzurePortal,Test Drive"),
        Route::When(vec![Condition::Source(vec![
            Source::AppSource,
            Source::AppSource,
            Source::AzureMarketplace,
            Source::AzurePortal,
            Source::TestDrive
        ])])
    );
    let r = route("source=AppSource");
    let Route::When(c) = &r else { panic!() };
    assert!(c[0].holds(&lead("SPZA-PLT|a.b", "B", "DE")));
    assert!(!c[0].holds(&lead("AzureMarketplace-PLT|a.b", "B", "DE")));
}

#[test]
fn unmatched_stands_alone() {
    assert_eq!(route(" Unmatched "), Route::Unmatched);
    let e = error("unmatched;country=DE");
    assert_eq!(e.part, "unmatched");
    assert!(e.problem.contains("stands alone"), "{e}");
}

#[test]
fn errors_name_the_setting_and_the_part() {
    let e = error("country=DE;ofer=contoso.*");
    assert_eq!(e.setting, "ROUTE_EMAIL_EMEA");
    assert_eq!(e.part, "ofer");
    let text = e.to_string();
    assert!(
        text.starts_with("ROUTE_EMAIL_EMEA: could not read \"ofer\""),
        "{text}"
    );
    assert!(text.contains("offer, action, source and country"), "{text}");

    assert_eq!(error("action=PLT,PTL").part, "PTL");
    assert!(error("action=PTL").problem.contains("INS, PLT"));
    assert_eq!(error("source=Bing").part, "Bing");
    assert_eq!(error("country=D3").part, "D3");
    assert_eq!(error("country=DE,,FR").part, "country=DE,,FR");
    assert_eq!(error("country DE").part, "country DE");
    assert_eq!(error("country=DE;country=FR").part, "country=FR");
    assert_eq!(error(";;").part, ";;");
    assert_eq!(error("offer=").part, "offer=");
}

#[test]
fn describes_routes_in_words() {
    assert_eq!(
        route("offer=contoso.crm-*;source=SPZA;country=DE,FR").describe(),
        "leads where offer is contoso.crm-* and source is AppSource and country is de or fr"
    );
    assert_eq!(Route::Every.describe(), "every lead");
}

#[test]
fn unmatched_takes_what_no_routed_destination_took() {
    let crm = id(Kind::Teams, "crm");
    let emea = id(Kind::Email, "emea");
    let router = Router::new(vec![
        (crm.clone(), route("offer=contoso.crm*")),
        (emea.clone(), route("country=DE,FR")),
        (DestinationId::EMAIL, Route::Unmatched),
        (DestinationId::SLACK, Route::Every),
    ])
    .unwrap();
    let takers = |l: &Lead| {
        router
            .routes()
            .iter()
            .filter(|(d, _)| router.takes(d, l))
            .map(|(d, _)| d.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        takers(&lead("SPZA-PLT|contoso.crm", "CRM", "DE")),
        ["teams:crm", "email:emea", "slack"]
    );
    assert_eq!(
        takers(&lead("SPZA-PLT|fabrikam.bi", "BI", "US")),
        ["email", "slack"],
        "the slack destination has no route, so it does not count as taking the lead"
    );
    // A destination the router does not know takes everything.
    assert!(router.takes(&DestinationId::OUTBOX, &lead("SPZA", "x", "US")));
}

#[test]
fn every_destination_routed_and_none_unmatched_is_refused() {
    let e = Router::new(vec![
        (id(Kind::Teams, "crm"), route("offer=contoso.crm*")),
        (DestinationId::EMAIL, route("country=DE")),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("teams:crm, email"), "{e}");
    assert!(e.contains("ROUTE_EMAIL=unmatched"), "{e}");
    assert!(Router::new(vec![
        (id(Kind::Teams, "crm"), route("offer=contoso.crm*")),
        (DestinationId::WEBHOOK, Route::Every),
    ])
    .is_ok());
}

#[test]
fn route_setting_names() {
    assert_eq!(setting_name(&id(Kind::Email, "EMEA")), "ROUTE_EMAIL_EMEA");
    assert_eq!(setting_name(&DestinationId::SLACK), "ROUTE_SLACK");
}
