//! Wording and sanitising shared by every channel, so an email, a Teams card
//! and an outbox file describe a lead the same way.
//!
//! Everything here returns plain text; each channel escapes it for its own
//! format (maud for HTML, `TextRun` for cards, lettre for headers).

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use time::OffsetDateTime;
use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

use crate::lead::PastLead;
use crate::lead::{parse_created_time, Action, Lead, Source};

/// Characters that are invisible or reorder text. Lead text comes from
/// strangers: a right-to-left override can make `moc.live@` read as
/// `@evil.com`, zero-width characters, tag characters and fillers hide
/// differences between look-alikes or smuggle text nobody sees.
///
/// Every format character (General_Category=Cf: bidi controls, zero-width
/// spaces and joiners, the byte-order mark, tag characters…), the combining
/// grapheme joiner, the Hangul fillers (which render as blank letters) and
/// the variation selectors. [`is_shown`] keeps the two that emoji need.
fn is_invisible(c: char) -> bool {
    // No ASCII character is one of these: most lead text skips the lookups.
    !c.is_ascii() && is_invisible_non_ascii(c)
}

fn is_invisible_non_ascii(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
        || matches!(
            c,
            '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
        )
        || is_variation_selector(c)
}

/// Variation selectors 1–16 and the supplement (17–256).
fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// An emoji that a joiner or a presentation selector may follow. ASCII
/// digits, `#` and `*` are emoji only as keycaps (`1` U+FE0F U+20E3).
fn is_emoji(c: char, next: Option<char>) -> bool {
    c.is_emoji_char() && (!c.is_ascii() || next == Some('\u{20E3}'))
}

/// Whether `c` stays, given the character kept just before it (`None` at
/// the start and after a space) and the one after it. Invisible characters
/// go, except the two that emoji sequences are made of: U+FE0E/U+FE0F right
/// after an emoji (text or emoji presentation) and a zero-width joiner
/// between two emoji (👩‍💻, 🏳️‍🌈).
fn is_shown(before: Option<char>, c: char, next: Option<char>) -> bool {
    if !is_invisible(c) {
        return true;
    }
    if matches!(c, '\u{FE0E}' | '\u{FE0F}') {
        return before.is_some_and(|b| is_emoji(b, next));
    }
    if c == '\u{200D}' {
        let after_emoji = before.is_some_and(|b| b == '\u{FE0F}' || is_emoji(b, None));
        return after_emoji && next.is_some_and(|n| is_emoji(n, None));
    }
    false
}

/// Lead text on one line: control and invisible characters removed, runs of
/// whitespace (line breaks included) collapsed to one space.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    let mut before: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() || c.is_control() {
            // Tabs and line breaks become spaces; other controls vanish.
            pending_space |= c.is_whitespace();
            before = None;
            continue;
        }
        if !is_shown(before, c, chars.peek().copied()) {
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
        before = Some(c);
    }
    out
}

