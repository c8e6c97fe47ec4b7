//! One module per area of the site.

pub(crate) mod account;
pub(crate) mod ai_settings;
pub(crate) mod auth;
pub(crate) mod billing;
pub(crate) mod channels;
pub(crate) mod contacts;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod inbox;
pub(crate) mod integrations;
pub(crate) mod members;
pub(crate) mod outgoing_webhooks;
pub(crate) mod portal;
pub(crate) mod privacy;
pub(crate) mod public;
pub(crate) mod review;
pub(crate) mod simulator;

use crate::error::AppError;

/// Anything we don't serve.
pub(crate) async fn not_found() -> AppError {
    AppError::NotFound
}
