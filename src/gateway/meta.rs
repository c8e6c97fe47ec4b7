//! Meta WhatsApp Cloud API: webhook parsing, signature and handshake checks, REST client.
//! Wire format: `shared/reference/whatsapp-gateways.md` §2.
//!
//! - `parse`: the webhook body → `InboundEvent`s (`parse_webhook`);
//! - `verify`: the body's signature and the GET handshake (`verify_signature`,
//!   `verify_handshake`);
//! - `client`: the REST client (`MetaClient`).

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
