//! Shared test support. Each file in tests/ is its own crate and uses only
//! part of this module.
#![allow(dead_code)]

pub mod servers;
