//! Shared test support. Each file in tests/ is its own crate and uses only
//! part of this module.
#![allow(dead_code)]

pub mod chromium;
pub mod faults;
pub mod graph;
pub mod handler;
pub mod host_http;
pub mod hubspot;
pub mod identity;
pub mod leads;
pub mod old_state;
pub mod proxy;
pub mod servers;
pub mod smtp_script;
pub mod standard_webhooks;
pub mod take;
