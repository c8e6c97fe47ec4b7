//! A tenant's MCP servers and the tool policy: adding a server (secret sealed), testing the
//! connection, pinning tool listings, and executing approved write calls.

use std::{sync::Arc, time::Instant};

use axum::extract::FromRef;
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Auth, Guard, McpError, RemoteTool, Session,
    client::{MAX_RESULT_CHARS, header_name_ok},
    guard::REQUEST_TIMEOUT,
};
use crate::domain::mcp::CallState;
use crate::{
    clock::SharedClock,
    config::Config,
    crypto::Aad,
    crypto::Keyring,
    db::{
        self, ai as db_ai,
        audit::Actor,
        jobs::{self, BackgroundJob, JobMeta, Outcome},
        mcp::{self as db_mcp, NewServer, Server},
    },
    live::{self, Live},
    state::AppState,
};

/// What the MCP registry uses, and nothing else: the pool, the keyring (server secrets, call
/// arguments and results are sealed), the clock, live events, and the configuration the SSRF
/// guard is built from. Built from the process's state with `FromRef`: the `mcp_call` job's
/// `Context`, `State<Mcp>` in the integrations handlers, `Mcp::from_ref(&state)` in drafting.
#[derive(Clone)]
pub(crate) struct Mcp {
    /// Connected as the non-owner application role: row-level security applies.
    pub(crate) db: PgPool,
    pub(crate) keys: Keyring,
    pub(crate) clock: SharedClock,
    pub(crate) live: Live,
    config: Arc<Config>,
}

impl Mcp {
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

impl FromRef<AppState> for Mcp {
    fn from_ref(state: &AppState) -> Mcp {
        Mcp {
            db: state.db.clone(),
            keys: state.keys.clone(),
            clock: state.clock.clone(),
            live: state.live.clone(),
            config: state.config.clone(),
        }
    }
}

/// The job that runs one approved write call.
pub(crate) const MCP_CALL: &str = "mcp_call";

/// The `mcp_call` job: one approved write call, run at most once (one attempt: a failed
/// call is for a person to look at, never retried blind).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct McpCall {
    pub(crate) tenant_id: Uuid,
    #[serde(rename = "subject_id")]
    pub(crate) call_id: Uuid,
}

impl BackgroundJob for McpCall {
    const KIND: &'static str = MCP_CALL;
    const MAX_ATTEMPTS: i32 = 1;
    type Context = Mcp;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("mcp_call:{}", self.call_id))
    }

    async fn run(self, state: &Mcp, _: &JobMeta) -> anyhow::Result<Outcome> {
        run_call(state, self.tenant_id, self.call_id)
            .await
            .map(|()| Outcome::Done)
    }
}

pub(crate) fn guard(state: &Mcp) -> Guard {
    Guard::for_config(&state.config)
}

fn secret_aad(server_id: Uuid) -> Aad<'static> {
    Aad::new("mcp_servers", "secret", server_id)
}

/// What an admin typed into the "add server" form.
pub(crate) struct NewServerInput {
    pub(crate) name: String,
    pub(crate) url: String,
    /// `none`, `bearer` or `header`.
    pub(crate) auth_kind: String,
    pub(crate) auth_header: String,
    pub(crate) secret: String,
}

