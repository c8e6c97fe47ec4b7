//! The demo tenant `scripts/run` starts with, so the product can be tried at once.
//! Development only: it has a published password.

use crate::{
    accounts::{self, FormError, Signup},
    db::accounts as db_accounts,
    state::AppState,
};

pub const DEMO_EMAIL: &str = "demo@sigmaai.local";
pub const DEMO_PASSWORD: &str = "sigmaai-demo-2026";
pub const DEMO_SLUG: &str = "demo-clinic";

/// Creates the demo tenant and owner unless they exist. Returns whether it created them.
pub async fn seed(state: &AppState) -> anyhow::Result<bool> {
    anyhow::ensure!(
        !state.config.is_production(),
        "refusing to create a demo tenant with a published password in production"
    );
    if db_accounts::user_by_email(&state.db, DEMO_EMAIL)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let created = accounts::sign_up(
        state,
        Signup {
            name: "Demo Owner",
            email: DEMO_EMAIL,
            password: DEMO_PASSWORD,
            business: "Clínica Demo",
            slug: DEMO_SLUG,
            plan: "clinic",
            accept_policy: true,
            language: "pt-BR",
        },
    )
    .await
    .map_err(|e| match e {
        FormError::Field(key) => anyhow::anyhow!("demo sign-up refused: {key}"),
        FormError::Internal(e) => e,
    })?;
    tracing::info!(tenant = %created.slug, "demo tenant created");
    Ok(true)
}
