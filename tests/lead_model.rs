//! The lead model and filters: table rows, HTTPS-endpoint JSON, and which
//! leads are skipped. Pure parsing, no servers.

use lead_notifier::lead::{
    is_edu_domain, parse_lead_source, Action, Customer, Filters, Lead, LeadJsonError, LeadRow,
    SkipReason, Source,
};
use time::macros::datetime;

fn row(
    customer_info: Option<&str>,
    lead_source: Option<&str>,
    action_code: Option<&str>,
) -> LeadRow {
    LeadRow {
        partition_key: "9:2F28:2F2018".into(),
        row_key: "row-1".into(),
        timestamp: Some("2018-09-28T10:11:12.1234567Z".into()),
        action_code: action_code.map(Into::into),
        created_time: Some("9/28/2018 10:11:12 AM".into()),
        customer_info: customer_info.map(Into::into),
        description: Some("Wants a demo".into()),
        lead_source: lead_source.map(Into::into),
        offer_display_name: Some("Contoso CRM".into()),
    }
}

const JANE: &str = r#"{"FirstName":"Jane","LastName":"Doe","Email":"jane@contoso.com","Phone":"+1 425 555 0100","Country":"US","Company":"Contoso","Title":"CTO"}"#;

fn lead_with_email(email: &str) -> Lead {
    let info = serde_json::json!({ "FirstName": "A", "Email": email }).to_string();
    Lead::from_row(&row(
        Some(&info),
        Some("AzureMarketplace-INS|pub.offer"),
        None,
    ))
}

#[test]
fn every_source_code_parses_with_code_and_wording() {
    let cases = [
        (
            "AzureMarketplace",
            Source::AzureMarketplace,
            "AzureMarketplace",
            "Azure Marketplace",
        ),
        (
            "AzurePortal",
            Source::AzurePortal,
            "AzurePortal",
            "Azure portal",
        ),
        ("TestDrive", Source::TestDrive, "TestDrive", "Test Drive"),
        ("SPZA", Source::AppSource, "SPZA", "AppSource"),
        ("spza", Source::AppSource, "SPZA", "AppSource"),
        (
            "azuremarketplace",
            Source::AzureMarketplace,
            "AzureMarketplace",
            "Azure Marketplace",
        ),
    ];
    for (text, source, code, wording) in cases {
        let parsed = Source::parse(text);
        assert_eq!(parsed, source, "{text}");
        assert_eq!(parsed.code(), code);
        assert_eq!(parsed.wording(), wording);
    }
    let other = Source::parse("PartnerPortal");
    assert_eq!(other, Source::Other("PartnerPortal".into()));
    assert_eq!(
        (other.code(), other.wording()),
        ("PartnerPortal", "PartnerPortal")
    );
    assert_eq!(Source::parse("  "), Source::Unknown);
}

#[test]
fn every_action_code_parses_with_code_and_wording() {
    let cases = [
        ("INS", Action::Install, "INS", "Get it now"),
        ("PLT", Action::ContactMe, "PLT", "Contact me"),
        ("DNC", Action::DoNotContact, "DNC", "Do not contact"),
        ("Create", Action::Create, "Create", "Azure portal purchase"),
        (
            "StartTestDrive",
            Action::StartTestDrive,
            "StartTestDrive",
            "Test drive started",
        ),
        ("ins", Action::Install, "INS", "Get it now"),
        (
            "starttestdrive",
            Action::StartTestDrive,
            "StartTestDrive",
            "Test drive started",
        ),
    ];
    for (text, action, code, wording) in cases {
        let parsed = Action::parse(text);
        assert_eq!(parsed, action, "{text}");
        assert_eq!(parsed.code(), code);
        assert_eq!(parsed.wording(), wording);
    }
    assert_eq!(Action::parse("Renew"), Action::Other("Renew".into()));
    assert_eq!(Action::parse(""), Action::Unknown);
}

