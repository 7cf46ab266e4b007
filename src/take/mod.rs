//! "I'll take it": the signed link every alert carries ([`token`]) and the
//! record of who took a lead ([`store`]). The `LeadTake` function that
//! serves the link is in `host`.

pub mod store;
pub mod token;

pub use token::{attach, link, Token, TokenError};
