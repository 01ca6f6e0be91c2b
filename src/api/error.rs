//! The one error type of the REST API, mapped to HTTP once. Everything a user can cause
//! has its own variant and message; only `Internal` is logged.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use crate::wire::{ErrorBody, FieldError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Validation {
        message: String,
        validations: Vec<FieldError>,
    },
    /// A value that must be unique is taken (a workspace name): 409 like `Conflict`, but
    /// naming the field, so a form can show the message beside it.
    #[error("{message}")]
    Taken { field: String, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),

    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// Both errors' field problems in one, when both are validations (else `self`).
    pub fn and(self, other: ApiError) -> ApiError {
        match (self, other) {
            (
                ApiError::Validation {
                    message: m1,
                    validations: mut v1,
                },
                ApiError::Validation {
                    message: m2,
                    validations: v2,
                },
            ) => {
                v1.extend(v2);
                ApiError::Validation {
                    message: format!("{m1}; {m2}"),
                    validations: v1,
                }
            }
            (first, _) => first,
        }
    }

    pub fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        ApiError::Validation {
            message: format!("invalid {field}: {detail}"),
            validations: vec![FieldError {
                field: field.to_string(),
                detail,
            }],
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::Taken { .. } => StatusCode::CONFLICT,
            ApiError::Validation { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(anyhow::Error::new(e).context("database query"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match self {
            ApiError::Internal(err) => {
                // The chain (queries, paths) is for the operator's log; the caller gets an
                // id to quote.
                let id = crate::model::new_id();
                tracing::error!(error_id = %id, error = format!("{err:#}"), "internal error");
                ErrorBody {
                    message: format!(
                        "internal server error (id {id}): the server's log has the details"
                    ),
                    ..Default::default()
                }
            }
            ApiError::Validation {
                message,
                validations,
            } => ErrorBody {
                message,
                validations,
                ..Default::default()
            },
            ApiError::Taken { field, message } => ErrorBody {
                validations: vec![FieldError {
                    field,
                    detail: message.clone(),
                }],
                message,
                ..Default::default()
            },
            other => ErrorBody {
                message: other.to_string(),
                ..Default::default()
            },
        };
        (status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