/// Lead text that may span lines (a description): like [`one_line`] within
/// each line, at most one blank line in a row.
pub fn multi_line(s: &str) -> String {
    let normalised = s
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{0085}'], "\n");
    let mut lines: Vec<String> = Vec::new();
    for line in normalised.split('\n') {
        let line = one_line(line);
        if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// Shortens to at most `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A header value: one line, capped. lettre encodes non-ASCII; stripping
/// CR/LF here is what keeps lead text from adding headers.
pub fn header_value(s: &str, max: usize) -> String {
    truncate(&one_line(s), max)
}

/// Human wording of a lead source, sanitised (unknown sources are lead text).
pub fn source_label(source: &Source) -> String {
    one_line(source.wording())
}

/// Human wording of what the customer did, as the marketplace button reads.
pub fn action_label(action: &Action) -> String {
    one_line(action.wording())
}

fn non_empty<S: AsRef<str>>(value: &Option<S>) -> Option<String> {
    value
        .as_ref()
        .map(|s| one_line(s.as_ref()))
        .filter(|s| !s.is_empty())
}

/// The offer's display name, else its id.
pub fn offer(lead: &Lead) -> String {
    let label = one_line(&lead.offer_label());
    if label.is_empty() {
        "unknown offer".into()
    } else {
        label
    }
}

/// The person's name.
pub fn person(lead: &Lead) -> Option<String> {
    lead.display_name()
        .map(|n| one_line(&n))
        .filter(|n| !n.is_empty())
}

/// "Jane Doe, Acme GmbH", whichever parts exist, else the email address.
pub fn who(lead: &Lead) -> Option<String> {
    let parts: Vec<String> = [person(lead), non_empty(&lead.customer.company)]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        non_empty(&lead.customer.email)
    } else {
        Some(parts.join(", "))
    }
}

/// e.g. `"Contact me" request on AppSource`.
pub fn activity(lead: &Lead) -> String {
    one_line(&lead.activity())
}

const SUBJECT_MAX: usize = 200;

/// `New lead: Contoso CRM Suite — Jane Doe, Acme GmbH (Contact me)`.
pub fn lead_subject(lead: &Lead) -> String {
    let offer = truncate(&offer(lead), 80);
    let action = truncate(&action_label(&lead.action), 40);
    let subject = match who(lead) {
        Some(who) => format!("New lead: {offer} — {} ({action})", truncate(&who, 80)),
        None => format!("New lead: {offer} ({action})"),
    };
    header_value(&subject, SUBJECT_MAX)
}

/// `15 new leads: Contoso CRM Suite (9), Fabrikam Analytics (6)`. When the
/// run's leads are split over several messages it says which part this is.
pub fn digest_subject(leads: &[&Lead], total: usize) -> String {
    let head = digest_title(leads.len(), total);
    let offers = by_offer(leads);
    let mut subject = head.clone();
    for (i, (offer, n)) in offers.iter().enumerate() {
        let piece = format!(
            "{}{} ({n})",
            if i == 0 { ": " } else { ", " },
            truncate(offer, 60)
        );
        if subject.chars().count() + piece.chars().count() > SUBJECT_MAX - 20 {
            subject.push_str(&format!(", {} more offers", offers.len() - i));
            break;
        }
        subject.push_str(&piece);
    }
    header_value(&subject, SUBJECT_MAX)
}

/// `120 new leads`, or `120 new leads (33 in this message)` for a message
/// listing `listed` of the run's `total`.
pub fn digest_title(listed: usize, total: usize) -> String {
    if listed < total {
        format!("{total} new leads ({listed} in this message)")
    } else {
        format!("{listed} new leads")
    }
}

/// The last line of a chat digest message that lists only part of the
/// leads it counts.
pub fn digest_more(more: usize) -> String {
    format!("…and {more} more in the messages that follow.")
}

/// Counts per offer, most first (ties by name).
pub fn by_offer(leads: &[&Lead]) -> Vec<(String, usize)> {
    counts(leads.iter().map(|l| offer(l)))
}

/// Counts per action wording, most first.
pub fn by_action(leads: &[&Lead]) -> Vec<(String, usize)> {
    counts(leads.iter().map(|l| action_label(&l.action)))
}

fn counts(items: impl Iterator<Item = String>) -> Vec<(String, usize)> {
    let mut map: BTreeMap<String, usize> = BTreeMap::new();
    for item in items {
        *map.entry(item).or_default() += 1;
    }
    let mut list: Vec<(String, usize)> = map.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list
}

/// How a field is shown: addresses and phone numbers become links in HTML
/// email, long text keeps its line breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Email,
    Phone,
    Long,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
    pub kind: FieldKind,
}

/// Length caps for [`fields`], in characters.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub field: usize,
    pub long: usize,
}

/// Every field of a lead that has a value, sanitised and capped, in reading order.
pub fn fields(lead: &Lead, limits: Limits) -> Vec<Field> {
    let c = &lead.customer;
    let mut out = Vec::new();
    let mut push = |label, value: Option<String>, kind| {
        if let Some(value) = value {
            let max = if kind == FieldKind::Long {
                limits.long
            } else {
                limits.field
            };
            out.push(Field {
                label,
                value: truncate(&value, max),
                kind,
            });
        }
    };
    push("Name", person(lead), FieldKind::Text);
    push("Title", non_empty(&c.title), FieldKind::Text);
    push("Company", non_empty(&c.company), FieldKind::Text);
    push("Email", non_empty(&c.email), FieldKind::Email);
    push("Phone", non_empty(&c.phone), FieldKind::Phone);
    push("Country", non_empty(&c.country), FieldKind::Text);
    push("Offer", Some(offer(lead)), FieldKind::Text);
    let offer_id =
        non_empty(&lead.offer_id).filter(|id| Some(id) != non_empty(&lead.offer_name).as_ref());
    push("Offer ID", offer_id, FieldKind::Text);
    push("Action", Some(action_label(&lead.action)), FieldKind::Text);
    push("Source", Some(source_label(&lead.source)), FieldKind::Text);
    push(
        "Lead source",
        non_empty(&lead.lead_source_raw),
        FieldKind::Text,
    );
    let description = lead
        .description
        .as_deref()
        .map(multi_line)
        .filter(|d| !d.is_empty());
    push("Description", description, FieldKind::Long);
    push("Created", created(lead), FieldKind::Text);
    push("Received", lead.timestamp.map(format_time), FieldKind::Text);
    push("Lead keys", Some(keys(lead)), FieldKind::Text);
    out
}

