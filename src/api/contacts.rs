//! Contacts: read (`conversations:read`) and update the profile staff keep — name, notes,
//! tags (`contacts:write`), with the portal's limits.

use crate::messaging::Messaging;
use axum::extract::FromRef;
use axum::{
    Json,
    extract::{Path, State},
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
    crypto::Aad,
    db::{self},
    domain::labels::parse_labels,
    messaging::view::{self, ContactView},
    state::AppState,
};

#[derive(Serialize, ToSchema)]
pub(crate) struct ContactOut {
    pub(crate) id: Uuid,
    pub(crate) name: Option<String>,
    /// Digits only, with the country code (E.164 without `+`).
    pub(crate) phone: Option<String>,
    pub(crate) notes: String,
    pub(crate) tags: Vec<String>,
    /// Erased on request: nothing of it is readable any more.
    pub(crate) erased: bool,
    /// Processing restricted on request: nothing may be sent to it.
    pub(crate) restricted: bool,
}

impl ContactOut {
    pub(crate) fn from_view(v: ContactView) -> ContactOut {
        ContactOut {
            id: v.id,
            name: if v.erased { None } else { v.name },
            phone: if v.erased { None } else { v.phone },
            notes: if v.erased { String::new() } else { v.notes },
            tags: v.tags,
            erased: v.erased,
            restricted: v.restricted,
        }
    }
}

async fn load(state: &AppState, tenant: Uuid, id: Uuid) -> ApiResult<ContactOut> {
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let c = db::contacts::get(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(ContactOut::from_view(
        view::contact(&Messaging::from_ref(state), tenant, &c).await,
    ))
}

/// Read a contact.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", operation_id = "get_contact", tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id")),
    responses(
        (status = 200, body = ContactOut),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["conversations:read"])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ContactOut>> {
    api.require(Scope::ConversationsRead)?;
    Ok(Json(load(&state, api.tenant_id, id).await?))
}

/// Fields to change; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactPatch {
    /// At most 120 characters (empty: keep the current name).
    pub(crate) name: Option<String>,
    /// At most 4,000 characters.
    pub(crate) notes: Option<String>,
    /// At most 10 tags of 30 characters, lowercased.
    pub(crate) tags: Option<Vec<String>>,
}

/// Update a contact's profile.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", operation_id = "update_contact", tag = "contacts",
    params(("id" = Uuid, Path, description = "Contact id")),
    request_body = ContactPatch,
    responses(
        (status = 200, body = ContactOut),
        (status = 401, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, body = crate::api::openapi::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["contacts:write"])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    api: ApiCtx,
    Path(id): Path<Uuid>,
    ApiJson(p): ApiJson<ContactPatch>,
) -> ApiResult<Json<ContactOut>> {
    let messaging = Messaging::from_ref(&state);
    api.require(Scope::ContactsWrite)?;
    let tenant = api.tenant_id;
    if p.notes.as_deref().is_some_and(|n| n.chars().count() > 4000)
        || p.name.as_deref().is_some_and(|n| n.chars().count() > 120)
    {
        return Err(ApiError::unprocessable("api.problem.too_long"));
    }
    let tags = match &p.tags {
        Some(t) if t.iter().any(|x| x.contains(',')) => {
            return Err(ApiError::unprocessable("labels.invalid"));
        }
        Some(t) => Some(parse_labels(&t.join(",")).map_err(ApiError::unprocessable)?),
        None => None,
    };
    let now = state.now();
    let mut tx = api.begin_at(&state, now).await?;
    let c = db::contacts::get(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if c.erased_at.is_some() {
        return Err(ApiError::conflict("reply.erased"));
    }
    if p.notes.is_some() || tags.is_some() {
        let current = view::contact(&messaging, tenant, &c).await;
        let notes = p.notes.as_deref().map(str::trim).unwrap_or(&current.notes);
        let profile = json!({ "notes": notes }).to_string();
        let sealed = state
            .keys
            .seal_str(tenant, id, Aad::new("contacts", "profile", id), &profile)
            .await?;
        db::contacts::set_profile(&mut tx, id, &sealed, tags.as_ref().unwrap_or(&c.tags), now)
            .await?;
    }
    if let Some(name) = p.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        let sealed = state
            .keys
            .seal_str(tenant, id, Aad::new("contacts", "name", id), name)
            .await?;
        let tokens = state.keys.blind_words(tenant, name).await?;
        db::contacts::set_name(&mut tx, id, &sealed, &tokens, true, now).await?;
    }
    tx.audit(
        "contact.profile_edited",
        &id.to_string(),
        json!({ "via": "api" }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(load(&state, tenant, id).await?))
}
