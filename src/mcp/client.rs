//! Talking to one MCP server: connect (initialize), list tools, call a tool — each through
//! the [`guard`](super::guard) and each time-limited.

use std::{collections::HashMap, sync::Arc, time::Duration};

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, ContentBlock},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::mcp::CallState;

use super::{
    guard::{Guard, GuardError, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT},
    transport::GuardedHttp,
};

/// How we authenticate to a tenant's server. Secrets stay [`SecretString`]s until the header
/// is built, and are sent only to the URL they were configured with.
#[derive(Clone)]
pub(crate) enum Auth {
    None,
    Bearer(SecretString),
    Header { name: String, value: SecretString },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(…)"),
            Auth::Header { name, .. } => write!(f, "Header({name}: …)"),
        }
    }
}

/// Header names a tenant may not use for their secret (they'd break the protocol or smuggle
/// something else).
pub(crate) fn header_name_ok(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    HeaderName::from_bytes(lower.as_bytes()).is_ok()
        && !lower.is_empty()
        && !matches!(
            lower.as_str(),
            "host"
                | "content-type"
                | "content-length"
                | "accept"
                | "connection"
                | "transfer-encoding"
                | "cookie"
                | "mcp-session-id"
                | "mcp-protocol-version"
                | "last-event-id"
        )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum McpError {
    #[error("destination refused: {0}")]
    Guard(#[from] GuardError),
    #[error("timed out")]
    Timeout,
    /// Transport or protocol failure, described without secrets or URLs.
    #[error("{0}")]
    Failed(String),
    /// The tool ran and reported an error.
    #[error("the tool reported an error")]
    Tool(String),
}

impl McpError {
    /// The outcome recorded on a call.
    pub(crate) fn outcome(&self) -> CallState {
        match self {
            McpError::Timeout => CallState::Timeout,
            McpError::Guard(_) => CallState::Refused,
            McpError::Failed(_) | McpError::Tool(_) => CallState::Error,
        }
    }

    /// A short English description, stored on the call and the server's health column (logs
    /// read it as it is; staff read it through [`ErrorText::of`], in their language).
    pub(crate) fn describe(&self) -> String {
        match self {
            McpError::Guard(g) => format!("{REFUSED_PREFIX}{g}"),
            McpError::Timeout => TIMED_OUT.into(),
            McpError::Failed(s) => s.clone(),
            McpError::Tool(_) => TOOL_ERROR.into(),
        }
    }
}

const TIMED_OUT: &str = "timed out";
const TOOL_ERROR: &str = "the tool reported an error";
const REFUSED_PREFIX: &str = "destination refused: ";
/// A write call whose server or tool was switched off between approval and running.
pub(crate) const NO_LONGER_ENABLED: &str = "the server or tool is no longer enabled";

/// A stored MCP error as staff read it: a message key (their language) and, for a transport
/// failure we have no words for, the technical detail as recorded (shown as code, untranslated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ErrorText {
    pub(crate) key: &'static str,
    pub(crate) detail: String,
}

impl ErrorText {
    pub(crate) fn of(stored: &str) -> ErrorText {
        let key = match stored {
            TIMED_OUT => "mcp.error.timeout",
            TOOL_ERROR => "mcp.error.tool",
            NO_LONGER_ENABLED => "mcp.error.disabled",
            s if s.starts_with(REFUSED_PREFIX) => "mcp.error.refused",
            _ => {
                return ErrorText {
                    key: "mcp.error.failed",
                    detail: stored.to_owned(),
                };
            }
        };
        ErrorText {
            key,
            detail: String::new(),
        }
    }
}

/// A tool as the server lists it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RemoteTool {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) input_schema: Value,
}

impl RemoteTool {
    /// What pinning compares: name, description and schema (canonical JSON: serde_json
    /// sorts object keys).
    pub(crate) fn fingerprint(&self) -> String {
        fingerprint(&self.name, &self.description, &self.input_schema)
    }
}

