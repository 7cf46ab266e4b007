//! lead-notifier: alerts a publisher's sales team about Microsoft commercial
//! marketplace leads, exactly once per channel.
//!
//! The timer invocation (`host`), the CLI's `poll` and the standalone `watch`
//! loop all go through [`pipeline::Pipeline::run_once`].

pub mod cli;
pub mod clock;
pub mod config;
pub mod destination;
pub mod history;
pub mod host;
pub mod identity;
pub mod json_text;
pub mod lead;
pub mod lead_table;
pub mod ledger;
pub mod memory;
pub mod notify;
pub mod pipeline;
pub mod report;
pub mod routing;
pub mod seed;
pub mod storage;
pub mod summary;
pub mod take;
pub mod text;
pub mod tls;
