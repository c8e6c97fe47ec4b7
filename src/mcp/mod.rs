//! MCP integrations: tenants connect their own systems (CRM, scheduling, EHR) as MCP servers
//! over streamable HTTP, through the official Rust SDK (`rmcp`).
//!
//! - [`guard`]: the outbound URL guard every tenant-configured destination goes through.
//! - [`transport`]: rmcp's HTTP client transport over the guarded reqwest client.
//! - [`client`]: one session with one server — initialize, list tools, call a tool.
//! - [`registry`]: servers and their pinned tools (policy, risk, change detection), the tools
//!   offered while drafting, and the execution of approved write calls.

pub(crate) mod client;
pub(crate) mod guard;
pub(crate) mod registry;
pub(crate) mod transport;

pub(crate) use client::{Auth, McpError, RemoteTool, Session};
pub(crate) use guard::Guard;
