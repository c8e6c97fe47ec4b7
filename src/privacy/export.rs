//! Access and portability exports: everything held about one contact (profile, messages,
//! media still held, drafts and who approved them, recipients, requests), as JSON with a
//! manifest (record counts and a SHA-256 per section) and as readable HTML. Nothing about
//! other contacts; staff are named only as the approvers of drafts.

use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    crypto::Aad,
    db::{self, ai as db_ai},
    messaging::view,
    privacy::Privacy,
};

/// Media larger than this is listed but not embedded in the JSON export.
pub(crate) const EMBED_MEDIA_MAX: i64 = 8 * 1024 * 1024;
pub(crate) const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ExportMessage {
    pub(crate) id: Uuid,
    pub(crate) direction: String,
    pub(crate) author: String,
    pub(crate) kind: String,
    pub(crate) text: Option<String>,
    pub(crate) sent_at: String,
    pub(crate) status: String,
    pub(crate) media: Option<Value>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ExportDraft {
    pub(crate) id: Uuid,
    pub(crate) state: String,
    pub(crate) created_at: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) prompt_version: String,
    pub(crate) ai_text: Option<String>,
    pub(crate) approved_text: Option<String>,
    pub(crate) edited: bool,
    pub(crate) decided_by: Option<String>,
    pub(crate) decided_at: Option<String>,
    pub(crate) reject_reason: Option<String>,
    pub(crate) escalation_reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Bundle {
    pub(crate) manifest: Value,
    pub(crate) subject: Value,
    pub(crate) messages: Vec<ExportMessage>,
    pub(crate) drafts: Vec<ExportDraft>,
    pub(crate) tool_calls: Vec<Value>,
    pub(crate) recipients: Vec<Value>,
    pub(crate) requests: Vec<Value>,
    pub(crate) processing: Value,
}

/// A tool call made while drafting for the contact (arguments and result sealed).
#[derive(sqlx::FromRow)]
struct CallRow {
    id: Uuid,
    server_name: String,
    tool: String,
    risk: String,
    state: String,
    arguments_sealed: Vec<u8>,
    result_sealed: Option<Vec<u8>>,
    created_at: OffsetDateTime,
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn section<T: Serialize>(name: &str, v: &T, count: usize) -> (String, Value) {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    (
        name.to_owned(),
        json!({ "records": count, "sha256": hex::encode(Sha256::digest(&bytes)) }),
    )
}

/// Builds the contact's bundle. `None` if the contact doesn't exist (or was erased).
pub(crate) async fn contact_bundle(
    state: &Privacy,
    tenant_id: Uuid,
    contact_id: Uuid,
    request_id: Option<Uuid>,
) -> anyhow::Result<Option<Bundle>> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(contact) = db::contacts::get(&mut tx, contact_id).await? else {
        return Ok(None);
    };
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM messages WHERE contact_id = $1 ORDER BY sent_at, id")
            .bind(contact_id)
            .fetch_all(&mut *tx)
            .await?;
    let mut messages = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(m) = db::messages::get(&mut tx, id).await? else {
            continue;
        };
        let text = match m.body_sealed.as_deref() {
            Some(b) => Some(
                state
                    .keys
                    .open_str(tenant_id, contact_id, Aad::new("messages", "body", m.id), b)
                    .await?,
            ),
            None => None,
        };
        let media = match &m.media_kind {
            Some(kind) => {
                let mut v = json!({ "kind": kind, "mime": m.media_mime, "state": m.media_state, "size": m.media_size, "deleted_at": m.media_deleted_at.map(ts) });
                if let (Some(key), Some(size)) = (m.media_key.as_deref(), m.media_size)
                    && size <= EMBED_MEDIA_MAX
                    && let Some(sealed) = state.media.get(key).await?
                {
                    let bytes = state
                        .keys
                        .open(
                            tenant_id,
                            contact_id,
                            Aad::new("media", "bytes", m.id),
                            &sealed,
                        )
                        .await?;
                    v["base64"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                }
                Some(v)
            }
            None => None,
        };
        messages.push(ExportMessage {
            id: m.id,
            direction: m.direction,
            author: m.author,
            kind: m.kind,
            text,
            sent_at: ts(m.sent_at),
            status: m.status,
            media,
        });
    }
    let draft_ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM drafts WHERE contact_id = $1 ORDER BY created_at")
            .bind(contact_id)
            .fetch_all(&mut *tx)
            .await?;
    let mut drafts = Vec::new();
    for id in draft_ids {
        let Some(d) = db_ai::get_draft(&mut tx, id).await? else {
            continue;
        };
        let decided_by = match d.decided_by {
            Some(u) => db::users::user_by_id(&state.db, u).await?.map(|u| u.email),
            None => None,
        };
        drafts.push(ExportDraft {
            id: d.id,
            state: d.state.clone(),
            created_at: ts(d.created_at),
            provider: d.provider.clone(),
            model: d.model.clone(),
            prompt_version: d.prompt_version.clone(),
            ai_text: view::original_text(&state.messaging, tenant_id, &d).await?,
            approved_text: view::final_text(&state.messaging, tenant_id, &d).await?,
            edited: d.edited,
            decided_by,
            decided_at: d.decided_at.map(ts),
            reject_reason: d.reject_reason.clone(),
            escalation_reason: d.escalation_reason.clone(),
        });
    }
    // Calls to the tenant's connected systems made while drafting for this contact.
    let call_rows: Vec<CallRow> = sqlx::query_as(
        "SELECT id, server_name, tool, risk, state, arguments_sealed, result_sealed, created_at FROM mcp_tool_calls WHERE contact_id = $1 ORDER BY created_at, seq",
    )
    .bind(contact_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut tool_calls = Vec::with_capacity(call_rows.len());
    for CallRow {
        id,
        server_name: server,
        tool,
        risk,
        state: call_state,
        arguments_sealed: args,
        result_sealed: result,
        created_at: at,
    } in call_rows
    {
        let open = |column: &'static str, sealed: Vec<u8>| async move {
            state
                .keys
                .open_str(
                    tenant_id,
                    contact_id,
                    Aad::new("mcp_tool_calls", column, id),
                    &sealed,
                )
                .await
        };
        let arguments = open("arguments", args).await?;
        let result = match result {
            Some(r) => Some(open("result", r).await?),
            None => None,
        };
        tool_calls.push(json!({ "id": id, "server": server, "tool": tool, "risk": risk, "state": call_state, "arguments": arguments, "result": result, "at": ts(at) }));
    }
    let recipients: Vec<Value> = db_ai::recipients(&mut tx, contact_id)
        .await?
        .into_iter()
        .map(|r| json!({ "kind": r.kind, "name": r.name, "detail": r.detail, "first_at": ts(r.first_at), "last_at": ts(r.last_at), "times": r.times }))
        .collect();
    let requests: Vec<Value> = sqlx::query_as::<_, (Uuid, String, String, String, OffsetDateTime, OffsetDateTime)>(
        "SELECT id, kind, legal_basis, status, received_at, due_at FROM dsr_requests WHERE contact_id = $1 ORDER BY received_at",
    )
    .bind(contact_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(id, kind, basis, status, received, due)| json!({ "id": id, "kind": kind, "legal_basis": basis, "status": status, "received_at": ts(received), "due_at": ts(due) }))
    .collect();
    tx.commit().await?;

    let v = view::contact(&state.messaging, tenant_id, &contact).await;
    let subject = json!({
        "id": contact.id, "name": v.name, "phone": v.phone, "notes": v.notes, "tags": v.tags,
        "created_at": ts(contact.created_at), "processing_restricted": contact.restricted_at.map(ts),
    });
    let processing = json!({
        "controller": "the tenant (business or clinic) you wrote to",
        "processor": "SigmaAI",
        "purposes": ["answer your WhatsApp messages", "draft replies for the tenant's staff to review", "look up information in the tenant's own systems"],
        "legal_basis": "performance of a contract / the tenant's legitimate interest, as the tenant declares",
        "retention": "messages per the tenant's plan (1-3 years by default) or until erasure; media deleted after it is handled",
        "recipients": "listed under recipients",
        "rights": "access, rectification, erasure, restriction, portability, objection, review of automated decisions; complaints to your data protection authority (ANPD in Brazil)",
    });
    let sections: serde_json::Map<String, Value> = [
        section("subject", &subject, 1),
        section("messages", &messages, messages.len()),
        section("drafts", &drafts, drafts.len()),
        section("tool_calls", &tool_calls, tool_calls.len()),
        section("recipients", &recipients, recipients.len()),
        section("requests", &requests, requests.len()),
    ]
    .into_iter()
    .collect();
    let manifest = json!({
        "schema_version": SCHEMA_VERSION,
        "generated_at": ts(state.now()),
        "tenant_id": tenant_id,
        "contact_id": contact_id,
        "request_id": request_id,
        "sections": sections,
    });
    Ok(Some(Bundle {
        manifest,
        subject,
        messages,
        drafts,
        tool_calls,
        recipients,
        requests,
        processing,
    }))
}

impl Bundle {
    /// A subject field as text (for the HTML copy).
    pub(crate) fn subject_field(&self, key: &str) -> String {
        match self.subject.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            Some(v) => v.to_string(),
        }
    }

    pub(crate) fn recipient_lines(&self) -> Vec<String> {
        self.recipients
            .iter()
            .map(|r| {
                format!(
                    "{} ({}), {}",
                    r["name"].as_str().unwrap_or(""),
                    r["kind"].as_str().unwrap_or(""),
                    r["last_at"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

impl ExportMessage {
    pub(crate) fn media_line(&self) -> String {
        match &self.media {
            Some(m) => format!(
                "{} {} {}",
                m["kind"].as_str().unwrap_or(""),
                m["state"].as_str().unwrap_or(""),
                m["deleted_at"]
                    .as_str()
                    .map(|d| format!("(deleted {d})"))
                    .unwrap_or_default()
            ),
            None => String::new(),
        }
    }
}
