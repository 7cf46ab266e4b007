//! The email channel against a real SMTP server (MailDev) and a scripted one.

mod common;

use std::time::Duration;

use common::leads::{jane, lead, returning_jane};
use common::servers::{free_port, maildev_api, maildev_smtp_port, unique_recipient};
use common::smtp_script::{Script, ScriptedSmtp};
use lead_notifier::config::{SmtpAuth, SmtpSecurity, SmtpSettings};
use lead_notifier::lead::{Lead, LeadRow};
use lead_notifier::notify::email::body::{render_html, render_text};
use lead_notifier::notify::email::{message_id, render_message, EmailNotifier};
use lead_notifier::notify::{Alert, DestinationId, Notifier, NotifyError};
use serde_json::{json, Value};

/// Plain SMTP to 127.0.0.1:`port`, no login.
fn settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        auth: SmtpAuth::None,
    }
}

/// A notifier sending to one recipient.
fn notifier_for(smtp: &SmtpSettings) -> EmailNotifier {
    notifier(smtp, &["a@sales.example".into()])
}

/// A notifier sending from a fixed sender to `to`.
fn notifier(smtp: &SmtpSettings, to: &[String]) -> EmailNotifier {
    let from = "Lead Notifier <leads@publisher.example>".parse().unwrap();
    let to = to.iter().map(|a| a.parse().unwrap()).collect();
    EmailNotifier::new(from, to, smtp, None).unwrap()
}

