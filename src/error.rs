//! One error type for every handler.
//!
//! A handler returns `Result<_, AppError>`. `into_response` only sets the status and attaches
//! an [`ErrorInfo`]; the `render_errors` middleware then renders it as a page (or JSON on
//! machine routes) in the visitor's language with the request id, so error pages need no
//! access to the request here. A 500 logs its whole cause chain once; the visitor sees only
//! the request id.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    /// Not logged in (portal pages redirect to the login page).
    #[error("unauthorized")]
    Unauthorized,
    /// The request is malformed; the message key is shown to the user.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// Retryable: the database is down or restarting, or ingestion is overloaded. Sent as
    /// 503 with `Retry-After` (gateways retry; nothing of the request was committed).
    #[error("service unavailable")]
    Unavailable { retry_after_secs: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::crypto::CryptoError> for AppError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        AppError::Internal(anyhow::Error::new(e))
    }
}

/// The ingest queue refused a delivery, not queued: the writers are too far behind (see
/// `messaging::group_commit`). Nothing of it was written; the sender should retry after
/// `retry_after_secs`. Defined here so the error renderer knows it without knowing messaging.
#[derive(Debug, thiserror::Error)]
#[error("ingest queue full ({queued} deliveries waiting, the oldest for {waited_ms} ms)")]
pub(crate) struct Overloaded {
    pub(crate) queued: usize,
    pub(crate) waited_ms: u64,
    pub(crate) retry_after_secs: u64,
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => AppError::NotFound,
            other => AppError::Internal(anyhow::Error::new(other)),
        }
    }
}

/// How long a client should wait before retrying a request that failed on a transient
/// database condition.
const DB_RETRY_AFTER_SECS: u64 = 2;

/// Whether a database error is worth retrying as is: the connection or the server went
/// away (a restart, a failover), the pool had no connection in time, or the server asked
/// us to retry (serialization failure, deadlock, lock or statement timeout).
pub(crate) fn is_transient_db(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception; 53: insufficient resources; 57P01-03: shutdown or
            // starting up; 40001/40P01: serialization failure, deadlock; 55P03: lock not
            // available; 57014: statement timeout / cancelled.
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || matches!(&*c, "40001" | "40P01" | "55P03" | "57014")
        }),
        _ => false,
    }
}

/// The retry delay for an error that is transient (anywhere in its cause chain), if it is,
/// and whether to warn about it (an overload refusal is warned about where it is decided,
/// once a second, rather than once per request).
fn retry_after(err: &anyhow::Error) -> Option<(u64, bool)> {
    err.chain().find_map(|cause| {
        if let Some(o) = cause.downcast_ref::<Overloaded>() {
            return Some((o.retry_after_secs, false));
        }
        let db = cause.downcast_ref::<sqlx::Error>().or_else(|| match cause
            .downcast_ref::<crate::crypto::CryptoError>(
        ) {
            Some(crate::crypto::CryptoError::Store(e)) => Some(e),
            _ => None,
        })?;
        is_transient_db(db).then_some((DB_RETRY_AFTER_SECS, true))
    })
}

/// What the error renderer needs: the status and a message key for the visitor.
#[derive(Clone, Debug)]
pub(crate) struct ErrorInfo {
    pub(crate) status: StatusCode,
    pub(crate) message_key: &'static str,
}

impl ErrorInfo {
    pub(crate) fn for_status(status: StatusCode) -> ErrorInfo {
        let message_key = match status.as_u16() {
            400 => "error.bad_request",
            401 => "error.unauthorized",
            403 => "error.forbidden",
            404 => "error.not_found",
            405 => "error.method_not_allowed",
            409 => "error.conflict",
            413 => "error.too_large",
            415 => "error.bad_request",
            422 => "error.bad_request",
            429 => "error.too_many",
            503 => "error.unavailable",
            _ if status.is_server_error() => "error.internal",
            _ => "error.bad_request",
        };
        ErrorInfo {
            status,
            message_key,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // A transient failure is the client's cue to retry, not a server error.
        let this = match self {
            AppError::Internal(err) => match retry_after(&err) {
                Some((retry_after_secs, warn)) => {
                    if warn {
                        tracing::warn!(
                            error = format!("{err:#}"),
                            "request refused for now (retryable)"
                        );
                    }
                    AppError::Unavailable { retry_after_secs }
                }
                None => AppError::Internal(err),
            },
            other => other,
        };
        let (status, key) = match &this {
            AppError::NotFound => (StatusCode::NOT_FOUND, "error.not_found"),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "error.forbidden"),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "error.unauthorized"),
            AppError::BadRequest(key) => (StatusCode::BAD_REQUEST, *key),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "error.too_many"),
            AppError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "error.unavailable"),
            AppError::Internal(err) => {
                // `{:#}` prints the whole cause chain on one line.
                tracing::error!(error = format!("{err:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "error.internal")
            }
        };
        let mut resp = status.into_response();
        if let AppError::TooManyRequests { retry_after_secs }
        | AppError::Unavailable { retry_after_secs } = this
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp.extensions_mut().insert(ErrorInfo {
            status,
            message_key: key,
        });
        resp
    }
}

pub(crate) type AppResult<T> = Result<T, AppError>;
