//! Token authentication for `/api/v1`: the bearer token is checked against the database on
//! every request (no cache, so a revocation takes effect at once), counted against the
//! token's rate limit, and every call is written to the tenant's audit log with the token's
//! name.

use axum::{
    extract::{FromRequestParts, MatchedPath, Request, State},
    http::{header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    api::{
        problem::{ApiError, ApiResult},
        scopes::Scope,
        tokens,
    },
    auth::throttle::Limit,
    db::{self, api_tokens, audit::Actor},
    state::AppState,
};

/// The authenticated caller: a token of one tenant, with its scopes.
#[derive(Clone, Debug)]
pub(crate) struct ApiCtx {
    pub(crate) tenant_id: Uuid,
    pub(crate) token_id: Uuid,
    pub(crate) name: String,
    pub(crate) scopes: Vec<Scope>,
    /// The member who created the token (drafts it approves are approved on their behalf).
    pub(crate) created_by: Option<Uuid>,
    pub(crate) rate_per_minute: i32,
}

impl ApiCtx {
    /// 403 unless the token carries `scope`.
    pub(crate) fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "api.problem.scope_missing",
            ))
        }
    }

    /// Who the audit log names: the token (by name), on behalf of its creator.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            id: self.created_by,
            label: format!("api token \"{}\"", self.name),
        }
    }

    /// A transaction in the token's tenant, by the token, stamped with the clock's now.
    pub(crate) async fn begin(&self, state: &AppState) -> sqlx::Result<crate::db::TenantTx> {
        self.begin_at(state, state.now()).await
    }

    /// The same, stamped with a `now` the request already read.
    pub(crate) async fn begin_at(
        &self,
        state: &AppState,
        now: time::OffsetDateTime,
    ) -> sqlx::Result<crate::db::TenantTx> {
        crate::db::TenantTx::begin(&state.db, self.tenant_id, self.actor(), now).await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ApiCtx>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// The token from `Authorization: Bearer …`, if well-formed.
fn bearer(parts: &axum::http::HeaderMap) -> Option<&str> {
    let v = parts.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Finds and checks the token: it exists, the secret matches, it is neither revoked nor
/// expired, and its tenant is live. Records its use (at most once a minute).
pub(crate) async fn authenticate_token(state: &AppState, token: &str) -> ApiResult<ApiCtx> {
    let (id, secret) = tokens::parse(token).ok_or_else(ApiError::unauthorized)?;
    let mut conn = state.db.acquire().await?;
    let tenant_id = api_tokens::tenant_of(&mut conn, id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    drop(conn);
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let t = api_tokens::get(&mut tx, id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if !tokens::secret_matches(secret, &t.secret_hash)
        || t.revoked_at.is_some()
        || t.expires_at.is_some_and(|e| e <= now)
    {
        return Err(ApiError::unauthorized());
    }
    api_tokens::touch(&mut tx, id, now).await?;
    tx.commit().await?;
    let tenant = db::tenants::tenant_by_id(&state.db, tenant_id).await?;
    if tenant.is_none_or(|t| t.status == "terminated") {
        return Err(ApiError::unauthorized());
    }
    Ok(ApiCtx {
        tenant_id,
        token_id: id,
        name: t.name,
        scopes: t.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        created_by: t.created_by,
        rate_per_minute: t.rate_per_minute,
    })
}

/// Route middleware of the token-authenticated API.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(req.headers()).map(str::to_owned) else {
        return ApiError::unauthorized().into_response();
    };
    let ctx = match authenticate_token(&state, &token).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let rate = ctx.rate_per_minute;
    // Counted per token in Redis; while Redis is down each instance counts alone, with
    // the stricter fallback limits of `throttle` (logged there).
    let limit = Limit {
        max_attempts: rate.max(1) as u32,
        window: time::Duration::minutes(1),
    };
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    if let Err(secs) = state
        .throttle
        .attempt(&format!("api:{}", ctx.token_id), limit)
        .await
    {
        record(&state, &ctx, &method, &route, 429).await;
        return ApiError::too_many(secs).into_response();
    }
    req.extensions_mut().insert(ctx.clone());
    let resp = next.run(req).await;
    record(&state, &ctx, &method, &route, resp.status().as_u16()).await;
    resp
}

/// One audit entry per call: the route template (never ids from the path or a query),
/// the status, and the token.
async fn record(state: &AppState, ctx: &ApiCtx, method: &str, route: &str, status: u16) {
    let res = async {
        let mut tx = db::begin_tenant(&state.db, ctx.tenant_id).await?;
        crate::db::audit::record(
            &mut tx,
            ctx.tenant_id,
            &ctx.actor(),
            "api.call",
            &format!("{method} {route}"),
            json!({ "token": ctx.token_id, "status": status }),
            state.now(),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "could not audit an api call");
    }
}
