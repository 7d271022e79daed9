//! The API's error type and how each error becomes an HTTP response.

use lambda_http::http::StatusCode;
use serde_json::json;
use thiserror::Error;
use tradeflow_adapters::blobs::BlobError;
use tradeflow_adapters::lineage::LineageError;
use tradeflow_adapters::prompt_store::PromptStoreError;
use tradeflow_adapters::schedules::ScheduleError;
use tradeflow_adapters::store::StoreError;
use tradeflow_adapters::workflow::WorkflowError;
use tradeflow_core::strategy::ValidationError;

#[derive(Debug, Error)]
pub enum ApiError {
    /// Bad input, naming the offending field as in the JSON body or query.
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(String),
    #[error("method {0} not allowed here")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// A service we depend on (IBKR, AWS) failed.
    #[error("{what}: {source}")]
    Upstream {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn upstream<E: std::error::Error + Send + Sync + 'static>(
        what: &'static str,
        e: E,
    ) -> Self {
        Self::Upstream {
            what,
            source: Box::new(e),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: a stable `error` code, the message and, for 400, the field.
    pub fn body(&self) -> serde_json::Value {
        let code = match self {
            Self::BadRequest { .. } => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::Upstream { .. } => "upstream_error",
            Self::Internal(_) => "internal_error",
        };
        match self {
            Self::BadRequest { field, message } => {
                json!({"error": code, "field": field, "message": message})
            }
            _ => json!({"error": code, "message": self.to_string()}),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::bad(e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists { table } => {
                Self::Conflict(format!("item already exists in {table}"))
            }
            e => Self::upstream("dynamodb", e),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        Self::upstream("s3", e)
    }
}

impl From<LineageError> for ApiError {
    fn from(e: LineageError) -> Self {
        Self::upstream("lineage", e)
    }
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        Self::upstream("eventbridge", e)
    }
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        Self::upstream("step functions", e)
    }
}

impl From<PromptStoreError> for ApiError {
    fn from(e: PromptStoreError) -> Self {
        match e {
            PromptStoreError::Invalid(p) => {
                let field = match &p {
                    tradeflow_core::prompts::PromptError::InvalidId(_) => "template_id",
                    tradeflow_core::prompts::PromptError::InvalidScope(_) => "scope",
                    _ => "body",
                };
                Self::bad(field, p.to_string())
            }
            PromptStoreError::VersionTaken { .. } => Self::Conflict(e.to_string()),
            PromptStoreError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_request_names_its_field_in_the_body() {
        let e = ApiError::bad("risk.capital", "must be positive");

        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.body()["field"], "risk.capital");
        assert_eq!(e.body()["error"], "bad_request");
    }
}