#[test]
fn full_lead_source_form_gives_source_action_and_offer() {
    let lead = Lead::from_row(&row(
        Some(JANE),
        Some("SPZA-PLT|contoso.crm-suite"),
        Some("INS"),
    ));
    assert_eq!(lead.source, Source::AppSource);
    // LeadSource's own action wins over the ActionCode column.
    assert_eq!(lead.action, Action::ContactMe);
    assert_eq!(lead.offer_id.as_deref(), Some("contoso.crm-suite"));
    assert_eq!(
        lead.lead_source_raw.as_deref(),
        Some("SPZA-PLT|contoso.crm-suite")
    );
    assert_eq!(lead.activity(), "\"Contact me\" request on AppSource");
}

#[test]
fn source_only_forms_take_the_action_from_action_code() {
    for text in [
        "AzureMarketplace",
        "AzureMarketplace|pub.offer",
        "AzureMarketplace-|pub.offer",
    ] {
        let lead = Lead::from_row(&row(Some(JANE), Some(text), Some("INS")));
        assert_eq!(lead.source, Source::AzureMarketplace, "{text}");
        assert_eq!(lead.action, Action::Install, "{text}");
        assert_eq!(lead.activity(), "\"Get it now\" on Azure Marketplace");
    }
    let lead = Lead::from_row(&row(Some(JANE), Some("AzureMarketplace|pub.offer"), None));
    assert_eq!(lead.offer_id.as_deref(), Some("pub.offer"));
    assert_eq!(lead.action, Action::Unknown);
    assert_eq!(lead.activity(), "Lead from Azure Marketplace");
}

#[test]
fn activity_wording_for_each_action() {
    let cases = [
        ("AzurePortal-Create|p.o", "Azure portal purchase"),
        ("TestDrive-StartTestDrive|p.o", "Test drive started"),
        (
            "AzureMarketplace-DNC|p.o",
            "\"Do not contact\" lead on Azure Marketplace",
        ),
        ("AzurePortal-Renew|p.o", "\"Renew\" on Azure portal"),
    ];
    for (text, activity) in cases {
        assert_eq!(
            Lead::from_row(&row(None, Some(text), None)).activity(),
            activity
        );
    }
    assert_eq!(
        Lead::from_row(&row(None, None, Some("INS"))).activity(),
        "\"Get it now\""
    );
    assert_eq!(Lead::from_row(&row(None, None, None)).activity(), "Lead");
}

#[test]
fn parse_lead_source_splits_at_first_dash_after_taking_the_offer() {
    let parts = parse_lead_source("MSFT_TEST_1-MSFT_TEST_1|Contoso Offer");
    assert_eq!(parts.source, Source::Other("MSFT_TEST_1".into()));
    assert_eq!(parts.action, Some(Action::Other("MSFT_TEST_1".into())));
    assert_eq!(parts.offer_id.as_deref(), Some("Contoso Offer"));
}

#[test]
fn table_row_fields_are_trimmed_and_blank_is_none() {
    let info = r#"{"FirstName":"  Jane ","LastName":"   ","Email":"jane@contoso.com","Phone":""}"#;
    let mut r = row(Some(info), Some(" SPZA-INS|p.o "), None);
    r.description = Some("   ".into());
    r.offer_display_name = Some(" Contoso CRM ".into());
    let lead = Lead::from_row(&r);
    assert_eq!(lead.customer.first_name.as_deref(), Some("Jane"));
    assert_eq!(lead.customer.last_name, None);
    assert_eq!(lead.customer.phone, None);
    assert_eq!(lead.description, None);
    assert_eq!(lead.offer_name.as_deref(), Some("Contoso CRM"));
    assert_eq!(lead.display_name().as_deref(), Some("Jane"));
    assert_eq!(lead.key.to_string(), "9:2F28:2F2018/row-1");
    assert_eq!(
        lead.timestamp,
        Some(datetime!(2018-09-28 10:11:12.1234567 UTC))
    );
}

