//! AI drafts waiting for review: list, approve (optionally edited) and reject, through
//! `review::decide` — the same rules as the portal's review queue (a draft is decided at
//! most once; an approved reply waits out the undo window, then goes through the outbox).

use crate::messaging::Messaging;
use axum::extract::FromRef;
use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    api::{
        ApiJson,
        auth::ApiCtx,
        problem::{ApiError, ApiResult},
        scopes::Scope,
        ts,
    },
    db::{self, ai as db_ai},
    review::Review,
    review::decide::{self, DecideError},
    state::AppState,
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DraftQuery {
    /// `pending` (replies to approve) or `escalated` (for a person); both when absent.
    pub(crate) state: Option<String>,
    /// 1–100 (default 50).
    pub(crate) limit: Option<i64>,
    pub(crate) offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DraftOut {
    pub(crate) id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) contact_id: Uuid,
    /// `pending` or `escalated`.
    pub(crate) state: String,
    /// The reply the AI wrote (absent for an escalation).
    pub(crate) text: Option<String>,
    pub(crate) escalation_reason: Option<String>,
    pub(crate) provider: String,
    pub(crate) model: String,
    #[schema(format = DateTime)]
    pub(crate) created_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DraftList {
    pub(crate) data: Vec<DraftOut>,
    /// How many wait under this filter in all.
    pub(crate) total: i64,
}

/// Drafts waiting for review: emergencies first, then oldest first.
#[utoipa::path(get, path = "/api/v1/drafts", operation_id = "list_drafts", tag = "drafts",
    params(DraftQuery),
    responses(
        (status = 200, body = DraftList),
        (status = 400, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["review"])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    api: ApiCtx,
    Query(q): Query<DraftQuery>,
) -> ApiResult<Json<DraftList>> {
    api.require(Scope::Review)?;
    let which = match q.state.as_deref() {
        None | Some("") => None,
        Some("pending") => Some("pending"),
        Some("escalated") => Some("escalated"),
        Some(_) => return Err(ApiError::bad_request("api.problem.invalid_status")),
    };
    let limit = q.limit.unwrap_or(50);
    let offset = q.offset.unwrap_or(0);
    if !(1..=100).contains(&limit) || !(0..=100_000).contains(&offset) {
        return Err(ApiError::bad_request("api.problem.invalid_limit"));
    }
    let tenant = api.tenant_id;
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let (rows, total) = db_ai::queue_page(
        &mut tx,
        &db_ai::QueueFilter {
            state: which,
            limit,
            offset,
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    let mut data = Vec::with_capacity(rows.len());
    for d in rows {
        let text = crate::messaging::view::original_text(&Messaging::from_ref(&state), tenant, &d)
            .await
            .ok()
            .flatten();
        data.push(DraftOut {
            id: d.id,
            conversation_id: d.conversation_id,
            contact_id: d.contact_id,
            state: d.state,
            text,
            escalation_reason: d.escalation_reason,
            provider: d.provider,
            model: d.model,
            created_at: ts(d.created_at),
        });
    }
    Ok(Json(DraftList { data, total }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveRequest {
    /// The reply to send instead of the AI's text (edit-and-approve).
    pub(crate) text: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ApproveResponse {
    /// The queued outbound message.
    pub(crate) message_id: Uuid,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectRequest {
    /// Why (at most 500 characters are kept).
    #[serde(default)]
    pub(crate) reason: String,
}

fn decide_error(e: DecideError) -> ApiError {
    match e {
        DecideError::NotFound => ApiError::not_found(),
        DecideError::AlreadyDecided => ApiError::conflict("review.already_decided"),
        DecideError::Empty => ApiError::unprocessable("reply.empty"),
        DecideError::TooLate => ApiError::conflict("review.undo_too_late"),
        DecideError::Locked(_) => ApiError::conflict("review.locked"),
        DecideError::Refused(r) => ApiError::unprocessable(r.message_key()),
        DecideError::Internal(e) => e.into(),
    }
}

/// Approve a draft, optionally with edited text; its reply is queued.
#[utoipa::path(post, path = "/api/v1/drafts/{id}/approve", operation_id = "approve_draft", tag = "drafts",
    params(("id" = Uuid, Path, description = "Draft id")),
    request_body(content = ApproveRequest, description = "Optional: `{}` approves the AI's text"),
    responses(
        (status = 200, body = ApproveResponse),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["review"])))]
pub(crate) async fn approve(
    State(state): State<Review>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> ApiResult<Json<ApproveResponse>> {
    api.require(Scope::Review)?;
    if api.created_by.is_none() {
        return Err(ApiError::conflict("api.problem.creator_gone"));
    }
    let message_id = decide::approve(
        &state,
        api.tenant_id,
        &api.actor(),
        id,
        body.text.as_deref(),
    )
    .await
    .map_err(decide_error)?;
    Ok(Json(ApproveResponse { message_id }))
}

/// Reject a draft; the conversation is left to a person.
#[utoipa::path(post, path = "/api/v1/drafts/{id}/reject", operation_id = "reject_draft", tag = "drafts",
    params(("id" = Uuid, Path, description = "Draft id")),
    request_body = RejectRequest,
    responses(
        (status = 204, description = "Rejected"),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["review"])))]
pub(crate) async fn reject(
    State(state): State<Review>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<RejectRequest>,
) -> ApiResult<StatusCode> {
    api.require(Scope::Review)?;
    decide::reject(&state, api.tenant_id, &api.actor(), id, &body.reason)
        .await
        .map_err(decide_error)?;
    Ok(StatusCode::NO_CONTENT)
}