pub(crate) fn fingerprint(name: &str, description: &str, schema: &Value) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(description.as_bytes());
    h.update([0]);
    h.update(schema.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// A live connection (an initialized MCP session) to one server.
pub(crate) struct Session {
    service: RunningService<RoleClient, ()>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl Session {
    /// Checks the URL with the guard, then initializes a session over the guarded client.
    pub(crate) async fn connect(
        guard: &Guard,
        url: &str,
        auth: &Auth,
    ) -> Result<Session, McpError> {
        let vetted = guard.check(url).await?;
        let last_error = Arc::new(std::sync::Mutex::new(None));
        let http = GuardedHttp {
            client: guard.client(&vetted),
            max_bytes: MAX_RESPONSE_BYTES,
            last_error: last_error.clone(),
        };
        let mut config = StreamableHttpClientTransportConfig::with_uri(vetted.url.as_str());
        config.max_json_response_size = MAX_RESPONSE_BYTES;
        config.max_sse_event_size = MAX_RESPONSE_BYTES;
        config.reinit_on_expired_session = false;
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => config = config.auth_header(token.expose_secret()),
            Auth::Header { name, value } => {
                let name = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                    .map_err(|_| McpError::Failed("invalid header name".into()))?;
                let mut value = HeaderValue::from_str(value.expose_secret())
                    .map_err(|_| McpError::Failed("invalid header value".into()))?;
                value.set_sensitive(true);
                config = config.custom_headers(HashMap::from([(name, value)]));
            }
        }
        let transport = StreamableHttpClientTransport::with_client(http, config);
        let service = match tokio::time::timeout(REQUEST_TIMEOUT, ().serve(transport)).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return Err(failed(&last_error, "initialization failed")),
            Err(_) => return Err(McpError::Timeout),
        };
        Ok(Session {
            service,
            last_error,
        })
    }

    pub(crate) async fn list_tools(&self) -> Result<Vec<RemoteTool>, McpError> {
        let tools = match tokio::time::timeout(REQUEST_TIMEOUT, self.service.list_all_tools()).await
        {
            Ok(Ok(t)) => t,
            Ok(Err(_)) => return Err(failed(&self.last_error, "listing tools failed")),
            Err(_) => return Err(McpError::Timeout),
        };
        Ok(tools
            .into_iter()
            .map(|t| RemoteTool {
                name: t.name.to_string(),
                description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: Value::Object((*t.input_schema).clone()),
            })
            .collect())
    }

    /// Calls a tool; the result is its text content (structured content as JSON when there
    /// is no text), capped in size.
    pub(crate) async fn call(
        &self,
        name: &str,
        arguments: &Value,
        timeout: Duration,
    ) -> Result<String, McpError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        if let Value::Object(map) = arguments {
            params = params.with_arguments(map.clone());
        }
        let result = match tokio::time::timeout(timeout, self.service.call_tool(params)).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => return Err(failed(&self.last_error, "the call failed")),
            Err(_) => return Err(McpError::Timeout),
        };
        let mut text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| match c {
                ContentBlock::Text(t) => Some(t.text.clone()),
                _ => None,
            })
            .collect();
        if text.is_empty()
            && let Some(s) = &result.structured_content
        {
            text.push(s.to_string());
        }
        let mut out = text.join("\n");
        if out.len() > MAX_RESULT_CHARS {
            let cut = (0..=MAX_RESULT_CHARS)
                .rev()
                .find(|i| out.is_char_boundary(*i))
                .unwrap_or(0);
            out.truncate(cut);
        }
        if result.is_error == Some(true) {
            return Err(McpError::Tool(out));
        }
        Ok(out)
    }

    pub(crate) async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.service.cancel()).await;
    }
}

/// Tool results fed to the model and stored are capped (the model's context is finite).
pub(crate) const MAX_RESULT_CHARS: usize = 16 * 1024;

fn failed(last: &std::sync::Mutex<Option<String>>, default: &str) -> McpError {
    let d = last.lock().ok().and_then(|l| l.clone());
    match d.as_deref() {
        Some(TIMED_OUT) => McpError::Timeout,
        Some(d) => McpError::Failed(d.to_owned()),
        None => McpError::Failed(default.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each error we store reads as its own message (the table has both languages); a transport failure
    /// keeps its detail, and nothing else shows the stored English.
    #[test]
    fn every_stored_error_has_words_for_staff() {
        let cases = [
            (McpError::Timeout, "mcp.error.timeout", ""),
            (McpError::Tool("busy".into()), "mcp.error.tool", ""),
            (McpError::Guard(GuardError::Port), "mcp.error.refused", ""),
            (
                McpError::Failed(NO_LONGER_ENABLED.into()),
                "mcp.error.disabled",
                "",
            ),
            (
                McpError::Failed("connection failed".into()),
                "mcp.error.failed",
                "connection failed",
            ),
        ];
        for (error, key, detail) in cases {
            let shown = ErrorText::of(&error.describe());
            assert_eq!(
                (shown.key, shown.detail.as_str()),
                (key, detail),
                "{error:?}"
            );
            assert!(crate::i18n::Tr::has(key), "{key}");
        }
    }
}
