//! What the three wire formats share: the HTTP client, error classification, `Retry-After`,
//! and scrubbing provider error messages of prompt text and keys.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode, header::HeaderMap};
use serde_json::Value;

use super::AiError;

/// The longest provider error message we keep.
const MAX_MESSAGE_CHARS: usize = 300;

pub(crate) fn client(
    timeout: Duration,
    vetted: Option<&crate::mcp::guard::Vetted>,
) -> Result<reqwest::Client, AiError> {
    let builder = match vetted {
        Some(v) => crate::mcp::guard::pinned(v),
        None => reqwest::Client::builder(),
    };
    builder
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("sigmaai/", env!("CARGO_PKG_VERSION")))
        // Provider APIs don't redirect; following one would carry our key headers
        // (x-api-key, x-goog-api-key) to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| AiError::NotConfigured("HTTP client"))
}

/// What must never appear in an error we return: the request's texts and the API key.
pub(crate) struct Scrub<'a> {
    pub(crate) texts: Vec<&'a str>,
    pub(crate) key: Option<&'a str>,
}

/// The largest AI response body we read. A draft's answer is a few KiB; this leaves room
/// for long tool-call arguments and usage metadata, and stops a tenant's custom
/// OpenAI-compatible URL from making the worker buffer anything it likes.
pub(crate) const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Error bodies are only read for their message.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Sends a request and returns its JSON body, classifying every failure.
pub(crate) async fn send_json(rb: RequestBuilder, scrub: &Scrub<'_>) -> Result<Value, AiError> {
    let response = rb.send().await.map_err(transport_error)?;
    let status = response.status();
    if status.is_success() {
        let bytes = read_capped(response, MAX_RESPONSE_BYTES).await?;
        return serde_json::from_slice(&bytes)
            .map_err(|_| AiError::InvalidResponse("the body is not JSON".into()));
    }
    Err(status_error(response, scrub).await)
}

/// The body, read chunk by chunk and abandoned as soon as it passes `max` bytes (a declared
/// `Content-Length` over the cap is refused before reading anything).
async fn read_capped(mut response: Response, max: usize) -> Result<Vec<u8>, AiError> {
    let too_large = AiError::TooLarge { limit: max };
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > max {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error body as JSON (`Null` when unreadable, too large or not JSON).
async fn error_body(response: Response) -> Value {
    match read_capped(response, MAX_ERROR_BYTES).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn transport_error(e: reqwest::Error) -> AiError {
    // reqwest's own message names the URL; ours names only the kind of failure.
    let reason = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_builder() {
        return AiError::NotConfigured("invalid request settings");
    } else if e.is_body() || e.is_decode() {
        "the response was cut short"
    } else {
        "the request failed"
    };
    AiError::Unavailable {
        reason: reason.into(),
    }
}

async fn status_error(response: Response, scrub: &Scrub<'_>) -> AiError {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let from_headers = retry_after(response.headers(), jiff::Timestamp::now());
        let retry_after = match from_headers {
            Some(d) => Some(d),
            None => retry_info(&error_body(response).await),
        };
        return AiError::RateLimited { retry_after };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return AiError::Unavailable {
            reason: format!("HTTP {}", status.as_u16()),
        };
    }
    let body = error_body(response).await;
    if is_content_filter(&body) {
        return AiError::ContentFiltered;
    }
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .or_else(|| body.get("message").and_then(Value::as_str))
        .unwrap_or("no message");
    AiError::Rejected {
        status: status.as_u16(),
        message: sanitize(message, scrub),
    }
}

fn is_content_filter(body: &Value) -> bool {
    let code = |p: &str| body.pointer(p).and_then(Value::as_str).unwrap_or("");
    ["/error/code", "/error/type", "/error/status"]
        .iter()
        .any(|p| {
            let c = code(p);
            c.contains("content_filter") || c.contains("content_policy")
        })
}

/// How long the provider asks us to wait: `retry-after-ms` (OpenAI), else `Retry-After` in
/// seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = get("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Google's `RetryInfo` error detail (`"retryDelay": "37s"`), which Gemini sends instead of
/// a `Retry-After` header.
fn retry_info(body: &Value) -> Option<Duration> {
    body.pointer("/error/details")?
        .as_array()?
        .iter()
        .find_map(|d| {
            d.get("retryDelay")?
                .as_str()?
                .strip_suffix('s')?
                .parse::<f64>()
                .ok()
        })
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Keeps a provider's error message useful without carrying prompt text or keys: removes the
/// key and anything key-like, any line of the request's texts the message echoes, and long
/// quoted values; then caps the length.
pub(crate) fn sanitize(message: &str, scrub: &Scrub<'_>) -> String {
    let mut out = message.to_owned();
    if let Some(key) = scrub.key.filter(|k| !k.is_empty()) {
        out = out.replace(key, "[redacted]");
    }
    for text in &scrub.texts {
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.chars().count() >= 8)
        {
            if out.contains(line) {
                out = out.replace(line, "[redacted]");
            }
        }
    }
    out = out
        .split(' ')
        .map(|w| {
            let looks_like_key = ["sk-", "gsk_", "AIza", "Bearer"]
                .iter()
                .any(|p| w.contains(p))
                || w.contains("***");
            if looks_like_key { "[redacted]" } else { w }
        })
        .collect::<Vec<_>>()
        .join(" ");
    out = redact_long_quotes(&out);
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    out
}

/// Quoted values longer than a field name are likely echoed input.
fn redact_long_quotes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let Some(start) = rest.find(['\'', '"']) else {
            out.push_str(rest);
            return out;
        };
        let quote = rest[start..].chars().next().unwrap_or('"');
        let after = &rest[start + 1..];
        match after.find(quote) {
            Some(end) if after[..end].chars().count() > 40 => {
                out.push_str(&rest[..=start]);
                out.push_str("[redacted]");
                out.push(quote);
                rest = &after[end + 1..];
            }
            Some(end) => {
                out.push_str(&rest[..start + 1 + end + 1]);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

pub(crate) fn u32_at(v: &Value, pointer: &str) -> u32 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_ms_and_dates() {
        let now: jiff::Timestamp = "2026-05-01T12:00:00Z".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Fri, 01 May 2026 12:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn sanitize_removes_prompt_text_and_keys() {
        let scrub = Scrub {
            texts: vec!["Paciente: Maria Silva\nTenho dor de dente desde segunda"],
            key: Some("sk-live-abcdef123456"),
        };
        let msg = "Invalid content 'Tenho dor de dente desde segunda' for key sk-live-abcdef123456 \
                   (Incorrect API key provided: sk-live-****3456)";
        let out = sanitize(msg, &scrub);
        assert!(!out.contains("dor de dente"), "{out}");
        assert!(!out.contains("abcdef"), "{out}");
        assert!(!out.contains("3456"), "{out}");
        assert!(out.contains("Invalid content"), "{out}");

        let long_quote = format!("Bad value \"{}\" in messages", "x".repeat(60));
        assert_eq!(
            sanitize(
                &long_quote,
                &Scrub {
                    texts: vec![],
                    key: None
                }
            ),
            "Bad value \"[redacted]\" in messages"
        );
        assert_eq!(
            sanitize(
                "Unknown field 'stor' here",
                &Scrub {
                    texts: vec![],
                    key: None
                }
            ),
            "Unknown field 'stor' here"
        );
    }
}
