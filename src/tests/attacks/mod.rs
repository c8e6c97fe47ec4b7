//! Attacks, run the way an attacker runs them: over HTTP against the running server, as a
//! hostile tenant admin or an anonymous client. Each module is a case of
//! `docs/security.md` → "Threat model and tested attacks".

mod bad_input;
mod reset_links;
mod slow_clients;
mod throttling;
