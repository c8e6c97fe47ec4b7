//! Strings for Outgoing webhooks (endpoints, deliveries): `(key, en, pt-BR)`, as in `messages.rs`.

pub static MESSAGES: &[(&str, &str, &str)] = &[];
