//! Signed webhooks: one Standard Webhooks `lead.created` event per lead
//! ([`lead_event`], versioned, documented in the README), signed and posted
//! by [`signed`].

pub mod lead_event;
pub mod signed;
