//! The one integration-test binary: every test talks to real PostgreSQL and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod billing;
mod browser;
mod client;
mod harness;

mod accounts;
mod attacks;
mod audit;
mod crypto;
mod mcp;
mod messaging;
mod privacy;
mod public_pages;
mod review;
mod wa;
mod workspace;
