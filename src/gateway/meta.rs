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

pub use client::*;
pub use parse::*;
pub use verify::*;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod client_tests;
