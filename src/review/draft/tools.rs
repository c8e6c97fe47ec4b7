//! The tenant's MCP tools while drafting: which are offered to the model (allowed, pinned,
//! still listed), and the loop that runs the read calls and prepares the write calls.

use std::time::Instant;

use uuid::Uuid;

use crate::{
    ai::{self, AiError, ChatMessage, Part, Role, ToolSpec},
    db::{self, mcp as db_mcp},
    domain::mcp::CallState,
    mcp::{McpError, Session, registry},
    review::Review,
};

/// Model turns with tool calls before a final answer is forced (tools withdrawn).
const MAX_TOOL_STEPS: usize = 4;
/// Tool calls per drafting turn, across steps.
const MAX_TOOL_CALLS: usize = 8;
/// Each read call's time limit (the guard's request cap applies inside it too).
const TOOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// One tool call made (read) or prepared (write) while drafting, in clear until `store`
/// seals it under the contact's key.
pub(super) struct RecordedCall {
    pub(crate) id: Uuid,
    pub(crate) server_id: Uuid,
    pub(crate) server_name: String,
    pub(crate) tool: String,
    pub(crate) risk: String,
    /// Ok, Error, Timeout or Refused (a read), Pending (a write).
    pub(crate) state: CallState,
    pub(crate) arguments: serde_json::Value,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) latency_ms: i32,
}

pub(super) struct Offered {
    pub(super) spec: ToolSpec,
    session: usize,
    server_id: Uuid,
    server_name: String,
    tool: String,
    risk: String,
}

/// Live sessions to the tenant's enabled servers and the tools offered from them: allowed,
/// unchanged since approval (the listing is compared with the pins right now), still listed.
#[derive(Default)]
pub(super) struct Toolbox {
    sessions: Vec<Session>,
    pub(super) offered: Vec<Offered>,
}

impl Toolbox {
    pub(super) async fn open(state: &Review, tenant_id: Uuid) -> Toolbox {
        let mut tb = Toolbox::default();
        let servers = async {
            let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
            let servers = db_mcp::servers(&mut tx).await?;
            let tools = db_mcp::tools(&mut tx, None).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((servers, tools))
        };
        let Ok((servers, tools)) = servers.await else {
            return tb;
        };
        for s in servers.iter().filter(|s| s.enabled) {
            if !tools.iter().any(|t| t.server_id == s.id && t.usable()) {
                continue; // nothing allowed here: don't even connect
            }
            let Ok(session) = registry::connect(&state.mcp, s).await else {
                continue;
            };
            let listed = match session.list_tools().await {
                Ok(l) => l,
                Err(_) => {
                    session.close().await;
                    continue;
                }
            };
            // A changed listing disables the changed tools before anything is offered.
            if registry::sync_tools(&state.mcp, s, &listed).await.is_err() {
                session.close().await;
                continue;
            }
            let fresh = {
                let Ok(mut tx) = db::begin_tenant(&state.db, tenant_id).await else {
                    session.close().await;
                    continue;
                };
                let t = db_mcp::tools(&mut tx, Some(s.id)).await.unwrap_or_default();
                let _ = tx.commit().await;
                t
            };
            let index = tb.sessions.len();
            for t in fresh.into_iter().filter(|t| t.usable()) {
                if !listed.iter().any(|l| l.name == t.name) {
                    continue;
                }
                let mut name: String = t
                    .name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .take(56)
                    .collect();
                if name.is_empty() || tb.offered.iter().any(|o| o.spec.name == name) {
                    name = format!("s{index}_{name}");
                }
                tb.offered.push(Offered {
                    spec: ToolSpec {
                        name,
                        description: t.description.clone(),
                        input_schema: t.input_schema.clone(),
                    },
                    session: index,
                    server_id: s.id,
                    server_name: s.name.clone(),
                    tool: t.name.clone(),
                    risk: t.risk.clone(),
                });
            }
            tb.sessions.push(session);
        }
        tb
    }

