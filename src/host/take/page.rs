//! The pages `LeadTake` answers with: small, self-contained (no external
//! resource, one inline style), readable on a phone, every value escaped by
//! maud. A refusal page shows no lead data at all.

use maud::{html, Markup, DOCTYPE};

use crate::lead::Lead;
use crate::take::store::Take;
use crate::text;

/// The name field's limit, in characters after trimming.
pub const NAME_MAX: usize = 100;

/// What the page says about the lead's state.
pub enum State<'a> {
    /// Open: the form. `signed_in` is the App Service Authentication
    /// user, who takes it under that name; `problem` is why the last try
    /// was refused (an empty name).
    Open {
        token: &'a str,
        signed_in: Option<&'a str>,
        problem: Option<&'a str>,
    },
    /// Taken; `now` when this request took it.
    Taken { take: &'a Take, now: bool },
    /// Someone else took it first.
    TakenByOther { take: &'a Take },
}

const STYLE: &str = "\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1b1b;background:#fff}\
main{max-width:34rem;margin:0 auto;padding:1.25rem}\
h1{font-size:1.4rem;margin:0 0 1rem}\
dl{margin:0 0 1.25rem}dt{font-weight:600;color:#3b3b3b}dd{margin:0 0 .6rem}\
.state{padding:.8rem 1rem;border-radius:6px;border:1px solid #8a8886;margin:0 0 1.25rem}\
.taken{background:#dff6dd;border-color:#107c10}.other{background:#fff4ce;border-color:#8a6d00}\
.error{background:#fde7e9;border-color:#a4262c}\
label{display:block;font-weight:600;margin:0 0 .3rem}\
input{box-sizing:border-box;width:100%;font:inherit;padding:.6rem;border:1px solid #605e5c;border-radius:4px;margin:0 0 1rem}\
button{font:inherit;font-weight:600;color:#fff;background:#0f5ca8;border:0;border-radius:4px;padding:.75rem 1.5rem;min-height:44px;cursor:pointer}\
button:focus,input:focus{outline:3px solid #1b1b1b;outline-offset:2px}";

fn document(title: &str, content: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                title { (title) " · lead-notifier" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { main { (content) } }
        }
    }
    .into_string()
}

/// The lead and its state.
pub fn lead_page(lead: &Lead, state: State<'_>) -> String {
    let offer = text::offer(lead);
    let facts = [
        ("Offer", Some(offer.clone())),
        ("Action", Some(text::activity(lead))),
        (
            "Company",
            lead.customer.company.as_deref().map(text::one_line),
        ),
        ("Customer", text::person(lead)),
        (
            "Came in",
            lead.timestamp
                .map(text::format_time)
                .or_else(|| text::created(lead)),
        ),
    ];
    let title = match &state {
        State::Open { .. } => "Take this lead",
        State::Taken { now: true, .. } => "You took this lead",
        State::Taken { .. } | State::TakenByOther { .. } => "This lead is taken",
    };
    let content = html! {
        h1 { (title) }
        dl {
            @for (label, value) in &facts {
                @if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                    dt { (label) } dd { (text::truncate(value, 300)) }
                }
            }
        }
        (state_part(&state))
    };
    document(&format!("{title}: {}", text::truncate(&offer, 80)), content)
}

fn state_part(state: &State<'_>) -> Markup {
    match state {
        State::Open {
            token,
            signed_in,
            problem,
        } => html! {
            p class="state" role="status" { "Open: nobody has taken this lead yet." }
            @if let Some(problem) = problem {
                p class="state error" role="alert" { (problem) }
            }
            form method="post" action=(format!("?t={token}")) {
                @if let Some(user) = signed_in {
                    p { "You are signed in as " strong { (user) } "." }
                } @else {
                    label for="name" { "Your name" }
                    input id="name" name="name" type="text" required
                        maxlength=(NAME_MAX) autocomplete="name";
                }
                button type="submit" { "I'll take it" }
            }
        },
        State::Taken { take, .. } => html! {
            p class="state taken" role="status" {
                "Taken by " strong { (take.by) } " at " (text::format_time(take.at)) "."
            }
        },
        State::TakenByOther { take } => html! {
            p class="state other" role="alert" {
                "Already taken by " strong { (take.by) } " at " (text::format_time(take.at)) "."
            }
        },
    }
}

/// A page that says only what went wrong: no lead data.
pub fn refusal(title: &str, explanation: &str) -> String {
    document(
        title,
        html! {
            h1 { (title) }
            p class="state error" { (explanation) }
        },
    )
}
