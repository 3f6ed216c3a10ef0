//! The one error type of both HTTP boundaries: each variant's status, `type`
//! and `code` live here, in one `IntoResponse`. Client mistakes are answered
//! with a message that says what to fix and are not logged as errors; internal
//! failures are logged once, here, and the client only learns that one happened.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub enum Error {
    /// Missing or wrong `X-Admin-Secret` / internal token.
    Unauthorized,
    /// A virtual key that is no live key of any tenant (`GET /usage`).
    UnknownKey,
    /// Malformed input: not JSON, a bad query parameter.
    BadRequest(String),
    NotFound(String),
    Conflict(String),
    /// Well-formed input that fails validation; the message names the field.
    Invalid(String),
    /// A request body over the route's size limit.
    TooLarge(String),
    /// Too many wrong admin secrets from this address: try again after this
    /// many seconds (`retry-after`).
    Throttled(u64),
    /// A failure that is not the client's doing. The text is logged, never sent.
    Internal(String),
}

impl Error {
    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {e}"))
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "unauthorized",
            ),
            Self::UnknownKey => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
            ),
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "bad_request",
            ),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found_error", "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict_error", "conflict"),
            Self::Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "validation_failed",
            ),
            Self::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "payload_too_large",
            ),
            Self::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "too_many_failures",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal_error",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn message(&self) -> &str {
        match self {
            Self::Unauthorized => {
                "Missing or wrong credentials: send the admin secret as `X-Admin-Secret` (internal API: `x-aipipe-internal-token`)."
            }
            Self::UnknownKey => {
                "Invalid API key: send your aipipe virtual key as `Authorization: Bearer <key>`."
            }
            Self::BadRequest(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::Invalid(m)
            | Self::TooLarge(m) => m,
            Self::Throttled(_) => {
                "Too many wrong admin secrets from this address: wait for `retry-after` seconds."
            }
            Self::Internal(_) => "Internal error; the control plane logged the details.",
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Internal(m) => write!(f, "internal: {m}"),
            other => f.write_str(other.message()),
        }
    }
}

impl std::error::Error for Error {}

/// The body of every error answer: `{"error": {"message", "type", "code"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong and, for client errors, what to fix.
    pub message: String,
    /// The kind: `invalid_request_error`, `authentication_error`, `not_found_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable code: `bad_request`, `validation_failed`, `not_found`, ...
    pub code: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, kind, code) = self.parts();
        if let Self::Internal(detail) = &self {
            // The one place internal failures are logged. Details come from
            // SQLite, the AEAD or the runtime; none carries a secret (key
            // plaintexts never enter an error message).
            tracing::error!(detail = %detail, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message().to_owned(),
                kind: kind.to_owned(),
                code: code.to_owned(),
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if let Self::Throttled(secs) = self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::internal("sqlite", e)
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal("blocking task", e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::internal("json", e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::types::FromSqlError> for Error {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        Self::internal("sqlite column", e)
    }
}