#[test]
fn a_row_with_every_column_missing_is_still_a_lead() {
    let lead = Lead::from_row(&LeadRow::default());
    assert_eq!(lead.customer, Customer::default());
    assert_eq!(
        (&lead.source, &lead.action),
        (&Source::Unknown, &Action::Unknown)
    );
    assert_eq!(lead.customer_warning, None);
    assert_eq!(lead.display_name(), None);
    assert_eq!(lead.offer_label(), "unknown offer");
    assert_eq!(Filters::default().skip_reason(&lead), None);
}

#[test]
fn offer_label_prefers_name_then_id() {
    let mut r = row(None, Some("SPZA-INS|pub.offer"), None);
    assert_eq!(Lead::from_row(&r).offer_label(), "Contoso CRM");
    r.offer_display_name = None;
    assert_eq!(Lead::from_row(&r).offer_label(), "pub.offer");
}

#[test]
fn customer_info_keys_match_in_any_case_and_numbers_become_text() {
    let variants = [
        r#"{"firstname":"Jane","LASTNAME":"Doe","email":"jane@contoso.com","phone":4255550100}"#,
        r#"{"firstName":"Jane","lastName":"Doe","Email":"jane@contoso.com","Phone":4255550100}"#,
        r#"{"userDetails":{"FirstName":"Jane","LastName":"Doe","email":"jane@contoso.com","PHONE":4255550100}}"#,
        r#"{"UserDetails":{"firstname":"Jane","lastname":"Doe","Email":"jane@contoso.com","Phone":"4255550100"}}"#,
    ];
    for info in variants {
        let lead = Lead::from_row(&row(Some(info), None, None));
        assert_eq!(lead.display_name().as_deref(), Some("Jane Doe"), "{info}");
        assert_eq!(lead.customer.email_domain(), Some("contoso.com"));
        assert_eq!(lead.customer.phone.as_deref(), Some("4255550100"), "{info}");
        assert_eq!(lead.customer_warning, None);
    }
}

