//! Data-subject requests (`privacy:manage`): open one for a contact, follow its status and
//! deadline, download the contact's export bundle — through `privacy`, as the portal does.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    api::{
        ApiJson,
        auth::ApiCtx,
        problem::{ApiError, ApiResult},
        scopes::Scope,
        ts,
    },
    db::{self, privacy as dbp},
    privacy::{self, Privacy, export},
    state::AppState,
};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DsrIn {
    pub(crate) contact_id: Uuid,
    /// `access`, `portability`, `rectification`, `erasure`, `restriction` or `objection`.
    pub(crate) kind: String,
    /// `gdpr` (one month) or `lgpd` (15 days): sets the due date.
    pub(crate) legal_basis: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DsrOut {
    pub(crate) id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) kind: String,
    pub(crate) legal_basis: String,
    /// `received`, `verified`, `in_progress`, `completed` or `denied`.
    pub(crate) status: String,
    /// `staff`, `keyword` (the end user on WhatsApp) or `api`.
    pub(crate) source: String,
    #[schema(format = DateTime)]
    pub(crate) received_at: String,
    #[schema(format = DateTime)]
    pub(crate) due_at: String,
    #[schema(format = DateTime)]
    pub(crate) completed_at: Option<String>,
    pub(crate) denial_reason: Option<String>,
}

impl From<dbp::Request> for DsrOut {
    fn from(r: dbp::Request) -> Self {
        DsrOut {
            id: r.id,
            contact_id: r.contact_id,
            kind: r.kind,
            legal_basis: r.legal_basis,
            status: r.status,
            source: r.source,
            received_at: ts(r.received_at),
            due_at: ts(r.due_at),
            completed_at: r.completed_at.map(ts),
            denial_reason: r.denial_reason,
        }
    }
}

async fn request(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<dbp::Request> {
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let r = dbp::get_request(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(r)
}

/// Open a data-subject request for a contact.
#[utoipa::path(post, path = "/api/v1/privacy/requests", operation_id = "open_privacy_request", tag = "privacy",
    request_body = DsrIn,
    responses(
        (status = 201, body = DsrOut),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["privacy:manage"])))]
pub(crate) async fn open(
    State(state): State<AppState>,
    api: ApiCtx,
    ApiJson(body): ApiJson<DsrIn>,
) -> ApiResult<(StatusCode, Json<DsrOut>)> {
    api.require(Scope::PrivacyManage)?;
    if !privacy::KINDS.contains(&body.kind.as_str())
        || !matches!(body.legal_basis.as_str(), "gdpr" | "lgpd")
    {
        return Err(ApiError::unprocessable("privacy.request.invalid"));
    }
    let tenant = api.tenant_id;
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    db::contacts::get(&mut tx, body.contact_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let id = privacy::open_request(
        &mut tx,
        tenant,
        &api.actor(),
        body.contact_id,
        &body.kind,
        &body.legal_basis,
        "api",
        state.now(),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(request(&state, tenant, id).await?.into()),
    ))
}

/// A request's status and due date.
#[utoipa::path(get, path = "/api/v1/privacy/requests/{id}", operation_id = "get_privacy_request", tag = "privacy",
    params(("id" = Uuid, Path, description = "Request id")),
    responses(
        (status = 200, body = DsrOut),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["privacy:manage"])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<DsrOut>> {
    api.require(Scope::PrivacyManage)?;
    Ok(Json(request(&state, api.tenant_id, id).await?.into()))
}

/// The contact's data as the JSON export bundle (with its manifest); recorded as an export.
#[utoipa::path(get, path = "/api/v1/privacy/requests/{id}/export", operation_id = "export_privacy_request", tag = "privacy",
    params(("id" = Uuid, Path, description = "Request id")),
    responses(
        (status = 200, body = Object, description = "The export bundle (a download)"),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["privacy:manage"])))]
pub(crate) async fn export(
    State(state): State<AppState>,
    State(privacy): State<Privacy>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    api.require(Scope::PrivacyManage)?;
    let tenant = api.tenant_id;
    let r = request(&state, tenant, id).await?;
    let bundle = export::contact_bundle(&privacy, tenant, r.contact_id, Some(id))
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut tx = api.begin(&state).await?;
    tx.audit(
        "dsr.exported",
        &id.to_string(),
        json!({ "contact": r.contact_id, "via": "api" }),
    )
    .await?;
    tx.commit().await?;
    let mut resp = Json(bundle).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"sigmaai-export-{id}.json\""
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}