/// Validates and stores a server (checked by the guard now, and again at every connection).
/// Returns the new server's id, or the message key to show.
pub(crate) async fn add_server(
    state: &Mcp,
    tenant_id: Uuid,
    actor: &Actor,
    f: &NewServerInput,
) -> Result<Uuid, &'static str> {
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err("mcp.name.invalid");
    }
    if f.url.trim().len() > 2000 {
        return Err("mcp.url.invalid");
    }
    let url = match guard(state).check(&f.url).await {
        Ok(v) => v.url,
        Err(e) => {
            tracing::info!(tenant = %tenant_id, reason = %e, "MCP server URL refused");
            return Err(e.message_key());
        }
    };
    let secret = f.secret.trim();
    let header = f.auth_header.trim();
    match f.auth_kind.as_str() {
        "none" => {}
        "bearer" if !secret.is_empty() => {}
        "header" if !secret.is_empty() && header_name_ok(header) => {}
        "bearer" | "header" => return Err("mcp.auth.invalid"),
        _ => return Err("mcp.auth.invalid"),
    }
    let id = Uuid::now_v7();
    let secret_sealed = if f.auth_kind == "none" {
        None
    } else {
        Some(
            state
                .keys
                .seal_tenant_str(tenant_id, secret_aad(id), secret)
                .await
                .map_err(|_| "error.internal")?,
        )
    };
    let now = state.now();
    let inner = async {
        let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
        let inserted = db_mcp::insert_server(
            &mut tx,
            NewServer {
                id,
                tenant_id,
                name,
                url: url.as_str(),
                auth_kind: &f.auth_kind,
                auth_header: (f.auth_kind == "header").then_some(header),
                secret_sealed,
            },
            now,
        )
        .await?;
        if inserted {
            // The host only: never the path, query or secret.
            tx.audit(
                "mcp.server_added",
                name,
                json!({ "id": id, "host": url.host_str(), "auth": f.auth_kind }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok::<bool, sqlx::Error>(inserted)
    };
    match inner.await {
        Ok(true) => Ok(id),
        Ok(false) => Err("mcp.name.taken"),
        Err(e) => {
            tracing::error!(error = %e, "storing an MCP server failed");
            Err("error.internal")
        }
    }
}

/// The server's credentials, opened from the tenant key.
pub(crate) async fn auth(state: &Mcp, s: &Server) -> anyhow::Result<Auth> {
    let secret = match &s.secret_sealed {
        Some(sealed) => Some(SecretString::from(
            state
                .keys
                .open_tenant_str(s.tenant_id, secret_aad(s.id), sealed)
                .await?,
        )),
        None => None,
    };
    Ok(match (s.auth_kind.as_str(), secret) {
        ("bearer", Some(t)) => Auth::Bearer(t),
        ("header", Some(v)) => Auth::Header {
            name: s.auth_header.clone().unwrap_or_default(),
            value: v,
        },
        _ => Auth::None,
    })
}

/// Connects to a server (guard, initialize), recording health on failure.
pub(crate) async fn connect(state: &Mcp, s: &Server) -> Result<Session, McpError> {
    let auth = auth(state, s)
        .await
        .map_err(|_| McpError::Failed("stored credentials unreadable".into()))?;
    let r = Session::connect(&guard(state), &s.url, &auth).await;
    if let Err(e) = &r {
        // Ours, at warn, with the server's id: never the address the tenant typed.
        tracing::warn!(tenant = %s.tenant_id, server = %s.id, error = %e.describe(), "MCP connection failed");
        let _ = record_health(state, s, Some(&e.describe())).await;
    }
    r
}

async fn record_health(state: &Mcp, s: &Server, error: Option<&str>) -> anyhow::Result<()> {
    let mut tx = db::begin_tenant(&state.db, s.tenant_id).await?;
    db_mcp::record_health(&mut tx, s.id, error, state.now()).await?;
    tx.commit().await?;
    Ok(())
}

/// What a listing changed against the pins.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncReport {
    pub(crate) added: Vec<String>,
    pub(crate) changed: Vec<String>,
    pub(crate) removed: Vec<String>,
}

/// Compares the server's listing with the pinned tools: new tools are stored disallowed;
/// a tool whose name, description or schema differs from its pin is disabled until an admin
/// re-approves it; a tool no longer listed is never offered.
pub(crate) async fn sync_tools(
    state: &Mcp,
    s: &Server,
    listed: &[RemoteTool],
) -> anyhow::Result<SyncReport> {
    let now = state.now();
    let mut report = SyncReport::default();
    let mut tx = db::TenantTx::begin(&state.db, s.tenant_id, Actor::system(), now).await?;
    let pinned = db_mcp::tools(&mut tx, Some(s.id)).await?;
    for t in listed {
        let fp = t.fingerprint();
        match pinned.iter().find(|p| p.name == t.name) {
            None => {
                db_mcp::insert_tool(
                    &mut tx,
                    s.tenant_id,
                    s.id,
                    &t.name,
                    &t.description,
                    &t.input_schema,
                    &fp,
                    now,
                )
                .await?;
                report.added.push(t.name.clone());
            }
            Some(p) if p.fingerprint == fp => {
                if p.changed_fingerprint.is_some() || p.removed_at.is_some() {
                    db_mcp::clear_changed(&mut tx, s.id, &t.name).await?;
                }
            }
            Some(p) => {
                if p.changed_fingerprint.as_deref() != Some(fp.as_str()) || p.allowed {
                    db_mcp::mark_changed(
                        &mut tx,
                        s.id,
                        &t.name,
                        &t.description,
                        &t.input_schema,
                        &fp,
                        now,
                    )
                    .await?;
                    report.changed.push(t.name.clone());
                }
            }
        }
    }
    for p in &pinned {
        if p.removed_at.is_none() && !listed.iter().any(|t| t.name == p.name) {
            db_mcp::mark_removed(&mut tx, s.id, &p.name, now).await?;
            report.removed.push(p.name.clone());
        }
    }
    db_mcp::record_health(&mut tx, s.id, None, now).await?;
    if !report.changed.is_empty() {
        tracing::warn!(tenant = %s.tenant_id, server = %s.id, tools = ?report.changed, "MCP tools changed; disabled until re-approved");
        tx.audit(
            "mcp.tools_changed",
            &s.name,
            json!({ "tools": report.changed }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// "Test connection": initialize, list the tools, pin them; records health either way.
pub(crate) async fn test_connection(
    state: &Mcp,
    s: &Server,
) -> Result<(Vec<RemoteTool>, SyncReport), McpError> {
    let session = connect(state, s).await?;
    let listed = session.list_tools().await;
    session.close().await;
    let listed = match listed {
        Ok(l) => l,
        Err(e) => {
            let _ = record_health(state, s, Some(&e.describe())).await;
            return Err(e);
        }
    };
    let report = sync_tools(state, s, &listed)
        .await
        .map_err(|_| McpError::Failed("could not store the tool list".into()))?;
    Ok((listed, report))
}

/// Runs an approved write call once: `approved → running` is committed before the request,
/// so a crash or a second run can never send it twice (it stays `running` for a person to
/// check, like a send whose outcome is unknown).
async fn run_call(state: &Mcp, tenant_id: Uuid, call_id: Uuid) -> anyhow::Result<()> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(call) = db_mcp::call(&mut tx, call_id).await? else {
        return Ok(());
    };
    if !db_mcp::transition(
        &mut tx,
        call.id,
        CallState::Approved,
        CallState::Running,
        None,
        now,
    )
    .await?
    {
        return Ok(()); // ran already (or was never approved)
    }
    let server = match call.server_id {
        Some(id) => db_mcp::server(&mut tx, id).await?,
        None => None,
    };
    let tool_ok = match &server {
        Some(s) => db_mcp::tools(&mut tx, Some(s.id))
            .await?
            .iter()
            .any(|t| t.name == call.tool && t.usable() && t.risk == "write"),
        None => false,
    };
    tx.commit().await?;

    let args_text = state
        .keys
        .open_str(
            tenant_id,
            call.contact_id,
            Aad::new("mcp_tool_calls", "arguments", call.id),
            &call.arguments_sealed,
        )
        .await?;
    let arguments: serde_json::Value = serde_json::from_str(&args_text)?;
    let started = Instant::now();
    let outcome = match server {
        Some(s) if s.enabled && tool_ok => match connect(state, &s).await {
            Ok(session) => {
                let r = session.call(&call.tool, &arguments, REQUEST_TIMEOUT).await;
                session.close().await;
                r
            }
            Err(e) => Err(e),
        },
        _ => Err(McpError::Failed(
            crate::mcp::client::NO_LONGER_ENABLED.into(),
        )),
    };
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let now = state.now();
    let (state_name, text, error) = match &outcome {
        Ok(text) => (CallState::Done, text.clone(), None),
        Err(McpError::Tool(text)) => (
            CallState::Failed,
            text.clone(),
            Some(McpError::Tool(String::new()).describe()),
        ),
        Err(e) => (CallState::Failed, String::new(), Some(e.describe())),
    };
    let result_sealed = if text.is_empty() {
        None
    } else {
        let text: String = text.chars().take(MAX_RESULT_CHARS).collect();
        Some(
            state
                .keys
                .seal_str(
                    tenant_id,
                    call.contact_id,
                    Aad::new("mcp_tool_calls", "result", call.id),
                    &text,
                )
                .await?,
        )
    };
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, Actor::system(), now).await?;
    db_mcp::finish_call(
        &mut tx,
        call.id,
        state_name,
        result_sealed.as_deref(),
        error.as_deref(),
        latency_ms,
        now,
    )
    .await?;
    // The server received this contact's data (the arguments).
    db_ai::record_recipient(
        &mut tx,
        tenant_id,
        call.contact_id,
        "mcp_server",
        &call.server_name,
        &call.tool,
        now,
    )
    .await?;
    tx.audit(
        "mcp.call_executed",
        &call.conversation_id.to_string(),
        json!({ "call": call.id, "tool": call.tool, "outcome": state_name.as_str() }),
    )
    .await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Review).await;
    Ok(())
}

/// Enqueues the execution of an approved call (same transaction as the approval).
pub(crate) async fn enqueue_call(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    call_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    jobs::enqueue(conn, &McpCall { tenant_id, call_id }, now, now).await?;
    jobs::notify_workers(conn).await?;
    Ok(())
}
