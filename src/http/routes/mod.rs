//! One module per area of the site.

pub mod account;
pub mod ai_settings;
pub mod auth;
pub mod billing;
pub mod channels;
pub mod contacts;
pub mod events;
pub mod health;
pub mod inbox;
pub mod integrations;
pub mod members;
pub mod portal;
pub mod privacy;
pub mod public;
pub mod review;
pub mod simulator;

use crate::error::AppError;

/// Anything we don't serve.
pub async fn not_found() -> AppError {
    AppError::NotFound
}