#[test]
fn malformed_customer_info_keeps_raw_text_with_a_warning() {
    for bad in [r#"{"FirstName":"Jane","#, "not json at all", "[1,2]"] {
        let lead = Lead::from_row(&row(Some(bad), Some("SPZA-PLT|p.o"), None));
        assert!(
            lead.customer_warning
                .as_deref()
                .unwrap()
                .contains("CustomerInfo"),
            "{bad}"
        );
        assert_eq!(lead.customer_raw.as_deref(), Some(bad));
        assert_eq!(lead.customer, Customer::default());
        assert_eq!(lead.action, Action::ContactMe);
        assert_eq!(
            Filters::default().skip_reason(&lead),
            None,
            "never dropped: {bad}"
        );
    }
    // The warning never quotes the customer's text.
    let lead = Lead::from_row(&row(Some(r#"{"Email":"secret.person@x.com""#), None, None));
    assert!(!lead.customer_warning.unwrap().contains("secret.person"));
}

#[test]
fn doubly_encoded_customer_info_is_read() {
    let info = serde_json::Value::String(JANE.into()).to_string();
    let lead = Lead::from_row(&row(Some(&info), None, None));
    assert_eq!(lead.display_name().as_deref(), Some("Jane Doe"));
}

#[test]
fn unicode_names_survive() {
    let cases = [
        ("Jiří", "Dvořák", "Jiří Dvořák"),
        ("Árpád", "Győri", "Árpád Győri"),
        ("Юлия", "Иванова", "Юлия Иванова"),
        ("小明", "王", "王小明"),
    ];
    for (first, last, full) in cases {
        let info = serde_json::json!({ "FirstName": first, "LastName": last }).to_string();
        let lead = Lead::from_row(&row(Some(&info), None, None));
        assert_eq!(lead.display_name().as_deref(), Some(full));
    }
    let lead = Lead::from_row(&row(Some(r#"{"FirstName":"王小明"}"#), None, None));
    assert_eq!(lead.display_name().as_deref(), Some("王小明"));
}

fn microsoft_test_lead() -> Lead {
    let t = "MSFT_TEST_636573304831318844";
    let info = serde_json::json!({
        "FirstName": t, "LastName": t, "Email": format!("{t}@test.com"),
        "Company": t, "Title": t, "Country": "US",
    })
    .to_string();
    let mut r = row(Some(&info), Some(&format!("{t}-{t}|Contoso Offer")), None);
    r.description = Some(t.into());
    r.offer_display_name = None;
    Lead::from_row(&r)
}

#[test]
fn microsoft_sample_test_lead_is_skipped() {
    let lead = microsoft_test_lead();
    assert_eq!(
        lead.source,
        Source::Other("MSFT_TEST_636573304831318844".into())
    );
    assert_eq!(lead.offer_label(), "Contoso Offer");
    assert_eq!(
        Filters::default().skip_reason(&lead),
        Some(SkipReason::TestLead)
    );
    let off = Filters {
        skip_test_leads: false,
        ..Filters::default()
    };
    assert_eq!(off.skip_reason(&lead), None);
}

#[test]
fn customers_mentioning_msft_test_in_their_own_text_are_alerted() {
    let skip = |lead: &Lead| Filters::default().skip_reason(lead);
    let company = r#"{"FirstName":"Jane","LastName":"Doe","Email":"jane@contoso.com","Company":"MSFT_TEST_1 Labs"}"#;
    let mut r = row(Some(company), Some("SPZA-INS|p.o"), None);
    r.description = Some("We saw MSFT_TEST in your docs; is msft_test_123 a sample?".into());
    r.offer_display_name = Some("Offer MSFT_TEST".into());
    assert_eq!(skip(&Lead::from_row(&r)), None);
    let title = r#"{"FirstName":"Jane","Title":"MSFT_TEST_636573304831318844","Company":"MSFT_TEST_636573304831318844"}"#;
    assert_eq!(skip(&Lead::from_row(&row(Some(title), None, None))), None);
    // Near misses of the marker in the fields Partner Center marks.
    for name in [
        "MSFT_TEST",
        "MSFT_TEST_",
        "MSFT_TEST_12a",
        "xMSFT_TEST_1",
        "MSFT_TEST_1 Jr",
    ] {
        let info = serde_json::json!({"FirstName": name, "Email": format!("{name}@contoso.com")});
        let source = format!("{name}-INS|p.o");
        let lead = Lead::from_row(&row(Some(&info.to_string()), Some(&source), None));
        assert_eq!(skip(&lead), None, "{name}");
    }
    // Unreadable customer details are a real lead, whatever they contain.
    let unparseable = r#"{"FirstName":"MSFT_TEST_1""#;
    let lead = Lead::from_row(&row(Some(unparseable), Some("SPZA-INS|p.o"), None));
    assert_eq!(skip(&lead), None);
}

#[test]
fn partner_center_marks_its_test_leads_in_names_email_or_lead_source() {
    let skip = |lead: &Lead| Filters::default().skip_reason(lead);
    let t = "MSFT_TEST_636573304831318844";
    for info in [
        serde_json::json!({"FirstName": t}),
        serde_json::json!({"LastName": format!(" {} ", t.to_ascii_lowercase())}),
        serde_json::json!({"FirstName": "Jane", "Email": format!("{t}@test.com")}),
    ] {
        let lead = Lead::from_row(&row(Some(&info.to_string()), Some("SPZA-INS|p.o"), None));
        assert_eq!(skip(&lead), Some(SkipReason::TestLead), "{info}");
    }
    for source in [
        format!("{t}-{t}|Contoso Offer"),
        format!("{t}-{t}"),
        t.to_owned(),
    ] {
        let lead = Lead::from_row(&row(Some(JANE), Some(&source), None));
        assert_eq!(skip(&lead), Some(SkipReason::TestLead), "{source}");
    }
    // Partner Center's validation POST to the HTTPS endpoint.
    let body = serde_json::json!({
        "UserDetails": {"FirstName": t, "LastName": t, "Email": format!("{t}@test.com"),
                        "Company": t, "Title": t, "Country": "US"},
        "LeadSource": format!("{t}-{t}"), "ActionCode": "INS",
        "OfferTitle": "Contoso CRM Suite", "Description": t,
    })
    .to_string();
    let posted = LeadRow::from_endpoint_json(&body, datetime!(2024-03-05 12:00 UTC)).unwrap();
    assert_eq!(skip(&Lead::from_row(&posted)), Some(SkipReason::TestLead));
}

#[test]
fn edu_domains_and_near_misses() {
    for edu in [
        "stanford.edu",
        "CS.MIT.EDU",
        "ntu.edu.tw",
        "unimelb.edu.au",
        "cs.stanford.edu.",
    ] {
        assert!(is_edu_domain(edu), "{edu}");
    }
    for not_edu in [
        "education.org",
        "edu.example.com",
        "myedu.com",
        "edu.com",
        "stanford.edu.com",
        "x.edu.info",
    ] {
        assert!(!is_edu_domain(not_edu), "{not_edu}");
    }
    for email in [
        "jsmith@stanford.edu",
        "Prof@CS.MIT.EDU",
        "a@ntu.edu.tw",
        "b@unimelb.edu.au",
    ] {
        assert_eq!(
            Filters::default().skip_reason(&lead_with_email(email)),
            Some(SkipReason::Edu),
            "{email}"
        );
    }
    for email in [
        "info@education.org",
        "x@edu.example.com",
        "someone@myedu.com",
        "no-at-sign.edu",
    ] {
        assert_eq!(
            Filters::default().skip_reason(&lead_with_email(email)),
            None,
            "{email}"
        );
    }
    let off = Filters {
        skip_edu: false,
        ..Filters::default()
    };
    assert_eq!(
        off.skip_reason(&lead_with_email("jsmith@stanford.edu")),
        None
    );
}

#[test]
fn do_not_contact_is_skipped_from_either_column() {
    let from_source = Lead::from_row(&row(Some(JANE), Some("AzureMarketplace-DNC|p.o"), None));
    let from_column = Lead::from_row(&row(Some(JANE), Some("AzureMarketplace|p.o"), Some("dnc")));
    for lead in [&from_source, &from_column] {
        assert_eq!(lead.action, Action::DoNotContact);
        assert_eq!(
            Filters::default().skip_reason(lead),
            Some(SkipReason::DoNotContact)
        );
        assert_eq!(Filters::none().skip_reason(lead), None);
    }
}

#[test]
fn skip_reason_codes_and_words() {
    let all = [
        SkipReason::TestLead,
        SkipReason::Edu,
        SkipReason::DoNotContact,
    ];
    let codes: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
    assert_eq!(codes, ["test_lead", "edu", "do_not_contact"]);
    for reason in all {
        assert_eq!(reason.to_string(), reason.as_str());
        assert_eq!(SkipReason::from_code(reason.as_str()), Some(reason));
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        assert!(reason.describe().len() > 10);
    }
}

#[test]
fn endpoint_json_becomes_the_row_microsoft_would_write() {
    let body = r#"{"UserDetails":{"FirstName":"Jane","LastName":"Doe","Email":"jane@contoso.com","Phone":"+1 425 555 0100","Country":"US","Company":"Contoso","Title":"CTO"},
        "LeadSource":"AzureMarketplace","ActionCode":"INS","OfferTitle":"Contoso CRM","Description":"Wants a demo"}"#;
    let received = datetime!(2018-09-28 23:30:00 -05:00);
    let r = LeadRow::from_endpoint_json(body, received).unwrap();
    assert_eq!(r.partition_key, "9:2F29:2F2018", "date of the UTC instant");
    assert_eq!(r.customer_info.as_deref(), Some(JANE));
    assert_eq!(
        r.lead_source.as_deref(),
        Some("AzureMarketplace-INS|Contoso CRM")
    );
    assert_eq!(r.action_code.as_deref(), Some("INS"));
    assert_eq!(r.offer_display_name.as_deref(), Some("Contoso CRM"));
    assert_eq!(r.description.as_deref(), Some("Wants a demo"));
    assert_eq!(r.created_time.as_deref(), Some("2018-09-29T04:30:00Z"));
    assert_eq!(r.row_key.len(), 64);
    assert!(r.row_key.chars().all(|c| c.is_ascii_hexdigit()));

    let lead = Lead::from_row(&r);
    assert_eq!(lead.display_name().as_deref(), Some("Jane Doe"));
    assert_eq!(lead.activity(), "\"Get it now\" on Azure Marketplace");
    assert_eq!(lead.offer_label(), "Contoso CRM");
}

#[test]
fn the_same_lead_posted_twice_gets_the_same_row_key() {
    let a = r#"{"UserDetails":{"FirstName":"Jane","Email":"jane@contoso.com"},"LeadSource":"SPZA","ActionCode":"PLT","OfferTitle":"CRM"}"#;
    let b = r#"{"actionCode":"PLT","offerTitle":"CRM","leadSource":"SPZA","userDetails":{"email":" jane@contoso.com","firstname":"Jane"}}"#;
    let c = r#"{"UserDetails":{"FirstName":"Jane","Email":"jane@contoso.com"},"LeadSource":"SPZA","ActionCode":"INS","OfferTitle":"CRM"}"#;
    let first = LeadRow::from_endpoint_json(a, datetime!(2024-01-01 00:00 UTC)).unwrap();
    let again = LeadRow::from_endpoint_json(b, datetime!(2024-01-02 08:00 UTC)).unwrap();
    let other = LeadRow::from_endpoint_json(c, datetime!(2024-01-01 00:00 UTC)).unwrap();
    assert_eq!(first.row_key, again.row_key);
    assert_ne!(first.row_key, other.row_key);
}

#[test]
fn endpoint_lead_source_with_action_is_kept_and_numbers_become_text() {
    let body = r#"{"userdetails":{"firstname":"Árpád","phone":3612345678},"leadsource":"SPZA-PLT|pub.offer","actioncode":"INS"}"#;
    let r = LeadRow::from_endpoint_json(body, datetime!(2024-03-05 12:00 UTC)).unwrap();
    assert_eq!(r.lead_source.as_deref(), Some("SPZA-PLT|pub.offer"));
    assert_eq!(
        r.customer_info.as_deref(),
        Some(r#"{"FirstName":"Árpád","Phone":"3612345678"}"#)
    );
    assert_eq!(r.partition_key, "3:2F5:2F2024");
    assert_eq!(r.offer_display_name, None);
}

#[test]
fn endpoint_user_details_that_are_not_an_object_keep_the_text_with_a_warning() {
    let body =
        r#"{"UserDetails":"Jane Doe, jane@contoso.com","LeadSource":"SPZA","ActionCode":"PLT"}"#;
    let r = LeadRow::from_endpoint_json(body, datetime!(2024-03-05 12:00 UTC)).unwrap();
    let lead = Lead::from_row(&r);
    assert!(lead.customer_warning.is_some());
    assert_eq!(
        lead.customer_raw.as_deref(),
        Some("Jane Doe, jane@contoso.com")
    );
    assert_eq!(lead.action, Action::ContactMe);
}

#[test]
fn endpoint_json_errors() {
    let at = datetime!(2024-01-01 00:00 UTC);
    assert!(matches!(
        LeadRow::from_endpoint_json("{", at),
        Err(LeadJsonError::Syntax(_))
    ));
    assert!(matches!(
        LeadRow::from_endpoint_json("", at),
        Err(LeadJsonError::Syntax(_))
    ));
    assert_eq!(
        LeadRow::from_endpoint_json("[1]", at),
        Err(LeadJsonError::NotAnObject)
    );
    assert_eq!(
        LeadRow::from_endpoint_json("\"lead\"", at),
        Err(LeadJsonError::NotAnObject)
    );
    assert_eq!(
        LeadRow::from_endpoint_json(r#"{"hello":"world"}"#, at),
        Err(LeadJsonError::NotALead)
    );
    assert_eq!(
        LeadRow::from_endpoint_json("{}", at),
        Err(LeadJsonError::NotALead)
    );
}
