//! One module per area of the site.

pub mod health;
pub mod public;

use crate::error::AppError;

/// Anything we don't serve.
pub async fn not_found() -> AppError {
    AppError::NotFound
}
