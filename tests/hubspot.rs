//! HubSpot through the handler as the Functions host runs it, against
//! Azurite and a HubSpot stand-in (tests/common/hubspot.rs): contacts
//! created or only filled where empty, one note per lead over reruns and
//! across a crash between the contact write and the note, batches of up to
//! 100, 429 honoured, 401 naming the scopes, routes, nothing personal or
//! secret in logs, and an upgrade that sends nothing old to HubSpot.

mod common;

use std::time::Duration;

use common::faults::{
    assert_handler_quiet, count, invoke_until_settled, lead_rows, write_rows, Fixture,
    CUSTOMER_NEEDLES,
};
use common::handler::{run_cli, Handler};
use common::hubspot::{HubSpot, Scripted};
use common::old_state::{email_and_teams, old_state, write_old_state};
use common::servers::storage_connection;
use lead_notifier::lead::LeadRow;
use serde_json::{json, Value};

const TOKEN: &str = "pat-na1-SecretToken0042";

async fn hubspot_fixture() -> (HubSpot, Fixture) {
    let hubspot = HubSpot::start(TOKEN).await;
    let mut f = Fixture::new(&storage_connection());
    f.set("HUBSPOT_TOKEN", TOKEN)
        .set("HUBSPOT_ENDPOINT", &hubspot.url);
    f.secrets.push(TOKEN.to_owned());
    (hubspot, f)
}

fn email(row: &LeadRow) -> String {
    let info: Value = serde_json::from_str(row.customer_info.as_deref().unwrap_or("{}")).unwrap();
    info["Email"].as_str().unwrap_or("").to_lowercase()
}

fn with_customer(row: &LeadRow, change: impl FnOnce(&mut Value)) -> LeadRow {
    let mut info: Value =
        serde_json::from_str(row.customer_info.as_deref().unwrap_or("{}")).unwrap();
    change(&mut info);
    LeadRow {
        customer_info: Some(info.to_string()),
        ..row.clone()
    }
}

fn prop<'a>(contact: &'a common::hubspot::Contact, name: &str) -> &'a str {
    contact
        .properties
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[tokio::test]
async fn leads_become_contacts_with_one_note_each_over_reruns() {
    let (hubspot, mut f) = hubspot_fixture().await;
    f.set("ROUTE_HUBSPOT", "action=PLT");
    let mut rows = lead_rows("hsnew", 5);
    // Routed elsewhere: "Get it now".
    rows[3].lead_source = Some("AzureMarketplace-INS|contoso.crm-suite".to_owned());
    rows[3].action_code = Some("INS".to_owned());
    // No email address: skipped for HubSpot, still in the outbox.
    rows[4] = with_customer(&rows[4], |c| c["Email"] = json!(""));
    // The sales team already has lead 0's customer, with a phone of its own
    // and a later lifecycle stage; the first name is empty.
    let existing = hubspot.add_contact(json!({
        "email": email(&rows[0]), "firstname": "", "phone": "+1 555 0199", "lifecyclestage": "customer",
    }));
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;
    let (status, first) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(count(&first, "delivered", "hubspot"), 3, "{first}");
    assert_eq!(count(&first, "delivered", "outbox"), 5, "{first}");
    assert_eq!(count(&first, "skipped", "no_email"), 1, "{first}");

    let old = hubspot.contact(&email(&rows[0])).expect("existing contact");
    assert_eq!(old.id, existing);
    assert_eq!(
        prop(&old, "phone"),
        "+1 555 0199",
        "a non-empty phone is left as it is"
    );
    assert_eq!(prop(&old, "lifecyclestage"), "customer");
    assert_eq!(
        prop(&old, "firstname"),
        "Adaeze",
        "an empty property is filled"
    );
    for row in &rows[1..3] {
        let new = hubspot.contact(&email(row)).expect("new contact");
        assert_eq!(prop(&new, "lifecyclestage"), "lead");
        assert_eq!(prop(&new, "company"), "Northwind Traders");
        assert_eq!(prop(&new, "jobtitle"), "CTO");
        assert_eq!(prop(&new, "country"), "GB");
        assert!(prop(&new, "phone").starts_with("+44 20 7946"));
    }
    assert!(hubspot.contact(&email(&rows[3])).is_none(), "routed away");
    assert_eq!(hubspot.contacts().len(), 3);

    let notes = hubspot.notes();
    assert_eq!(notes.len(), 3, "{notes:?}");
    for row in &rows[..3] {
        let contact = hubspot.contact(&email(row)).unwrap();
        let mine: Vec<_> = notes.iter().filter(|n| n.contact == contact.id).collect();
        assert_eq!(mine.len(), 1, "one note on {}", row.row_key);
        let note = mine[0];
        assert_eq!(note.association_type, 202);
        assert!(note.body.contains(&row.row_key), "lead keys: {}", note.body);
        assert!(note.body.contains("Contact me"), "{}", note.body);
        assert!(note.body.contains("Contoso CRM Suite"), "{}", note.body);
        assert!(note.body.contains("Wants a demo"), "{}", note.body);
        assert!(
            note.body.contains("lead-notifier ref leadnotifier"),
            "{}",
            note.body
        );
    }

    let (status, second) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(count(&second, "delivered", "hubspot"), 0, "{second}");
    assert_eq!(hubspot.notes().len(), 3, "no second note on a rerun");
    let mut needles: Vec<&str> = CUSTOMER_NEEDLES.to_vec();
    needles.push("555 0199");
    assert_handler_quiet(&handler, &f, &[&first, &second], &needles);
}

