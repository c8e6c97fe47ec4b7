//! MCP integrations: tenants connect their own systems (CRM, scheduling, EHR) as MCP servers
//! over streamable HTTP, through the official Rust SDK (`rmcp`).
//!
//! - [`guard`]: the outbound URL guard every tenant-configured destination goes through.

pub mod guard;

pub use guard::{Guard, GuardError};
