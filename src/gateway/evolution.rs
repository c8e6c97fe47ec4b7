//! Evolution API v2 (the Baileys channel): webhook parsing, webhook authentication and the
//! REST client. Wire format: `shared/reference/whatsapp-gateways.md` §1.
//!
//! - `parse`: the webhook body → `InboundEvent`s (`parse_webhook`);
//! - `verify`: the webhook's secret header or JWT (`verify`, `verify_at`);
//! - `client`: the REST client (`EvolutionClient`).

mod client;
mod parse;
mod verify;

pub(crate) use client::*;
pub(crate) use parse::*;
pub(crate) use verify::*;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod client_tests;
