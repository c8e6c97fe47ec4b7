//! The integration tests, inside the crate so the code they test can stay `pub(crate)` (the
//! way crates.io keeps its tests in `src/tests/`): every test talks to real PostgreSQL and
//! Redis, and most reach the router in-process; TCP, the real binary and a browser only
//! where they are the point.

mod backup;
mod billing;
mod browser;
mod channels;
mod client;
mod contacts;
mod fairness;
mod fragments;
mod harness;
mod instances;
mod jobs;
mod knowledge;
mod live_stream;

mod accessibility;
mod accounts;
mod api;
mod attacks;
mod audit;
mod crypto;
mod mail;
mod mcp;
mod messaging;
mod metrics;
mod outgoing_webhooks;
mod overload;
mod privacy;
mod public_pages;
mod query_budget;
mod replay;
mod review;
mod reviewer_flow;
mod schemas;
mod storage;
mod suite;
mod wa;
mod workspace;
