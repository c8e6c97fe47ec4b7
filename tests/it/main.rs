//! The one integration-test binary: every test talks to real PostgreSQL and Redis.

mod browser;
mod harness;

mod public_pages;