/// `CreatedTime` as a readable UTC time when it is a date, else as written.
pub fn created(lead: &Lead) -> Option<String> {
    let text = non_empty(&lead.created_time)?;
    Some(parse_created_time(&text).map_or(text, format_time))
}

/// Earlier leads listed in one alert; the rest are counted.
pub const HISTORY_SHOWN: usize = 5;

/// What an alert says about the customer's earlier leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryText {
    /// "Returning customer: 2 earlier leads" or "New customer: …".
    pub status: String,
    /// One line per earlier lead, newest first.
    pub earlier: Vec<String>,
    /// "and 3 more", when not all are listed.
    pub more: Option<String>,
}

/// The customer's history in words, listing at most `shown` earlier leads;
/// `None` when it is not known (no email address).
pub fn history(lead: &Lead, shown: usize) -> Option<HistoryText> {
    let history = lead.history.as_ref()?;
    if !history.is_returning() {
        return Some(HistoryText {
            status: "New customer: no earlier lead from this email address".to_owned(),
            earlier: Vec::new(),
            more: None,
        });
    }
    let total = history.total();
    let earlier: Vec<String> = history
        .earlier
        .iter()
        .take(shown)
        .map(|past| match history.taken_by(&past.key) {
            Some(by) => format!(
                "{} — taken by {}",
                past_lead(past),
                truncate(&one_line(by), 100)
            ),
            None => past_lead(past),
        })
        .collect();
    let hidden = total - earlier.len();
    Some(HistoryText {
        status: format!(
            "Returning customer: {total} earlier lead{}",
            if total == 1 { "" } else { "s" }
        ),
        earlier,
        more: (hidden > 0).then(|| format!("and {hidden} more")),
    })
}

/// `Get it now — Contoso CRM Suite — 2026-11-18 10:00:00 UTC`.
fn past_lead(past: &PastLead) -> String {
    let offer = [&past.offer_name, &past.offer_id]
        .into_iter()
        .find_map(non_empty)
        .unwrap_or_else(|| "unknown offer".to_owned());
    format!(
        "{} — {} — {}",
        action_label(&past.action),
        truncate(&offer, 80),
        format_time(past.at)
    )
}

/// The warning when `CustomerInfo` could not be read, with the raw text
/// (sanitised, capped), so sales can still read whatever Microsoft sent.
pub fn customer_problem(lead: &Lead, max: usize) -> Option<(String, Option<String>)> {
    let warning = lead.customer_warning.as_deref()?;
    let raw = lead
        .customer_raw
        .as_deref()
        .map(multi_line)
        .filter(|r| !r.is_empty())
        .map(|r| truncate(&r, max));
    Some((
        format!(
            "The customer details could not be read ({}).",
            one_line(warning)
        ),
        raw,
    ))
}

/// Fields a chat digest puts on the lead's contact line.
const DIGEST_CONTACT: [&str; 4] = ["Email", "Phone", "Country", "Title"];
/// Caps of a chat digest's fields: an email address (at most 254
/// characters) stays whole; a description is a glimpse.
const DIGEST_LIMITS: Limits = Limits {
    field: 254,
    long: 200,
};
/// Earlier leads listed per lead in a chat digest; the email lists more.
const DIGEST_HISTORY_SHOWN: usize = 2;

/// One lead in a chat digest (Teams, Slack), in plain text: who, how to
/// reach them, which offer, what they did, in a few lines; the email has
/// every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestEntry {
    /// The offer's name.
    pub offer: String,
    /// `Jane Doe, Acme GmbH — "Contact me" request on AppSource`.
    pub about: String,
    /// `Email: … · Phone: … · Country: … · Title: …`, the customer's
    /// history, the description; what could be read of unreadable details.
    pub lines: Vec<String>,
    /// When the lead reached the table.
    pub received: Option<String>,
    /// [`keys`].
    pub keys: String,
}

