//! One module per area of the site.

pub mod account;
pub mod auth;
pub mod health;
pub mod members;
pub mod portal;
pub mod public;

use crate::error::AppError;

/// Anything we don't serve.
pub async fn not_found() -> AppError {
    AppError::NotFound
}