#[tokio::test]
async fn a_contact_found_by_a_secondary_address_is_only_filled_where_empty() {
    let (hubspot, mut f) = hubspot_fixture().await;
    f.without("OUTBOX_DIR");
    let rows = lead_rows("hssecond", 1);
    // The sales team's contact has the lead's address as a secondary one:
    // HubSpot finds it by that address, and answers its primary one.
    let existing = hubspot.add_contact(json!({
        "email": "jane.primary@example.org", "hs_additional_emails": email(&rows[0]),
        "firstname": "Janet", "phone": "+1 555 0199", "company": "",
    }));
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "hubspot"), 1, "{body}");
    assert_eq!(hubspot.contacts().len(), 1, "{:?}", hubspot.contacts());
    let contact = hubspot.contacts().remove(0);
    assert_eq!(contact.id, existing);
    assert_eq!(prop(&contact, "email"), "jane.primary@example.org");
    assert_eq!(prop(&contact, "firstname"), "Janet", "not overwritten");
    assert_eq!(prop(&contact, "phone"), "+1 555 0199", "not overwritten");
    assert_eq!(prop(&contact, "company"), "Northwind Traders", "filled");
    let notes = hubspot.notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].contact, existing);
}

#[tokio::test]
async fn two_addresses_of_one_contact_in_a_batch_fill_it_once() {
    let (hubspot, mut f) = hubspot_fixture().await;
    f.without("OUTBOX_DIR");
    let rows = lead_rows("hstwo", 2);
    // One customer under two addresses, the second a secondary one.
    let existing = hubspot.add_contact(json!({
        "email": email(&rows[0]), "hs_additional_emails": email(&rows[1]), "company": "",
    }));
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "hubspot"), 2, "{body}");
    assert_eq!(hubspot.contacts().len(), 1);
    let notes = hubspot.notes();
    assert!(
        notes.len() == 2 && notes.iter().all(|n| n.contact == existing),
        "{notes:?}"
    );
    // One upsert, with the contact once (HubSpot refuses a batch naming a
    // record twice).
    let calls = hubspot.calls();
    let upserts: Vec<_> = calls
        .iter()
        .filter(|c| c.path == "contacts/batch/upsert")
        .collect();
    assert!(upserts.len() == 1 && upserts[0].inputs == 1, "{calls:?}");
}

