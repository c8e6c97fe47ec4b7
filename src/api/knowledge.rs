//! Knowledge entries (what the AI answers from): list, create, read, replace, delete, with
//! the portal's limits (title 200, body 8,000 characters; kind one of the known ones).

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
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
    },
    db::{self, ai as db_ai},
    domain::{
        knowledge::{KnowledgeEntry, KnowledgeKind},
        knowledge_import::{MAX_BODY, MAX_TITLE},
    },
    state::AppState,
};

#[derive(Serialize, ToSchema)]
pub(crate) struct EntryOut {
    pub(crate) id: Uuid,
    /// `faq`, `hours`, `service`, `price` or `other`.
    pub(crate) kind: String,
    pub(crate) title: String,
    pub(crate) body: String,
}

impl From<KnowledgeEntry> for EntryOut {
    fn from(e: KnowledgeEntry) -> Self {
        EntryOut {
            id: e.id,
            kind: e.kind.as_str().to_owned(),
            title: e.title,
            body: e.body,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EntryList {
    pub(crate) data: Vec<EntryOut>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntryIn {
    /// `faq`, `hours`, `service`, `price` or `other`.
    pub(crate) kind: String,
    /// 1–200 characters.
    pub(crate) title: String,
    /// 1–8,000 characters.
    pub(crate) body: String,
}

fn check(id: Uuid, e: &EntryIn) -> ApiResult<KnowledgeEntry> {
    let kind = KnowledgeKind::parse(&e.kind)
        .ok_or_else(|| ApiError::unprocessable("knowledge.kind.invalid"))?;
    let (title, body) = (e.title.trim(), e.body.trim());
    if title.is_empty() {
        return Err(ApiError::unprocessable("knowledge.title.required"));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ApiError::unprocessable("knowledge.title.long"));
    }
    if body.is_empty() {
        return Err(ApiError::unprocessable("knowledge.body.required"));
    }
    if body.chars().count() > MAX_BODY {
        return Err(ApiError::unprocessable("knowledge.body.long"));
    }
    Ok(KnowledgeEntry {
        id,
        kind,
        title: title.to_owned(),
        body: body.to_owned(),
    })
}

async fn entries(state: &AppState, tenant: Uuid) -> ApiResult<Vec<KnowledgeEntry>> {
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let all = db_ai::knowledge(&mut tx).await?;
    tx.commit().await?;
    Ok(all)
}

/// All knowledge entries, oldest first.
#[utoipa::path(get, path = "/api/v1/knowledge", operation_id = "list_knowledge", tag = "knowledge",
    responses(
        (status = 200, body = EntryList),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["knowledge:manage"])))]
pub(crate) async fn list(State(state): State<AppState>, api: ApiCtx) -> ApiResult<Json<EntryList>> {
    api.require(Scope::KnowledgeManage)?;
    let data = entries(&state, api.tenant_id)
        .await?
        .into_iter()
        .map(EntryOut::from)
        .collect();
    Ok(Json(EntryList { data }))
}

/// Add an entry.
#[utoipa::path(post, path = "/api/v1/knowledge", operation_id = "create_knowledge", tag = "knowledge",
    request_body = EntryIn,
    responses(
        (status = 201, body = EntryOut),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["knowledge:manage"])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    api: ApiCtx,
    ApiJson(body): ApiJson<EntryIn>,
) -> ApiResult<(StatusCode, Json<EntryOut>)> {
    api.require(Scope::KnowledgeManage)?;
    let e = check(Uuid::now_v7(), &body)?;
    let now = state.now();
    let mut tx = api.begin_at(&state, now).await?;
    db_ai::insert_knowledge(&mut tx, api.tenant_id, &e, now).await?;
    tx.audit("knowledge.added", &e.title, json!({ "id": e.id }))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(e.into())))
}

/// Read an entry.
#[utoipa::path(get, path = "/api/v1/knowledge/{id}", operation_id = "get_knowledge", tag = "knowledge",
    params(("id" = Uuid, Path, description = "Entry id")),
    responses(
        (status = 200, body = EntryOut),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["knowledge:manage"])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EntryOut>> {
    api.require(Scope::KnowledgeManage)?;
    entries(&state, api.tenant_id)
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .map(|e| Json(e.into()))
        .ok_or_else(ApiError::not_found)
}

/// Replace an entry.
#[utoipa::path(put, path = "/api/v1/knowledge/{id}", operation_id = "replace_knowledge", tag = "knowledge",
    params(("id" = Uuid, Path, description = "Entry id")),
    request_body = EntryIn,
    responses(
        (status = 200, body = EntryOut),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["knowledge:manage"])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<EntryIn>,
) -> ApiResult<Json<EntryOut>> {
    api.require(Scope::KnowledgeManage)?;
    let e = check(id, &body)?;
    let now = state.now();
    let mut tx = api.begin_at(&state, now).await?;
    if !db_ai::update_knowledge(&mut tx, &e, now).await? {
        return Err(ApiError::not_found());
    }
    tx.audit("knowledge.edited", &e.title, json!({ "id": e.id }))
        .await?;
    tx.commit().await?;
    Ok(Json(e.into()))
}

/// Delete an entry.
#[utoipa::path(delete, path = "/api/v1/knowledge/{id}", operation_id = "delete_knowledge", tag = "knowledge",
    params(("id" = Uuid, Path, description = "Entry id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["knowledge:manage"])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    api.require(Scope::KnowledgeManage)?;
    let now = state.now();
    let mut tx = api.begin_at(&state, now).await?;
    if !db_ai::delete_knowledge(&mut tx, id).await? {
        return Err(ApiError::not_found());
    }
    tx.audit("knowledge.deleted", &id.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
