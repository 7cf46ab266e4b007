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
