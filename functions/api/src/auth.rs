//! API key check, done in the function on every route (API Gateway's IAM or JWT
//! authorizer sits in front as well when deployed). The key comes from
//! `Authorization: Bearer <key>` or `x-api-key`; the viewer, opened in a browser,
//! may also carry it in the `tf_key` cookie (set by `?key=`), for GET only.

use lambda_http::http::{HeaderMap, Method, header};
use subtle::ConstantTimeEq;
use tradeflow_adapters::config::Secret;

pub const COOKIE: &str = "tf_key";

/// Where a request's key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Header,
    Cookie,
}

fn same(expected: &Secret, given: &str) -> bool {
    // An empty configured key would accept an empty header: refuse everything instead.
    !expected.is_empty() && bool::from(expected.expose().as_bytes().ct_eq(given.as_bytes()))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Returns how the request authenticated, or `None` when it did not.
pub fn authenticate(expected: &Secret, method: &Method, headers: &HeaderMap) -> Option<Credential> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if bearer
        .into_iter()
        .chain(api_key)
        .any(|k| same(expected, k.trim()))
    {
        return Some(Credential::Header);
    }
    // A cookie rides along on cross-site requests: only safe methods may use it.
    if method == Method::GET && cookie_value(headers, COOKIE).is_some_and(|k| same(expected, k)) {
        return Some(Credential::Cookie);
    }
    None
}

/// Whether a `?key=` value is the API key (the viewer's login link).
pub fn is_key(expected: &Secret, given: &str) -> bool {
    same(expected, given)
}

#[cfg(test)]
mod tests {
    use lambda_http::http::HeaderValue;
    use rstest::rstest;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[rstest]
    #[case::bearer(Method::POST, &[("authorization", "Bearer k-123")], Some(Credential::Header))]
    #[case::x_api_key(Method::DELETE, &[("x-api-key", "k-123")], Some(Credential::Header))]
    #[case::wrong_key(Method::GET, &[("x-api-key", "k-124")], None)]
    #[case::no_scheme(Method::GET, &[("authorization", "k-123")], None)]
    #[case::nothing(Method::GET, &[], None)]
    #[case::cookie_on_get(Method::GET, &[("cookie", "a=b; tf_key=k-123")], Some(Credential::Cookie))]
    #[case::cookie_on_post(Method::POST, &[("cookie", "tf_key=k-123")], None)]
    fn requests_authenticate_only_with_the_configured_key(
        #[case] method: Method,
        #[case] pairs: &[(&'static str, &str)],
        #[case] expected: Option<Credential>,
    ) {
        let key = Secret::new("k-123");

        assert_eq!(authenticate(&key, &method, &headers(pairs)), expected);
    }

    #[test]
    fn an_empty_configured_key_accepts_nothing() {
        let key = Secret::new("");

        assert_eq!(
            authenticate(&key, &Method::GET, &headers(&[("x-api-key", "")])),
            None
        );
        assert!(!is_key(&key, ""));
    }
}