/// Messages MailDev holds for `recipient`, waiting until `count` arrived.
async fn maildev_messages(recipient: &str, count: usize) -> Vec<Value> {
    let http = reqwest::Client::new();
    for _ in 0..100 {
        let all: Vec<Value> = http
            .get(format!("{}/email", maildev_api()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mine: Vec<Value> = all
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["address"] == recipient)
            })
            .collect();
        if mine.len() >= count {
            return mine;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("MailDev never received {count} message(s) for {recipient}");
}

#[tokio::test]
async fn maildev_receives_a_lead_with_headers_both_parts_and_every_recipient() {
    let first = unique_recipient("emaila");
    let second = unique_recipient("emailb");
    let mut lead = lead(
        "unicode-1",
        json!({"FirstName": "Zoë", "LastName": "Łukasiewicz-王", "Email": "zoe@acme.example",
               "Company": "<script>alert(1)</script> & Söhne", "Country": "PL"}),
        "Contoso CRM Suite",
    );
    lead.description = Some("<b>bold?</b>\nsecond line".into());
    let notifier = notifier(
        &settings(maildev_smtp_port()),
        &[first.clone(), second.clone()],
    );

    notifier.send(Alert::Lead(&lead)).await.unwrap();

    let messages = maildev_messages(&first, 1).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    let to: Vec<&str> = m["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["address"].as_str().unwrap())
        .collect();
    assert!(
        to.contains(&first.as_str()) && to.contains(&second.as_str()),
        "{to:?}"
    );
    assert_eq!(
        m["subject"],
        "New lead: Contoso CRM Suite — Zoë Łukasiewicz-王, <script>alert(1)</script> & Söhne (Contact me)"
    );
    let headers = &m["headers"];
    assert_eq!(
        headers["message-id"],
        message_id(Alert::Lead(&lead), &DestinationId::EMAIL)
    );
    assert_eq!(headers["auto-submitted"], "auto-generated");
    assert!(headers["date"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(headers["content-type"]
        .as_str()
        .unwrap()
        .starts_with("multipart/alternative"));

    let text = m["text"].as_str().unwrap();
    assert!(text.contains("Zoë Łukasiewicz-王"), "{text}");
    assert!(text.contains("Email:       zoe@acme.example"), "{text}");
    assert!(text
        .contains("mailto:zoe@acme.example?subject=Your%20interest%20in%20Contoso%20CRM%20Suite"));
    assert!(text.contains("11:2F21:2F2026 / unicode-1"));

    let html = m["html"].as_str().unwrap();
    assert!(
        !html.contains("<script>alert"),
        "company name unescaped in HTML"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Söhne"));
    assert!(html.contains("&lt;b&gt;bold?&lt;/b&gt;<br>second line"));
    assert!(html.contains("Zoë Łukasiewicz-王"));
}

#[tokio::test]
async fn maildev_receives_a_digest_with_every_lead() {
    let to = unique_recipient("digest");
    let leads = [
        jane(),
        lead(
            "k2",
            json!({"FirstName": "Ken", "Email": "ken@fabrikam.example"}),
            "Fabrikam Analytics",
        ),
        lead(
            "k3",
            json!({"FirstName": "Kim", "Email": "kim@contoso.example"}),
            "Contoso CRM Suite",
        ),
    ];
    let notifier = notifier(&settings(maildev_smtp_port()), std::slice::from_ref(&to));
    assert_eq!(notifier.max_digest_leads(), 500);

    notifier
        .send(Alert::Digest {
            leads: &leads.iter().collect::<Vec<_>>(),
            total: 3,
        })
        .await
        .unwrap();

    let m = &maildev_messages(&to, 1).await[0];
    assert_eq!(
        m["subject"],
        "3 new leads: Contoso CRM Suite (2), Fabrikam Analytics (1)"
    );
    let text = m["text"].as_str().unwrap();
    let html = m["html"].as_str().unwrap();
    for address in [
        "jane.doe@acme.example",
        "ken@fabrikam.example",
        "kim@contoso.example",
    ] {
        assert!(text.contains(address), "{address} missing from text");
        assert!(html.contains(address), "{address} missing from HTML");
    }
    assert!(text.contains("By action:\n     3  Contact me"), "{text}");
}

/// SMTP doubles a dot that starts a line, into a copy of the whole message
/// sized for none: so no line of ours starts with one (a digest would be
/// copied twice), and a real server still reads every dot as written.
#[tokio::test]
async fn dots_that_start_lines_arrive_as_written_and_none_is_sent_bare() {
    let to = unique_recipient("dots");
    let mut dotty = jane();
    dotty.description = Some(".NET shop\n.\n..two dots\nends with a dot.".into());
    let mut ken = lead(
        "k2",
        json!({"FirstName": "Ken", "Email": "ken@fabrikam.example"}),
        &format!("{}.NET", "F".repeat(60)),
    );
    ken.description = Some(format!("{}.{}", "x".repeat(73), ".".repeat(300)));
    let leads = [&dotty, &ken];
    let digest = Alert::Digest {
        leads: &leads,
        total: 2,
    };
    let from = "leads@publisher.example".parse().unwrap();
    let raw = render_message(digest, &from, &[to.parse().unwrap()])
        .unwrap()
        .formatted();
    let raw = String::from_utf8(raw).unwrap();
    assert!(!raw.contains("\r\n."), "{raw}");
    assert!(raw.contains("=2E"), "no dot had to be encoded: {raw}");

    let notifier = notifier(&settings(maildev_smtp_port()), std::slice::from_ref(&to));
    notifier.send(digest).await.unwrap();
    let m = &maildev_messages(&to, 1).await[0];
    let text = m["text"].as_str().unwrap();
    let html = m["html"].as_str().unwrap();
    for part in [text, html] {
        for written in [
            ".NET shop",
            "..two dots",
            "ends with a dot.",
            &".".repeat(300),
        ] {
            assert!(part.contains(written), "{written:?} missing: {part}");
        }
    }
}

#[tokio::test]
async fn check_reaches_the_server_without_sending() {
    let server = ScriptedSmtp::start(Script::default()).await;
    let notifier = notifier(&settings(server.port), &["a@sales.example".into()]);
    notifier.check().await.unwrap();
    assert!(!server.commands().iter().any(|c| c.starts_with("MAIL")));
}

async fn send_scripted(script: Script, credentials: bool) -> NotifyError {
    let server = ScriptedSmtp::start(script).await;
    let mut settings = settings(server.port);
    if credentials {
        settings.auth = SmtpAuth::Password {
            username: "user".into(),
            password: "hunter2-secret".to_string().into(),
        };
    }
    let err = notifier(&settings, &["a@sales.example".into()])
        .send(Alert::Lead(&jane()))
        .await
        .unwrap_err();
    assert!(
        !err.reason().contains("hunter2"),
        "password in error: {err}"
    );
    assert!(!err.reason().contains("jane"), "lead data in error: {err}");
    err
}

#[tokio::test]
async fn temporary_refusals_are_retryable() {
    let err = send_scripted(
        Script {
            rcpt: "451 4.3.0 try again later".into(),
            ..Script::default()
        },
        false,
    )
    .await;
    assert!(err.is_retryable(), "{err}");
    assert!(err.reason().contains("451"), "{err}");

    let err = refused_after_data("452 4.3.1 out of storage").await;
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn permanent_refusals_explain_the_fix() {
    let err = send_scripted(
        Script {
            rcpt: "550 5.1.1 recipient unknown".into(),
            ..Script::default()
        },
        false,
    )
    .await;
    assert!(!err.is_retryable(), "{err}");
    assert!(err.reason().contains("EMAIL_TO"), "{err}");

    let err = send_scripted(
        Script {
            mail: "550 5.7.60 SendAsDenied; sender not allowed".into(),
            ..Script::default()
        },
        false,
    )
    .await;
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.reason().contains("EMAIL_FROM must be allowed to send"),
        "{err}"
    );

    let err = send_scripted(
        Script {
            auth: Some("535 5.7.8 Authentication credentials invalid".into()),
            ..Script::default()
        },
        true,
    )
    .await;
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.reason().contains("SMTP_USERNAME and SMTP_PASSWORD"),
        "{err}"
    );
}

/// A reason that names the login step and its settings, and nothing about
/// the sender or the recipients (which the login never got to).
fn assert_login_problem(err: &NotifyError) {
    let reason = err.reason();
    assert!(!err.is_retryable(), "{err}");
    assert!(reason.starts_with("SMTP AUTH: "), "{err}");
    assert!(reason.contains("SMTP_USERNAME and SMTP_PASSWORD"), "{err}");
    assert!(
        !reason.contains("EMAIL_FROM") && !reason.contains("EMAIL_TO"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_login_is_reported_as_the_auth_step_with_the_login_fix() {
    let refused = Script {
        auth: Some("535 5.7.8 Authentication credentials invalid".into()),
        ..Script::default()
    };
    let err = send_scripted(refused.clone(), true).await;
    assert_login_problem(&err);
    assert!(err.reason().contains("535"), "{err}");

    // A relay with a 512-byte command limit refuses the AUTH line itself.
    let relay = Script {
        auth: Some("235 2.7.0 Authentication successful".into()),
        max_line: Some(512),
        ..Script::default()
    };
    let server = ScriptedSmtp::start(relay).await;
    let mut long = settings(server.port);
    long.auth = SmtpAuth::Password {
        username: "user".into(),
        password: "p".repeat(600).into(),
    };
    let notifier = notifier(&long, &["a@sales.example".into()]);
    for err in [
        notifier.send(Alert::Lead(&jane())).await.unwrap_err(),
        notifier.check().await.unwrap_err(),
    ] {
        assert_login_problem(&err);
        assert!(
            err.reason().contains("(500): 5.5.2 Command line too long"),
            "{err}"
        );
        assert!(!err.reason().contains("ppppp"), "password in {err}");
    }
    assert!(
        !server.commands().iter().any(|c| c.starts_with("MAIL")),
        "nothing sent after the refused login: {:?}",
        server.commands()
    );

    // The same server's 535 on check.
    let server = ScriptedSmtp::start(refused).await;
    let mut password = settings(server.port);
    password.auth = SmtpAuth::Password {
        username: "user".into(),
        password: "hunter2-secret".to_string().into(),
    };
    let err = notifier_for(&password).check().await.unwrap_err();
    assert_login_problem(&err);
}

#[tokio::test]
async fn each_smtp_step_is_named_in_its_refusal() {
    let cases = [
        (
            Script {
                mail: "550 5.7.60 SendAsDenied; sender not allowed".into(),
                ..Script::default()
            },
            "SMTP MAIL FROM: ",
            "EMAIL_FROM",
        ),
        (
            Script {
                rcpt: "550 5.1.1 recipient unknown".into(),
                ..Script::default()
            },
            "SMTP RCPT TO: ",
            "EMAIL_TO",
        ),
        (
            Script {
                rcpt: "550 5.7.1 Relaying denied".into(),
                ..Script::default()
            },
            "SMTP RCPT TO: ",
            "SMTP_USERNAME and SMTP_PASSWORD if it relays only for a login",
        ),
        (
            Script {
                mail: "530 5.7.57 Client not authenticated to send mail".into(),
                ..Script::default()
            },
            "SMTP MAIL FROM: ",
            "requires a login: set SMTP_USERNAME",
        ),
        (
            Script {
                data: "554 5.6.0 Invalid message content".into(),
                ..Script::default()
            },
            "SMTP DATA: ",
            "refused the message",
        ),
    ];
    for (script, step, fix) in cases {
        let err = send_scripted(script, false).await;
        assert!(!err.is_retryable(), "{err}");
        assert!(err.reason().starts_with(step), "{step}: {err}");
        assert!(err.reason().contains(fix), "{fix}: {err}");
    }
    let err = send_scripted(
        Script {
            mail: "451 4.3.0 try again later".into(),
            ..Script::default()
        },
        false,
    )
    .await;
    assert!(err.is_retryable(), "{err}");
    assert!(err.reason().starts_with("SMTP MAIL FROM: "), "{err}");
}

/// The error for a message the server refuses after DATA with `reply`.
async fn refused_after_data(reply: &str) -> NotifyError {
    send_scripted(
        Script {
            after_data: Some(reply.into()),
            ..Script::default()
        },
        false,
    )
    .await
}

/// A size refusal lets the pipeline split a digest; a full mailbox (also
/// 552) is an ordinary permanent refusal that splitting cannot help.
#[tokio::test]
async fn size_refusals_are_told_apart_from_a_full_mailbox() {
    for size in [
        "552 5.3.4 Message size exceeds fixed maximum message size",
        // Exchange's per-sender limit, worded like a sender refusal.
        "550 5.2.3 RESOLVER.RST.SendSizeLimit.Sender; message too large for this sender",
    ] {
        let err = refused_after_data(size).await;
        assert!(matches!(err, NotifyError::TooLarge { .. }), "{err:?}");
    }

    let err = refused_after_data("552 5.2.2 Mailbox full").await;
    assert!(matches!(err, NotifyError::Permanent { .. }), "{err:?}");
    assert!(err.reason().contains("full mailbox"), "{err}");
}

#[tokio::test]
async fn a_connection_lost_after_data_is_retryable_and_flagged_as_possibly_delivered() {
    let err = send_scripted(
        Script {
            after_data: None,
            ..Script::default()
        },
        false,
    )
    .await;
    assert!(err.is_retryable(), "{err}");
    assert!(err.reason().contains("twice"), "{err}");
}

#[tokio::test]
async fn unreachable_servers_are_retryable_and_name_the_setting() {
    let refused = notifier(&settings(free_port()), &["a@sales.example".into()]);
    let err = refused.send(Alert::Lead(&jane())).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.reason().contains("SMTP_PORT"), "{err}");

    let mut unknown = settings(25);
    unknown.host = "no-such-host.invalid".into();
    let err = notifier(&unknown, &["a@sales.example".into()])
        .check()
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.reason().contains("SMTP_HOST"), "{err}");
}

#[tokio::test]
async fn tls_mismatches_are_retryable_and_name_smtp_security() {
    for security in [SmtpSecurity::Tls, SmtpSecurity::StartTls] {
        let server = ScriptedSmtp::start(Script::default()).await;
        let mut settings = settings(server.port);
        settings.security = security;
        let err = notifier(&settings, &["a@sales.example".into()])
            .send(Alert::Lead(&jane()))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{security:?}: {err}");
        assert!(
            err.reason().contains("SMTP_SECURITY"),
            "{security:?}: {err}"
        );
        assert!(!server.commands().iter().any(|c| c.starts_with("MAIL")));
    }
}

#[test]
fn headers_cannot_be_injected_and_message_ids_are_stable() {
    let mut lead = jane();
    lead.customer.company = Some("Acme\r\nBcc: victim@example.com".into());
    let from = "leads@publisher.example".parse().unwrap();
    let to = ["sales@publisher.example".parse().unwrap()];
    let message = render_message(Alert::Lead(&lead), &from, &to).unwrap();
    let raw = String::from_utf8(message.formatted()).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
    assert!(head.contains("Auto-Submitted: auto-generated"));

    let again = render_message(Alert::Lead(&lead), &from, &to).unwrap();
    let id = |m: &lettre::Message| m.headers().get_raw("Message-ID").map(str::to_owned);
    assert_eq!(id(&message), id(&again));
    assert_ne!(
        message_id(Alert::Lead(&lead), &DestinationId::EMAIL),
        message_id(Alert::Lead(&lead), &DestinationId::OUTBOX)
    );
}

#[test]
fn customer_details_that_could_not_be_read_are_shown_raw() {
    let lead = Lead::from_row(&LeadRow {
        partition_key: "p".into(),
        row_key: "r".into(),
        customer_info: Some("{\"FirstName\": \"Ja".into()),
        lead_source: Some("AzureMarketplace-INS|contoso.crm".into()),
        ..LeadRow::default()
    });
    assert!(lead.customer_warning.is_some());
    let text = render_text(Alert::Lead(&lead));
    assert!(
        text.contains("WARNING: The customer details could not be read"),
        "{text}"
    );
    assert!(text.contains("{\"FirstName\": \"Ja"), "{text}");
    let html = render_html(Alert::Lead(&lead));
    assert!(html.contains("could not be read"));
    assert!(html.contains("{&quot;FirstName&quot;: &quot;Ja"), "{html}");
}

/// The headers a recipient's client shows, with the send time and the random
/// MIME boundary replaced so the snapshot is stable.
fn stable_headers(message: &lettre::Message) -> String {
    let raw = String::from_utf8(message.formatted()).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap().replace("\r\n", "\n");
    head.lines()
        .map(|l| match l {
            l if l.starts_with("Date: ") => "Date: [send time]",
            l if l.contains("boundary=") => " boundary=\"[boundary]\"",
            l => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn snapshot_of_a_lead_email() {
    let lead = returning_jane();
    let from = "Lead Notifier <leads@publisher.example>".parse().unwrap();
    let to = ["Sales <sales@publisher.example>".parse().unwrap()];
    let message = render_message(Alert::Lead(&lead), &from, &to).unwrap();
    insta::assert_snapshot!("lead_email_headers", stable_headers(&message));
    insta::assert_snapshot!("lead_email_text", render_text(Alert::Lead(&lead)));
    // One row per line so a reviewer can read the markup.
    let html = render_html(Alert::Lead(&lead)).replace("<tr>", "\n<tr>");
    insta::assert_snapshot!("lead_email_html", html);
}

/// Every class a body uses is defined in its head. A digest leaves the look
/// of its repeated cells to those classes (inline, it was four times the
/// size); a single alert repeats each inline too, for clients that drop a
/// head's styles.
#[test]
fn every_class_is_defined_and_only_single_alerts_repeat_it_inline() {
    let lead = returning_jane();
    let leads = [&lead, &lead];
    let single = render_html(Alert::Lead(&lead));
    let digest = render_html(Alert::Digest {
        leads: &leads,
        total: 2,
    });
    for (html, inline) in [(&single, true), (&digest, false)] {
        let (head, body) = html.split_once("</head>").unwrap();
        let mut used = 0;
        for tail in body.split(" class=\"").skip(1) {
            let (class, rest) = tail.split_once('"').unwrap();
            assert!(head.contains(&format!(".{class}{{")), "{class} undefined");
            assert_eq!(rest.starts_with(" style=\""), inline, "{class}");
            used += 1;
        }
        assert!(used >= 15, "{used} classes used");
    }
}