#[tokio::test]
async fn new_contacts_are_known_when_the_upsert_answers_no_address() {
    let (hubspot, mut f) = hubspot_fixture().await;
    f.without("OUTBOX_DIR");
    hubspot.terse_upserts();
    let rows = lead_rows("hsterse", 2);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "hubspot"), 2, "{body}");
    assert_eq!(hubspot.contacts().len(), 2);
    for row in &rows {
        let contact = hubspot.contact(&email(row)).expect("contact");
        let notes: Vec<_> = hubspot
            .notes()
            .into_iter()
            .filter(|n| n.contact == contact.id)
            .collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
    // Right the first time: no retry, so no look for notes already there.
    let calls = hubspot.calls();
    let upserts = calls.iter().filter(|c| c.path == "contacts/batch/upsert");
    assert_eq!(upserts.count(), 1, "{calls:?}");
    assert!(
        !calls.iter().any(|c| c.path.starts_with("associations")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn two_hundred_fifty_leads_take_a_few_batch_requests() {
    let (hubspot, mut f) = hubspot_fixture().await;
    // Many leads: the run's path for many (no digest for HubSpot).
    f.set("DIGEST_AFTER", "20").without("OUTBOX_DIR");
    let rows = lead_rows("hsmany", 250);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;
    let answers = invoke_until_settled(&handler, 3).await;
    let delivered: u64 = answers
        .iter()
        .map(|(_, b)| count(b, "delivered", "hubspot"))
        .sum();
    assert_eq!(delivered, 250, "{answers:?}");
    assert_eq!(hubspot.contacts().len(), 250);
    assert_eq!(hubspot.notes().len(), 250);
    let calls = hubspot.calls();
    assert!(calls.iter().all(|c| c.inputs <= 100), "{calls:?}");
    let creates = calls
        .iter()
        .filter(|c| c.path == "notes/batch/create")
        .count();
    assert_eq!(creates, 3, "{calls:?}");
    assert!(calls.len() <= 9, "a few requests per 100 leads: {calls:?}");
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let (hubspot, mut f) = hubspot_fixture().await;
    f.set("RETRY_BUDGET", "10s");
    hubspot.script(Scripted {
        path: "contacts/batch/read",
        status: 429,
        headers: vec![("Retry-After", "2".to_owned())],
        body: json!({"status": "error", "message": "You have reached your secondly limit.", "category": "RATE_LIMITS"}),
    });
    hubspot.script(Scripted {
        path: "contacts/batch/upsert",
        status: 500,
        headers: vec![],
        body: json!({"status": "error", "message": "internal error", "category": "INTERNAL_ERROR"}),
    });
    hubspot.script(Scripted {
        path: "notes/batch/create",
        status: 429,
        headers: vec![
            ("X-HubSpot-RateLimit-Remaining", "0".to_owned()),
            (
                "X-HubSpot-RateLimit-Interval-Milliseconds",
                "1500".to_owned(),
            ),
        ],
        body: json!({"status": "error", "category": "RATE_LIMITS"}),
    });
    let rows = lead_rows("hs429", 2);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "hubspot"), 2, "{body}");
    assert_eq!(hubspot.notes().len(), 2);
    let log = format!("{}{}", handler.stdout(), handler.stderr());
    assert!(
        log.contains("retrying in 2s"),
        "Retry-After honoured: {log}"
    );
    assert!(
        log.contains("retrying in 1.5s"),
        "the rate-limit window honoured: {log}"
    );
    assert!(log.contains("RATE_LIMITS"), "{log}");
    assert!(log.contains("HubSpot answered 500"), "5xx retried: {log}");
    assert_eq!(hubspot.contacts().len(), 2);
}

#[tokio::test]
async fn a_refused_value_fails_that_lead_with_category_and_property_only() {
    refused_at("contacts/batch/upsert", "hs400c", 2).await;
}

/// One lead's refused value is that lead's problem: the run goes on with
/// the next batch instead of holding it for the next run.
#[tokio::test]
async fn a_refused_value_holds_back_no_other_batch() {
    refused_at("contacts/batch/upsert", "hs400b", 130).await;
}

#[tokio::test]
async fn a_refused_note_fails_that_lead_only() {
    refused_at("notes/batch/create", "hs400n", 2).await;
}

/// HubSpot answers the first batch request at `path`, then the first lead's
/// own request there, with a validation error; `n` leads.
async fn refused_at(path: &'static str, tag: &str, n: usize) {
    let (hubspot, mut f) = hubspot_fixture().await;
    f.without("OUTBOX_DIR");
    let rows = lead_rows(tag, n);
    let refusal = Scripted {
        path,
        status: 400,
        headers: vec![],
        body: json!({
            "status": "error",
            "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"+44 20 7946 0000 is not a valid phone number\",\"error\":\"INVALID_PHONE\",\"name\":\"phone\"}]",
            "correlationId": "5f3e",
            "category": "VALIDATION_ERROR",
            "errors": [{"message": "+44 20 7946 0000 is not a valid phone number", "context": {"propertyName": ["phone"]}}],
        }),
    };
    // The batch, then the first lead alone, are refused.
    hubspot.script(refusal.clone());
    hubspot.script(refusal);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;
    let (_, body) = handler.invoke_timer().await;
    assert_eq!(count(&body, "delivered", "hubspot"), n as u64 - 1, "{body}");
    assert_eq!(body["ReturnValue"]["failed"], 1, "{body}");
    assert_eq!(body["ReturnValue"]["pending"], 0, "{body}");
    let problems = body["ReturnValue"]["problems"].to_string();
    assert!(problems.contains("VALIDATION_ERROR"), "{problems}");
    assert!(problems.contains("property phone"), "{problems}");
    assert!(problems.contains(&rows[0].row_key), "{problems}");
    assert_eq!(hubspot.notes().len(), n - 1);
    assert!(hubspot.contact(&email(&rows[n - 1])).is_some());
    assert_handler_quiet(&handler, &f, &[&body], &CUSTOMER_NEEDLES);
}

#[tokio::test]
async fn check_reads_and_test_alert_writes_one_marked_contact_and_note() {
    let (hubspot, f) = hubspot_fixture().await;
    write_rows(&f, &lead_rows("hscheck", 1)).await;
    let (code, out) = run_cli(&f.settings, &["check"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("hubspot: HubSpot account at 127.0.0.1 (token hidden)"),
        "{out}"
    );
    assert!(!out.contains(TOKEN), "{out}");
    assert!(
        hubspot.contacts().is_empty() && hubspot.notes().is_empty(),
        "check writes nothing"
    );
    assert!(hubspot.calls().iter().any(|c| c.path == "contacts"));

    let (code, out) = run_cli(&f.settings, &["test-alert"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
    let contact = hubspot
        .contact("sample.lead@example.com")
        .expect("test contact");
    assert_eq!(prop(&contact, "company"), "Sample lead from lead-notifier");
    let notes = hubspot.notes();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].contact, contact.id);
    assert!(
        notes[0].body.contains("TEST from lead-notifier test-alert"),
        "{}",
        notes[0].body
    );
}

#[tokio::test]
async fn a_refused_token_is_reported_with_the_scopes() {
    let hubspot = HubSpot::start("pat-na1-TheRightOne").await;
    let mut f = Fixture::new(&storage_connection());
    f.set("HUBSPOT_TOKEN", TOKEN)
        .set("HUBSPOT_ENDPOINT", &hubspot.url);
    f.secrets.push(TOKEN.to_owned());
    write_rows(&f, &lead_rows("hs401", 2)).await;
    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(count(&body, "delivered", "hubspot"), 0, "{body}");
    assert_eq!(count(&body, "delivered", "outbox"), 2, "{body}");
    let problems = body["ReturnValue"]["problems"].to_string();
    assert!(problems.contains("401"), "{status} {body}");
    assert!(problems.contains("HUBSPOT_TOKEN"), "{problems}");
    assert!(
        problems.contains("crm.objects.contacts.read")
            && problems.contains("crm.objects.contacts.write"),
        "{problems}"
    );
    assert!(hubspot.notes().is_empty());
    assert_handler_quiet(&handler, &f, &[&body], &CUSTOMER_NEEDLES);

    let (code, out) = run_cli(&f.settings, &["check"]).await;
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("crm.objects.contacts.write"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
}

#[tokio::test]
async fn a_crash_between_contact_and_note_leaves_exactly_one_note() {
    let (hubspot, mut f) = hubspot_fixture().await;
    f.set("CLAIM_LEASE", "2s").without("OUTBOX_DIR");
    let rows = lead_rows("hskill", 2);
    write_rows(&f, &rows).await;
    // The notes are stored, and HubSpot's answer never reaches the process.
    hubspot.hold_notes(Some(Duration::from_secs(60)));
    let mut handler = Handler::start(&f.settings).await;
    let port = handler.port;
    let run = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/LeadNotifier"))
            .json(&common::handler::timer_body())
            .send()
            .await;
    });
    for _ in 0..200 {
        if hubspot.notes().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hubspot.notes().len(), 2, "the notes were written");
    handler.kill();
    run.abort();
    hubspot.hold_notes(None);
    assert_eq!(hubspot.contacts().len(), 2);

    // After the lease, the next run takes the claims over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let handler = Handler::start(&f.settings).await;
    let answers = invoke_until_settled(&handler, 5).await;
    let delivered: u64 = answers
        .iter()
        .map(|(_, b)| count(b, "delivered", "hubspot"))
        .sum();
    assert_eq!(delivered, 2, "{answers:?}");
    assert_eq!(
        hubspot.notes().len(),
        2,
        "no second note: {:?}",
        hubspot.notes()
    );
    assert!(hubspot.calls().iter().any(|c| c.path == "notes/batch/read"));
}

#[tokio::test]
async fn a_lost_answer_retried_in_the_same_run_makes_no_second_note() {
    let (hubspot, mut f) = hubspot_fixture().await;
    f.set("RETRY_BUDGET", "10s").without("OUTBOX_DIR");
    let rows = lead_rows("hslost", 2);
    // Lead 0's customer has notes of the sales team's, and HubSpot pages
    // a contact's notes: the lookup goes through every page.
    let existing = hubspot.add_contact(json!({"email": email(&rows[0])}));
    for n in 0..3 {
        hubspot.add_note(&existing, &format!("Called back, attempt {n}"));
    }
    hubspot.page_associations(2);
    write_rows(&f, &rows).await;
    hubspot.lose_next_notes_answer(500);
    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "hubspot"), 2, "{body}");
    assert_eq!(hubspot.notes().len(), 5, "{:?}", hubspot.notes());
    let creates = hubspot
        .calls()
        .iter()
        .filter(|c| c.path == "notes/batch/create")
        .count();
    assert_eq!(creates, 1, "{:?}", hubspot.calls());
}