    pub(super) async fn close(self) {
        for s in self.sessions {
            s.close().await;
        }
    }
}

/// Asks the model, runs the read calls it makes and prepares the write calls, feeds the
/// results back, until it answers (or the step limit forces an answer: tools declared but
/// forbidden).
pub(super) async fn tool_loop(
    provider: &dyn ai::Provider,
    mut req: ai::ChatRequest,
    toolbox: &Toolbox,
    calls: &mut Vec<RecordedCall>,
) -> Result<(ai::ChatResponse, ai::Usage), AiError> {
    let mut usage = ai::Usage::default();
    let mut steps = 0;
    loop {
        let resp = provider.chat(&req).await?;
        usage.input_tokens += resp.usage.input_tokens;
        usage.output_tokens += resp.usage.output_tokens;
        if resp.tool_calls.is_empty()
            || req.tools.is_empty()
            || req.tool_choice == ai::ToolChoice::None
        {
            return Ok((resp, usage));
        }
        steps += 1;
        let mut parts: Vec<Part> = resp
            .text
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| Part::Text(t.clone()))
            .collect();
        parts.extend(resp.tool_calls.iter().cloned().map(Part::ToolCall));
        req.messages.push(ChatMessage {
            role: Role::Assistant,
            parts,
        });
        for tc in &resp.tool_calls {
            let content = match toolbox.offered.iter().find(|o| o.spec.name == tc.name) {
                None => "Error: no such tool.".to_owned(),
                Some(_) if calls.len() >= MAX_TOOL_CALLS => {
                    "Error: tool call limit reached; answer with what you have.".to_owned()
                }
                Some(o) if o.risk == "read" => {
                    let started = Instant::now();
                    let r = toolbox.sessions[o.session]
                        .call(&o.tool, &tc.arguments, TOOL_TIMEOUT)
                        .await;
                    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
                    let (state, result, error, content) = match r {
                        Ok(text) => (CallState::Ok, Some(text.clone()), None, text),
                        Err(McpError::Tool(text)) => (
                            CallState::Error,
                            Some(text.clone()),
                            Some(McpError::Tool(String::new()).describe()),
                            format!("Error from the tool: {text}"),
                        ),
                        Err(e) => (
                            e.outcome(),
                            None,
                            Some(e.describe()),
                            format!(
                                "Error: the tool could not be reached ({}). Do not invent its answer.",
                                e.describe()
                            ),
                        ),
                    };
                    calls.push(RecordedCall {
                        id: Uuid::now_v7(),
                        server_id: o.server_id,
                        server_name: o.server_name.clone(),
                        tool: o.tool.clone(),
                        risk: o.risk.clone(),
                        state,
                        arguments: tc.arguments.clone(),
                        result,
                        error,
                        latency_ms,
                    });
                    content
                }
                Some(o) => {
                    calls.push(RecordedCall {
                        id: Uuid::now_v7(),
                        server_id: o.server_id,
                        server_name: o.server_name.clone(),
                        tool: o.tool.clone(),
                        risk: o.risk.clone(),
                        state: CallState::Pending,
                        arguments: tc.arguments.clone(),
                        result: None,
                        error: None,
                        latency_ms: 0,
                    });
                    "Prepared, not done yet: this action waits for a staff member to approve it. \
                     Tell the customer it will be confirmed shortly; do not say it is done."
                        .to_owned()
                }
            };
            req.messages.push(ChatMessage::tool_result(
                tc.id.clone(),
                tc.name.clone(),
                content,
            ));
        }
        if steps >= MAX_TOOL_STEPS || calls.len() >= MAX_TOOL_CALLS {
            // Force an answer. The tools stay declared, since the history now holds tool
            // calls and results (Anthropic refuses those without their tools); their use is
            // forbidden instead.
            req.tool_choice = ai::ToolChoice::None;
        }
    }
}