/// `lead` for a chat digest. Every part is capped, so one entry is at most
/// a few kilobytes.
pub fn digest_entry(lead: &Lead) -> DigestEntry {
    let limits = DIGEST_LIMITS;
    let fields = fields(lead, limits);
    let value = |label: &str| {
        fields
            .iter()
            .find(|f| f.label == label)
            .map(|f| f.value.clone())
    };
    let activity = truncate(&activity(lead), limits.field);
    let about = match who(lead) {
        Some(who) => format!("{} — {activity}", truncate(&who, limits.field)),
        None => activity,
    };
    let mut lines = Vec::new();
    if let Some((warning, raw)) = customer_problem(lead, limits.long) {
        lines.push(warning);
        lines.extend(raw.map(|raw| format!("Raw customer details: {}", one_line(&raw))));
    }
    let contact: Vec<String> = DIGEST_CONTACT
        .iter()
        .filter_map(|label| Some(format!("{label}: {}", value(label)?)))
        .collect();
    if !contact.is_empty() {
        lines.push(contact.join(" · "));
    }
    if let Some(history) = history(lead, DIGEST_HISTORY_SHOWN) {
        let mut line = history.status;
        for earlier in history.earlier.iter().chain(&history.more) {
            line.push_str("; ");
            line.push_str(&truncate(earlier, limits.field));
        }
        lines.push(line);
    }
    if let Some(description) = value("Description") {
        lines.push(format!("Description: {}", one_line(&description)));
    }
    DigestEntry {
        offer: truncate(&offer(lead), 80),
        about,
        lines,
        received: value("Received"),
        keys: keys(lead),
    }
}

/// The entries `render` makes of the first of `leads` (numbered from 1), at
/// most `most`, whose costs (as `render` gives them) add up to at most
/// `budget`; always at least one, an entry being capped in size.
pub fn digest_fitting<T>(
    leads: &[&Lead],
    most: usize,
    budget: usize,
    render: impl Fn(usize, &Lead) -> (T, usize),
) -> Vec<T> {
    let mut used = 0;
    let mut entries = Vec::new();
    for (i, lead) in leads.iter().enumerate().take(most) {
        let (entry, cost) = render(i + 1, lead);
        if !entries.is_empty() && used + cost > budget {
            break;
        }
        used += cost;
        entries.push(entry);
    }
    entries
}

/// `PartitionKey / RowKey`, as they are in the lead table.
pub fn keys(lead: &Lead) -> String {
    format!(
        "{} / {}",
        one_line(&lead.key.partition_key),
        one_line(&lead.key.row_key)
    )
}

/// `2026-11-21 10:45:00 UTC`.
pub fn format_time(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default()
}

/// A span in words for people: `7 days`, `1 day 4 hours`, `90 minutes`
/// (settings spell it `7d`; humantime's own output reads `7days`). Whole
/// minutes; under a minute, seconds.
pub fn duration_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        return plural(secs, "second");
    }
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let parts: Vec<String> = [(days, "day"), (hours, "hour"), (minutes, "minute")]
        .into_iter()
        .filter(|&(n, _)| n > 0)
        .map(|(n, unit)| plural(n, unit))
        .collect();
    parts.join(" ")
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Whether text is plausibly one email address: enough to put it in a
/// `mailto:` link without surprising anyone, not a full RFC 5322 parser.
pub fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let ok_char =
        |c: char| !c.is_control() && !c.is_whitespace() && !"<>()[]\\,;:\"@%?#&=/".contains(c);
    !local.is_empty()
        && local.len() <= 64
        && domain.len() <= 253
        && local.chars().all(ok_char)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.chars().all(|c| ok_char(c) && c != '+')
}

/// RFC 3986 unreserved characters stay; everything else is encoded, which
/// is what RFC 6068 asks of `mailto:` parts (a space is `%20`, never `+`).
const MAILTO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `mailto:` and the customer's address, percent-encoded, when it looks like
/// an address: the only lead data that may go into a URL (Teams).
pub fn mailto(lead: &Lead) -> Option<String> {
    let email = non_empty(&lead.customer.email)?;
    if !looks_like_email(&email) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    Some(format!(
        "mailto:{}@{}",
        utf8_percent_encode(local, MAILTO),
        utf8_percent_encode(domain, MAILTO)
    ))
}