#[tokio::test]
async fn an_upgrade_sends_nothing_old_to_hubspot() {
    let (teams, _recipient, mut f) = email_and_teams("hsupgrade").await;
    let hubspot = HubSpot::start(TOKEN).await;
    f.set("HUBSPOT_TOKEN", TOKEN)
        .set("HUBSPOT_ENDPOINT", &hubspot.url)
        .set("SCAN_OVERLAP", "1s");
    let rows = lead_rows("hsupgrade", 3);
    write_rows(&f, &rows[..2]).await;
    // The previous version saw these leads: its watermark is past them,
    // further back than SCAN_OVERLAP.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut state = old_state(&f, &rows[..2]);
    state[0]["Watermark"] = json!(lead_notifier::storage::format_timestamp(
        time::OffsetDateTime::now_utc()
    ));
    write_old_state(&f, &state).await;
    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "hubspot"), 0, "{body}");
    assert!(hubspot.notes().is_empty() && hubspot.contacts().is_empty());
    assert!(teams.posts().is_empty());

    write_rows(&f, &rows[2..]).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "hubspot"), 1, "{body}");
    assert_eq!(count(&body, "delivered", "teams"), 1, "{body}");
    assert_eq!(hubspot.notes().len(), 1);
    assert!(hubspot.contact(&email(&rows[2])).is_some());
}
