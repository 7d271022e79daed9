//! Reading JSON bodies with errors that name the field (`risk.capital`,
//! `indicators[0].period`), as the API promises for 400s.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Parses a JSON body into `T`.
///
/// # Errors
/// 400 naming the missing or malformed field (`body` when it is not JSON at all).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = if body.is_empty() {
        return Err(ApiError::bad("body", "a JSON object is required"));
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad("body", format!("not valid JSON: {e}")))?
    };
    from_value(value)
}

/// Converts a JSON value into `T`, naming the failing field.
///
/// # Errors
/// 400 naming the missing or malformed field.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad("body", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        ApiError::bad(field_of(&path, &message), message)
    })
}

/// serde reports a missing field at its parent's path, with the name in the message.
fn field_of(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    match message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        Some(name) if parent.is_empty() => name.to_string(),
        Some(name) => format!("{parent}.{name}"),
        None if parent.is_empty() => "body".into(),
        None => parent.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Risk {
        capital: f64,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        risk: Risk,
    }

    fn field(v: Value) -> String {
        match from_value::<Body>(v).unwrap_err() {
            ApiError::BadRequest { field, .. } => field,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn errors_name_the_missing_or_malformed_field() {
        assert_eq!(field(json!({"risk": {"capital": 1.0}})), "name");
        assert_eq!(field(json!({"name": "x", "risk": {}})), "risk.capital");
        assert_eq!(
            field(json!({"name": "x", "risk": {"capital": "lots"}})),
            "risk.capital"
        );
        assert_eq!(field(json!([1])), "body");
        assert!(
            matches!(parse::<Body>(b"{nope"), Err(ApiError::BadRequest { field, .. }) if field == "body")
        );
    }
}
