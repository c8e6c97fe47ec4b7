//! API errors as RFC 9457 problem details (`application/problem+json`).
//!
//! A handler returns [`ApiError`]. Like [`AppError`], its response only carries the status
//! and an [`ErrorInfo`] marker (a translation key); `http::middleware::render_errors` turns
//! every error under `/api/` — ours, and the framework's own (a 404, 405, 413, or a JSON
//! body that does not parse) — into a problem document in the caller's language
//! (`Accept-Language`), so an API client never gets an HTML page or a login redirect.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::error::{AppError, ErrorInfo};

#[derive(Debug)]
pub(crate) enum ApiError {
    /// A refusal we decided: status and a translation key for `detail`.
    Problem {
        status: StatusCode,
        key: &'static str,
        retry_after: Option<u64>,
    },
    App(AppError),
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, key: &'static str) -> ApiError {
        ApiError::Problem {
            status,
            key,
            retry_after: None,
        }
    }
    pub(crate) fn bad_request(key: &'static str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, key)
    }
    pub(crate) fn unprocessable(key: &'static str) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, key)
    }
    pub(crate) fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "api.problem.not_found")
    }
    pub(crate) fn conflict(key: &'static str) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, key)
    }
    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "api.problem.unauthorized")
    }
    pub(crate) fn too_many(retry_after: u64) -> ApiError {
        ApiError::Problem {
            status: StatusCode::TOO_MANY_REQUESTS,
            key: "api.problem.rate_limited",
            retry_after: Some(retry_after),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::App(e)
    }
}
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::App(e.into())
    }
}
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::App(e.into())
    }
}
impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        ApiError::App(AppError::Internal(e.into()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::App(e) => e.into_response(),
            ApiError::Problem {
                status,
                key,
                retry_after,
            } => {
                // Bad input is the client's: a warning with the reason, never the input.
                tracing::warn!(
                    status = status.as_u16(),
                    reason = key,
                    "api request refused"
                );
                let mut resp = status.into_response();
                if let Some(secs) = retry_after
                    && let Ok(v) = HeaderValue::from_str(&secs.to_string())
                {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                if status == StatusCode::UNAUTHORIZED {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"sigmaai\""),
                    );
                }
                resp.extensions_mut().insert(ErrorInfo {
                    status,
                    message_key: key,
                });
                resp
            }
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