/// [`mailto`] with a prefilled subject naming the offer (email).
pub fn reply_link(lead: &Lead) -> Option<String> {
    let subject = format!("Your interest in {}", truncate(&offer(lead), 100));
    Some(format!(
        "{}?subject={}",
        mailto(lead)?,
        utf8_percent_encode(&subject, MAILTO)
    ))
}

/// The error and its causes on one line (reqwest hides "connection refused"
/// in a source).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// [`error_chain`] as one line of at most 300 characters, the form reasons
/// in the ledger and the run summary take.
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    truncate(&one_line(&error_chain(error)), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        use std::time::Duration;
        assert_eq!(duration_words(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(
            duration_words(Duration::from_secs(86_400 + 4 * 3600)),
            "1 day 4 hours"
        );
        assert_eq!(
            duration_words(Duration::from_secs(90 * 60)),
            "1 hour 30 minutes"
        );
        assert_eq!(duration_words(Duration::from_secs(1)), "1 second");
        assert_eq!(duration_words(Duration::from_secs(0)), "0 seconds");
    }

    #[test]
    fn one_line_strips_controls_bidi_and_zero_width() {
        assert_eq!(
            one_line(" a\r\nb\u{202E}c\u{200B}d\u{0007}e\t f "),
            "a bcde f"
        );
    }

    /// One of each kind of hidden character, with the name a failure shows.
    pub(crate) const HIDDEN: [(char, &str); 16] = [
        ('\u{00AD}', "soft hyphen"),
        ('\u{034F}', "combining grapheme joiner"),
        ('\u{0600}', "Arabic number sign (Cf)"),
        ('\u{115F}', "Hangul choseong filler"),
        ('\u{1160}', "Hangul jungseong filler"),
        ('\u{200C}', "zero-width non-joiner"),
        ('\u{200D}', "zero-width joiner outside emoji"),
        ('\u{2066}', "left-to-right isolate"),
        ('\u{3164}', "Hangul filler"),
        ('\u{FE00}', "variation selector 1"),
        ('\u{FE0F}', "variation selector 16 outside emoji"),
        ('\u{FFA0}', "halfwidth Hangul filler"),
        ('\u{E0001}', "language tag"),
        ('\u{E0041}', "tag latin capital A"),
        ('\u{E007F}', "cancel tag"),
        ('\u{E0100}', "variation selector 17"),
    ];

    #[test]
    fn every_hidden_character_class_is_dropped_everywhere_in_text() {
        for (c, name) in HIDDEN {
            let text = format!("{c}a{c}b{c} c{c}\n{c}d{c}");
            assert_eq!(one_line(&text), "ab c d", "{name} U+{:04X}", c as u32);
            assert_eq!(multi_line(&text), "ab c\nd", "{name} U+{:04X}", c as u32);
        }
        // Every format character the Unicode data knows, not just those above.
        let format: Vec<char> = (0..=0x10FFFF_u32)
            .filter_map(char::from_u32)
            .filter(|c| c.general_category() == GeneralCategory::Format)
            .collect();
        assert!(format.len() > 150, "{} format characters", format.len());
        for c in format {
            assert_eq!(one_line(&format!("x{c}y")), "xy", "U+{:04X}", c as u32);
        }
        // Tag characters spelling hidden text after a word (not an emoji).
        let smuggled: String = "ignore previous"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        assert_eq!(one_line(&format!("Acme{smuggled}")), "Acme");
    }

    #[test]
    fn emoji_keep_their_joiners_and_presentation_selectors() {
        for emoji in [
            "👩\u{200D}💻",
            "👨\u{200D}👩\u{200D}👧",
            "🏳\u{FE0F}\u{200D}🌈",
            "👩🏽\u{200D}🚀",
            "❤\u{FE0F}",
            "☺\u{FE0E}",
            "1\u{FE0F}\u{20E3}",
        ] {
            let text = format!("Team {emoji}!");
            assert_eq!(
                one_line(&text),
                text,
                "{:?}",
                emoji.escape_unicode().to_string()
            );
        }
        // Not between two emoji, or not after one: dropped.
        assert_eq!(one_line("a\u{200D}b 👩\u{200D} \u{200D}💻"), "ab 👩 💻");
        assert_eq!(one_line("paypa1\u{FE0F}.com A\u{FE0F}"), "paypa1.com A");
        assert_eq!(one_line("👩 \u{FE0F}x"), "👩 x");
        // Tag sequences (subdivision flags) lose their tags: they are Cf.
        assert_eq!(
            one_line("🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}"),
            "🏴"
        );
    }

    #[test]
    fn multi_line_keeps_paragraphs() {
        assert_eq!(
            multi_line("one\r\n\r\n\r\ntwo\u{2028}three\n\n"),
            "one\n\ntwo\nthree"
        );
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("äöüß", 3), "äö…");
        assert_eq!(truncate("äöü", 3), "äöü");
    }

    #[test]
    fn header_value_has_no_line_breaks() {
        let v = header_value("a\r\nBcc: evil@example.com", 100);
        assert!(!v.contains('\r') && !v.contains('\n'));
    }

    #[test]
    fn email_check() {
        assert!(looks_like_email("jane.doe+crm@acme.example"));
        assert!(!looks_like_email("jane doe@acme.example"));
        assert!(!looks_like_email("jane@localhost"));
        assert!(!looks_like_email("a@b@c.de"));
        assert!(!looks_like_email("x@y.com?cc=evil@z.com"));
    }

    #[test]
    fn mailto_carries_only_the_encoded_address() {
        let mut lead = crate::notify::sample_lead();
        lead.customer.email = Some(" jane+crm@acme.example ".into());
        assert_eq!(
            mailto(&lead).as_deref(),
            Some("mailto:jane%2Bcrm@acme.example")
        );
        lead.customer.email = Some("x@y.com?cc=evil@z.com".into());
        assert_eq!(mailto(&lead), None);
        assert_eq!(reply_link(&lead), None);
    }

    #[test]
    fn history_in_words_is_newest_first_and_capped() {
        use crate::lead::History;
        let mut lead = crate::notify::sample_lead();
        assert_eq!(history(&lead, 5), None, "not known: nothing said");
        lead.history = Some(History::default());
        assert!(history(&lead, 5)
            .unwrap()
            .status
            .starts_with("New customer"));
        let at = time::macros::datetime!(2026-11-18 10:00 UTC);
        let past = |offer: &str, action: Action| PastLead {
            key: lead.key.clone(),
            action,
            offer_id: Some("contoso.crm".into()),
            offer_name: Some(offer.into()),
            at,
        };
        lead.history = Some(History {
            earlier: vec![
                past("Contoso CRM", Action::Install),
                past("Contoso\nERP", Action::StartTestDrive),
                past("", Action::ContactMe),
            ],
            more: 4,
            taken: Vec::new(),
        });
        let text = history(&lead, 2).unwrap();
        assert_eq!(text.status, "Returning customer: 7 earlier leads");
        assert_eq!(
            text.earlier,
            [
                "Get it now — Contoso CRM — 2026-11-18 10:00:00 UTC",
                "Test drive started — Contoso ERP — 2026-11-18 10:00:00 UTC"
            ]
        );
        assert_eq!(text.more.as_deref(), Some("and 5 more"));
    }

    #[test]
    fn created_time_is_readable_utc_when_it_is_a_date() {
        let mut lead = crate::notify::sample_lead();
        lead.created_time = Some("11/21/2026 10:44:59 AM".into());
        assert_eq!(created(&lead).as_deref(), Some("2026-11-21 10:44:59 UTC"));
        lead.created_time = Some("2026-11-23 9:03:13.558089198 +00:00:00".into());
        assert_eq!(created(&lead).as_deref(), Some("2026-11-23 09:03:13 UTC"));
        lead.created_time = Some("last\ntuesday".into());
        assert_eq!(created(&lead).as_deref(), Some("last tuesday"));
    }

    #[test]
    fn digest_subject_lists_offers_by_count() {
        let mut lead = crate::notify::sample_lead();
        lead.offer_name = Some("Contoso".into());
        let mut other = lead.clone();
        other.offer_name = Some("Fabrikam".into());
        let leads = vec![&other, &lead, &lead];
        assert_eq!(
            digest_subject(&leads, 3),
            "3 new leads: Contoso (2), Fabrikam (1)"
        );
        assert_eq!(
            digest_subject(&leads, 10),
            "10 new leads (3 in this message): Contoso (2), Fabrikam (1)"
        );
    }
}
