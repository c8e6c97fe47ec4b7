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
pub enum AppError {
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
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("service unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => AppError::NotFound,
            other => AppError::Internal(anyhow::Error::new(other)),
        }
    }
}

/// What the error renderer needs: the status and a message key for the visitor.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub message_key: &'static str,
}

impl ErrorInfo {
    pub fn for_status(status: StatusCode) -> ErrorInfo {
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
        let (status, key) = match &self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "error.not_found"),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "error.forbidden"),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "error.unauthorized"),
            AppError::BadRequest(key) => (StatusCode::BAD_REQUEST, *key),
            AppError::Conflict(key) => (StatusCode::CONFLICT, *key),
            AppError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "error.too_large"),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "error.too_many"),
            AppError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "error.unavailable"),
            AppError::Internal(err) => {
                // `{:#}` prints the whole cause chain on one line.
                tracing::error!(error = format!("{err:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "error.internal")
            }
        };
        let mut resp = status.into_response();
        if let AppError::TooManyRequests { retry_after_secs } = self
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

pub type AppResult<T> = Result<T, AppError>;
