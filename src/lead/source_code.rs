//! `LeadSource` codes: `Source-Action|Offer`, e.g. `SPZA-PLT|contoso.crm`.

/// Where the lead came from (`LeadSource` before the `-`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Source {
    AzureMarketplace,
    AzurePortal,
    TestDrive,
    /// `SPZA`.
    AppSource,
    /// Any other text, kept as written.
    Other(String),
    Unknown,
}

/// What the customer did.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Action {
    /// `INS`: "Get it now".
    Install,
    /// `PLT`: partner-led trial, "Contact me".
    ContactMe,
    /// `DNC`: do not contact.
    DoNotContact,
    /// `Create`: purchase in the Azure portal.
    Create,
    /// `StartTestDrive`.
    StartTestDrive,
    Other(String),
    Unknown,
}

impl Source {
    /// Reads a source code. Known codes match in any case because Microsoft's
    /// examples are not consistent; blank text is `Unknown`.
    pub fn parse(code: &str) -> Source {
        let code = code.trim();
        let known = [
            ("AzureMarketplace", Source::AzureMarketplace),
            ("AzurePortal", Source::AzurePortal),
            ("TestDrive", Source::TestDrive),
            ("SPZA", Source::AppSource),
            // Not a code Microsoft writes, but what people type in tests and seeds.
            ("AppSource", Source::AppSource),
        ];
        if code.is_empty() {
            return Source::Unknown;
        }
        known
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(code))
            .map(|(_, source)| source)
            .unwrap_or_else(|| Source::Other(code.to_owned()))
    }

    /// The code as Microsoft writes it (`SPZA` for AppSource); empty when unknown.
    pub fn code(&self) -> &str {
        match self {
            Source::AzureMarketplace => "AzureMarketplace",
            Source::AzurePortal => "AzurePortal",
            Source::TestDrive => "TestDrive",
            Source::AppSource => "SPZA",
            Source::Other(text) => text,
            Source::Unknown => "",
        }
    }

    /// Words for alerts.
    pub fn wording(&self) -> &str {
        match self {
            Source::AzureMarketplace => "Azure Marketplace",
            Source::AzurePortal => "Azure portal",
            Source::TestDrive => "Test Drive",
            Source::AppSource => "AppSource",
            Source::Other(text) => text,
            Source::Unknown => "an unknown source",
        }
    }
}

impl Action {
    /// Reads an action code, known codes in any case; blank text is `Unknown`.
    pub fn parse(code: &str) -> Action {
        let code = code.trim();
        let known = [
            ("INS", Action::Install),
            ("PLT", Action::ContactMe),
            ("DNC", Action::DoNotContact),
            ("Create", Action::Create),
            ("StartTestDrive", Action::StartTestDrive),
        ];
        if code.is_empty() {
            return Action::Unknown;
        }
        known
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(code))
            .map(|(_, action)| action)
            .unwrap_or_else(|| Action::Other(code.to_owned()))
    }

    /// The code as Microsoft writes it; empty when unknown.
    pub fn code(&self) -> &str {
        match self {
            Action::Install => "INS",
            Action::ContactMe => "PLT",
            Action::DoNotContact => "DNC",
            Action::Create => "Create",
            Action::StartTestDrive => "StartTestDrive",
            Action::Other(text) => text,
            Action::Unknown => "",
        }
    }

    /// Words for alerts, as the customer saw the button or event.
    pub fn wording(&self) -> &str {
        match self {
            Action::Install => "Get it now",
            Action::ContactMe => "Contact me",
            Action::DoNotContact => "Do not contact",
            Action::Create => "Azure portal purchase",
            Action::StartTestDrive => "Test drive started",
            Action::Other(text) => text,
            Action::Unknown => "unknown action",
        }
    }
}

/// The parts of a `LeadSource` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadSourceParts {
    pub source: Source,
    /// `None` when `LeadSource` carries no action (then `ActionCode` gives it).
    pub action: Option<Action>,
    pub offer_id: Option<String>,
}

/// Splits `Source-Action|Offer`, also `Source|Offer`, `Source-Action` and
/// `Source`. The offer is split off first because offer ids may hold `-`; the
/// source is split at the first `-` because test leads look like
/// `MSFT_TEST_1-MSFT_TEST_1|Offer`.
pub fn parse_lead_source(text: &str) -> LeadSourceParts {
    let (head, offer) = match text.split_once('|') {
        Some((head, offer)) => (head, non_blank(offer)),
        None => (text, None),
    };
    let (source, action) = match head.split_once('-') {
        Some((source, action)) => (source, non_blank(action).map(|a| Action::parse(&a))),
        None => (head, None),
    };
    LeadSourceParts {
        source: Source::parse(source),
        action,
        offer_id: offer,
    }
}

fn non_blank(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// One line for alerts, e.g. `"Contact me" request on AppSource`.
pub fn activity(source: &Source, action: &Action) -> String {
    let on_source = |what: String| match source {
        Source::Unknown => what,
        _ => format!("{what} on {}", source.wording()),
    };
    match action {
        Action::Install => on_source("\"Get it now\"".to_owned()),
        Action::ContactMe => on_source("\"Contact me\" request".to_owned()),
        Action::DoNotContact => on_source("\"Do not contact\" lead".to_owned()),
        Action::Create => "Azure portal purchase".to_owned(),
        Action::StartTestDrive => "Test drive started".to_owned(),
        Action::Other(text) => on_source(format!("\"{text}\"")),
        Action::Unknown => match source {
            Source::Unknown => "Lead".to_owned(),
            _ => format!("Lead from {}", source.wording()),
        },
    }
}
