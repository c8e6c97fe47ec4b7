//! Strings for The tenant API (`/api/v1`) and its tokens page: `(key, en, pt-BR)`, as in `messages.rs`.

pub static MESSAGES: &[(&str, &str, &str)] = &[];
