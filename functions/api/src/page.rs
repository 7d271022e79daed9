//! Pagination: `limit` plus an opaque `next` token, which is DynamoDB's
//! LastEvaluatedKey encoded as base64url JSON. Clients pass it back unchanged.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i32 = 20;
pub const MAX_LIMIT: i32 = 100;

pub type Key = HashMap<String, AttributeValue>;

/// What a list request asks for.
#[derive(Debug, Clone, Default)]
pub struct PageReq {
    pub limit: i32,
    pub start: Option<Key>,
}

/// One page of items and the token of the next page, if any.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

/// Reads `limit` (1..=100, default 20) and `next` from the query string.
///
/// # Errors
/// 400 naming `limit` or `next`.
pub fn page_req(query: &HashMap<String, String>) -> Result<PageReq, ApiError> {
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad("limit", format!("must be an integer in 1..={MAX_LIMIT}"))
            })?,
    };
    let start = query.get("next").map(|t| decode(t)).transpose()?;
    Ok(PageReq { limit, start })
}

/// Encodes a LastEvaluatedKey as a token.
pub fn encode(key: &Key) -> String {
    let map: serde_json::Map<String, Value> = key
        .iter()
        .filter_map(|(k, v)| {
            let pair = match v {
                AttributeValue::S(s) => ["S", s.as_str()],
                AttributeValue::N(n) => ["N", n.as_str()],
                _ => return None,
            };
            Some((k.clone(), serde_json::json!(pair)))
        })
        .collect();
    URL_SAFE_NO_PAD.encode(Value::Object(map).to_string())
}

/// Decodes a token made by [`encode`].
///
/// # Errors
/// 400 on `next` for anything else.
pub fn decode(token: &str) -> Result<Key, ApiError> {
    let bad = || ApiError::bad("next", "is not a token returned by this API");
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
    let v: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v.is_empty() {
        return Err(bad());
    }
    v.into_iter()
        .map(|(k, pair)| {
            let (t, s) = match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(t), Value::String(s)]) => (t.clone(), s.clone()),
                _ => return Err(bad()),
            };
            let av = match t.as_str() {
                "S" => AttributeValue::S(s),
                "N" if s.parse::<f64>().is_ok() => AttributeValue::N(s),
                _ => return Err(bad()),
            };
            Ok((k, av))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_string_and_number_keys() {
        let key = Key::from([
            ("template_id".into(), AttributeValue::S("t/1 é".into())),
            ("version".into(), AttributeValue::N("3".into())),
        ]);

        assert_eq!(decode(&encode(&key)).unwrap(), key);
    }

    #[test]
    fn garbage_tokens_and_limits_are_refused_naming_the_parameter() {
        for token in ["", "!!!", "e30", "WyJTIl0"] {
            let q = HashMap::from([("next".to_string(), token.to_string())]);
            let e = page_req(&q).unwrap_err();
            assert!(
                matches!(e, ApiError::BadRequest { ref field, .. } if field == "next"),
                "{token}"
            );
        }
        for limit in ["0", "101", "-1", "ten"] {
            let q = HashMap::from([("limit".to_string(), limit.to_string())]);
            assert!(
                matches!(page_req(&q), Err(ApiError::BadRequest { ref field, .. }) if field == "limit")
            );
        }
        assert_eq!(page_req(&HashMap::new()).unwrap().limit, DEFAULT_LIMIT);
    }
}
