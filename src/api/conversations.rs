//! Conversations: the inbox list (same filters and keyset paging as the portal), one
//! conversation with its messages (recorded as access, like the portal's view), and sends
//! (text or template, through the same outbox and 24-hour rule, idempotent by key).

use crate::messaging::Messaging;
use axum::extract::FromRef;
use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::conversation::Ownership;
use crate::domain::review as review_rules;
use crate::{
    api::{
        auth::ApiCtx,
        contacts::ContactOut,
        cursor, parse_cursor, parse_json,
        problem::{ApiError, ApiResult},
        scopes::Scope,
        ts,
    },
    db::{
        self, api_tokens,
        conversations::{self as db_conv, ListFilter},
        messages,
    },
    domain::phone::Phone,
    live,
    messaging::{
        send::{self, QueueError, Writer},
        view::{self, Clock},
    },
    state::AppState,
};

pub(crate) const MAX_PAGE: i64 = 100;

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `open` or `resolved`; all when absent.
    pub(crate) status: Option<String>,
    /// Only conversations with unread messages.
    pub(crate) unread: Option<bool>,
    /// Only conversations assigned to this member.
    pub(crate) assigned_to: Option<Uuid>,
    /// A name (all words must match) or a phone number (exact).
    pub(crate) q: Option<String>,
    /// The `next_cursor` of the previous page.
    pub(crate) before: Option<String>,
    /// Page size, 1–100 (default 50).
    pub(crate) limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConversationSummary {
    pub(crate) id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) channel_id: Uuid,
    /// The contact's name, else phone, else "?" ("—" once erased).
    pub(crate) contact_label: String,
    /// The start of the latest message's text.
    pub(crate) preview: String,
    pub(crate) status: String,
    /// `ai`, `human` or `paused`.
    pub(crate) ownership: String,
    pub(crate) assigned_to: Option<Uuid>,
    pub(crate) labels: Vec<String>,
    pub(crate) unread: i32,
    pub(crate) is_group: bool,
    #[schema(format = DateTime)]
    pub(crate) last_message_at: String,
    #[schema(format = DateTime)]
    pub(crate) last_inbound_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConversationList {
    pub(crate) data: Vec<ConversationSummary>,
    /// Pass as `before` for the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// List conversations, newest first.
#[utoipa::path(get, path = "/api/v1/conversations", operation_id = "list_conversations", tag = "conversations",
    params(ListQuery),
    responses(
        (status = 200, body = ConversationList),
        (status = 400, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["conversations:read"])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    api: ApiCtx,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ConversationList>> {
    let messaging = Messaging::from_ref(&state);
    api.require(Scope::ConversationsRead)?;
    let tenant = api.tenant_id;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s @ ("open" | "resolved")) => Some(s.to_owned()),
        Some(_) => return Err(ApiError::bad_request("api.problem.invalid_status")),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request("api.problem.invalid_limit"));
    }
    let search = q.q.as_deref().unwrap_or("").trim();
    if search.chars().count() > 200 {
        return Err(ApiError::bad_request("api.problem.invalid_query"));
    }
    let (name_tokens, phone_index) = if search.is_empty() {
        (None, None)
    } else if let Ok(p) = Phone::try_from(search) {
        (
            None,
            Some(state.keys.blind_phone(tenant, p.as_str()).await?),
        )
    } else {
        (Some(state.keys.blind_words(tenant, search).await?), None)
    };
    let before = q.before.as_deref().map(parse_cursor).transpose()?;
    let filter = ListFilter {
        status,
        unread_only: q.unread.unwrap_or(false),
        assigned_to: q.assigned_to,
        name_tokens,
        phone_index,
        before,
        limit,
        ..ListFilter::default()
    };
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let rows = db_conv::list(&mut tx, &filter).await?;
    tx.commit().await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| cursor(r.last_message_at, r.id)))
        .flatten();
    let clock = Clock::new("UTC", state.now());
    let mut data = Vec::with_capacity(rows.len());
    for r in &rows {
        let v = view::inbox_row(&messaging, tenant, &clock, r).await;
        data.push(ConversationSummary {
            id: r.id,
            contact_id: r.contact_id,
            channel_id: r.channel_id,
            contact_label: v.label,
            preview: v.preview,
            status: r.status.clone(),
            ownership: r.ownership.clone(),
            assigned_to: r.assigned_to,
            labels: r.labels.clone(),
            unread: r.unread_count,
            is_group: r.is_group,
            last_message_at: ts(r.last_message_at),
            last_inbound_at: r.last_inbound_at.map(ts),
        });
    }
    Ok(Json(ConversationList { data, next_cursor }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageOut {
    pub(crate) id: Uuid,
    /// `in` or `out`.
    pub(crate) direction: String,
    /// `contact`, `member`, `ai` or `system`.
    pub(crate) author: String,
    pub(crate) kind: String,
    /// The text; absent for media without a caption, erased or deleted messages.
    pub(crate) text: Option<String>,
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) deleted: bool,
    pub(crate) edited: bool,
    #[schema(format = DateTime)]
    pub(crate) sent_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConversationOut {
    pub(crate) id: Uuid,
    pub(crate) status: String,
    pub(crate) ownership: String,
    pub(crate) assigned_to: Option<Uuid>,
    pub(crate) labels: Vec<String>,
    pub(crate) channel_id: Uuid,
    /// `evolution`, `meta` or `simulator`.
    pub(crate) channel_kind: String,
    /// Whether free text may be sent now (WhatsApp's 24-hour window on Meta channels).
    pub(crate) window_open: bool,
    pub(crate) contact: ContactOut,
    /// Oldest first.
    pub(crate) messages: Vec<MessageOut>,
    /// Pass as `before` for older messages; absent when there are none.
    pub(crate) older_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ThreadQuery {
    /// The `older_cursor` of the previous response.
    pub(crate) before: Option<String>,
}

const THREAD_PAGE: i64 = 100;

/// Read one conversation with its latest messages (recorded as access to the contact's data).
#[utoipa::path(get, path = "/api/v1/conversations/{id}", operation_id = "get_conversation", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id"), ThreadQuery),
    responses(
        (status = 200, body = ConversationOut),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["conversations:read"])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
    Query(q): Query<ThreadQuery>,
) -> ApiResult<Json<ConversationOut>> {
    let messaging = Messaging::from_ref(&state);
    api.require(Scope::ConversationsRead)?;
    let tenant = api.tenant_id;
    let before = q.before.as_deref().map(parse_cursor).transpose()?;
    let now = state.now();
    let mut tx = api.begin_at(&state, now).await?;
    let conv = db_conv::get(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let contact = db::contacts::get(&mut tx, conv.contact_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let channel = db::channels::get(&mut tx, conv.channel_id).await?;
    let mut rows = messages::thread(&mut tx, id, before, THREAD_PAGE).await?;
    // The same access record the portal's conversation page writes.
    tx.audit(
        "conversation.viewed",
        &id.to_string(),
        json!({ "via": "api", "token": api.token_id }),
    )
    .await?;
    tx.commit().await?;
    let older_cursor = (rows.len() as i64 == THREAD_PAGE)
        .then(|| rows.last().map(|m| cursor(m.sent_at, m.id)))
        .flatten();
    rows.reverse();
    let clock = Clock::new("UTC", now);
    let mut out = Vec::with_capacity(rows.len());
    for m in &rows {
        let tm = view::thread_message(&messaging, tenant, &clock, m).await;
        out.push(MessageOut {
            id: m.id,
            direction: m.direction.clone(),
            author: m.author.clone(),
            kind: m.kind.clone(),
            text: tm.text,
            status: m.status.clone(),
            error: m.error.clone(),
            deleted: m.deleted_at.is_some(),
            edited: m.edited_at.is_some(),
            sent_at: ts(m.sent_at),
        });
    }
    let channel_kind = channel.map(|c| c.kind).unwrap_or_default();
    Ok(Json(ConversationOut {
        id,
        window_open: review_rules::window_open(&channel_kind, conv.last_inbound_at, now),
        channel_kind,
        status: conv.status,
        ownership: conv.ownership,
        assigned_to: conv.assigned_to,
        labels: conv.labels,
        channel_id: conv.channel_id,
        contact: ContactOut::from_view(view::contact(&messaging, tenant, &contact).await),
        messages: out,
        older_cursor,
    }))
}

/// A text, or an approved template with its parameters (allowed outside the 24-hour window).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    /// Free text (at most 4,096 characters).
    pub(crate) text: Option<String>,
    /// An approved template of the conversation's channel (instead of `text`).
    pub(crate) template_id: Option<Uuid>,
    /// The template's parameters, in order.
    #[serde(default)]
    pub(crate) params: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct SendResponse {
    pub(crate) message_id: Uuid,
    pub(crate) conversation_id: Uuid,
    /// `queued`: the outbox sends it; follow it on the conversation.
    pub(crate) status: String,
}

/// Queue a message. With an `Idempotency-Key`, a repeated request returns the first
/// response and sends nothing more.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", operation_id = "send_message", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Up to 200 characters; a replay returns the first response")),
    request_body = SendRequest,
    responses(
        (status = 202, body = SendResponse),
        (status = 400, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["messages:send"])))]
pub(crate) async fn send(
    State(state): State<AppState>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let messaging = Messaging::from_ref(&state);
    api.require(Scope::MessagesSend)?;
    let req: SendRequest = parse_json(&body)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| ApiError::bad_request("api.problem.idempotency_key"))?;
            Some(k.to_owned())
        }
    };
    let author = api
        .created_by
        .ok_or_else(|| ApiError::conflict("api.problem.creator_gone"))?;
    let tenant = api.tenant_id;
    let mut tx = api.begin(&state).await?;
    if let Some(k) = &key {
        let mut h = Sha256::new();
        h.update(id.as_bytes());
        h.update(&body);
        let request_hash = h.finalize();
        if let Some(stored) =
            api_tokens::claim_key(&mut tx, tenant, k, api.token_id, &request_hash, state.now())
                .await?
        {
            if stored.request_hash != request_hash.as_slice() {
                return Err(ApiError::unprocessable("api.problem.idempotency_mismatch"));
            }
            let mut resp = (
                StatusCode::from_u16(stored.status as u16).unwrap_or(StatusCode::ACCEPTED),
                Json(stored.response),
            )
                .into_response();
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(resp);
        }
    }
    let queued = match (req.text.as_deref(), req.template_id) {
        (Some(text), None) => {
            send::queue_text(
                &messaging,
                &mut tx,
                tenant,
                id,
                text,
                Writer::Member(author),
            )
            .await
        }
        (None, Some(tpl)) => {
            send::queue_template(&messaging, &mut tx, tenant, id, tpl, &req.params, author).await
        }
        _ => return Err(ApiError::unprocessable("api.problem.text_or_template")),
    };
    let message_id = match queued {
        Ok(m) => m,
        Err(QueueError::Refused(send::Refusal::NotFound)) => return Err(ApiError::not_found()),
        Err(QueueError::Refused(r)) => return Err(ApiError::unprocessable(r.message_key())),
        Err(QueueError::Internal(e)) => return Err(e.into()),
    };
    // As when staff reply from the portal: a person (here, their system) answered, so the
    // AI stops drafting in this conversation until it is handed back.
    db_conv::set_ownership(&mut tx, id, Ownership::AFTER_STAFF_WROTE).await?;
    let out = SendResponse {
        message_id,
        conversation_id: id,
        status: "queued".into(),
    };
    let value = serde_json::to_value(&out).map_err(anyhow::Error::from)?;
    if let Some(k) = &key {
        api_tokens::finish_key(&mut tx, k, StatusCode::ACCEPTED.as_u16(), &value).await?;
    }
    tx.audit(
        if req.template_id.is_some() {
            "message.template_sent"
        } else {
            "message.sent"
        },
        &id.to_string(),
        send::audit_detail(message_id),
    )
    .await?;
    tx.commit().await?;
    state
        .live
        .publish(tenant, &live::Event::Conversation { id })
        .await;
    Ok((StatusCode::ACCEPTED, Json(value)).into_response())
}
