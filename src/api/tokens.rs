//! API tokens: `sgm_<id>_<secret>`. The id (a UUID, not secret) finds the row; the secret is
//! 256 random bits of which only SHA-256 is stored, compared in constant time. A token is
//! shown once, when it is created.

use base64::Engine;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    api::scopes::Scope,
    db::{self, api_tokens, audit},
    state::AppState,
};

pub(crate) const PREFIX: &str = "sgm_";

/// A new token's id and the full token string (to show once).
pub(crate) fn mint() -> (Uuid, String, [u8; 32]) {
    let id = Uuid::now_v7();
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let token = format!("{PREFIX}{}_{secret}", id.simple());
    (id, token, hash(&secret))
}

pub(crate) fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The id and secret of a well-formed token.
pub(crate) fn parse(token: &str) -> Option<(Uuid, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.len() != 43 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// Whether `secret` is the one whose hash is `stored`.
pub(crate) fn secret_matches(secret: &str, stored: &[u8]) -> bool {
    bool::from(hash(secret).as_slice().ct_eq(stored))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CreateError {
    #[error("name")]
    Name,
    #[error("scopes")]
    Scopes,
    #[error("expiry")]
    Expiry,
}

impl CreateError {
    pub(crate) fn message_key(&self) -> &'static str {
        match self {
            CreateError::Name => "api.tokens.name_invalid",
            CreateError::Scopes => "api.tokens.scopes_required",
            CreateError::Expiry => "api.tokens.expiry_invalid",
        }
    }
}

/// Expiry choices offered on the page, in days (0: never).
pub(crate) const EXPIRY_DAYS: [i64; 5] = [7, 30, 90, 365, 0];

/// Creates a token for `tenant_id`, audited; returns the token string (shown once).
pub(crate) async fn create(
    state: &AppState,
    tenant_id: Uuid,
    actor: &audit::Actor,
    name: &str,
    scopes: &[Scope],
    expires_in_days: i64,
) -> Result<String, anyhow::Error> {
    let (id, token, secret_hash) = mint();
    let now = state.now();
    let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let expires_at = (expires_in_days > 0).then(|| now + time::Duration::days(expires_in_days));
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    api_tokens::insert(
        &mut tx,
        &api_tokens::NewToken {
            id,
            tenant_id,
            name,
            secret_hash: &secret_hash,
            scopes: &scopes,
            created_by: actor
                .id
                .ok_or_else(|| anyhow::anyhow!("a token needs a creator"))?,
            expires_at,
        },
        now,
    )
    .await?;
    tx.audit("api_token.created", name, json!({ "token": id, "scopes": scopes, "expires_at": expires_at.map(|t| t.unix_timestamp()) }))
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Checks a form's fields; the scopes and expiry in days.
pub(crate) fn check(
    name: &str,
    scopes: &[String],
    expiry_days: i64,
) -> Result<(String, Vec<Scope>), CreateError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(CreateError::Name);
    }
    let mut out = Vec::new();
    for s in scopes {
        let s = Scope::parse(s).ok_or(CreateError::Scopes)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(CreateError::Scopes);
    }
    if !EXPIRY_DAYS.contains(&expiry_days) {
        return Err(CreateError::Expiry);
    }
    Ok((name.to_owned(), out))
}

/// Revokes a token at once (the next request with it gets 401), audited.
pub(crate) async fn revoke(
    state: &AppState,
    tenant_id: Uuid,
    actor: &audit::Actor,
    id: Uuid,
) -> anyhow::Result<bool> {
    let now: OffsetDateTime = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let Some(t) = api_tokens::get(&mut tx, id).await? else {
        return Ok(false);
    };
    if !api_tokens::revoke(&mut tx, id, now).await? {
        return Ok(false);
    }
    tx.audit("api_token.revoked", &t.name, json!({ "token": id }))
        .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_and_only_its_secret_matches() {
        let (id, token, stored) = mint();
        assert!(token.starts_with("sgm_"));
        let (pid, secret) = parse(&token).unwrap();
        assert_eq!(pid, id);
        assert!(secret_matches(secret, &stored));
        let (_, other, _) = mint();
        let (_, other_secret) = parse(&other).unwrap();
        assert!(!secret_matches(other_secret, &stored));
        assert!(parse("sgm_short_x").is_none());
        assert!(parse(&token.replace("sgm_", "xyz_")).is_none());
    }

    #[test]
    fn a_form_needs_a_name_and_a_known_scope() {
        assert_eq!(check(" ", &["review".into()], 30), Err(CreateError::Name));
        assert_eq!(check("n8n", &[], 30), Err(CreateError::Scopes));
        assert_eq!(check("n8n", &["root".into()], 30), Err(CreateError::Scopes));
        assert_eq!(
            check("n8n", &["review".into()], 3),
            Err(CreateError::Expiry)
        );
        assert_eq!(
            check("n8n", &["review".into(), "review".into()], 0),
            Ok(("n8n".into(), vec![Scope::Review]))
        );
    }
}
