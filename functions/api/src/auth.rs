//! Authentication, done in the function on every route: the HTTP API in front has no
//! authorizer of its own (unless a JWT one is configured). A client sends the API key
//! as `Authorization: Bearer <key>` (or `x-api-key`); the key lives in Secrets Manager
//! and is read once per container. The viewer, opened in a browser, logs in once with
//! `?key=` and then carries a session cookie: an expiry signed with a key derived from
//! the API key (HMAC-SHA256), never the key itself, valid for GET only.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderMap, Method, header};
use subtle::ConstantTimeEq;
use tradeflow_adapters::config::Secret;

pub const COOKIE: &str = "tf_session";
/// How long a viewer session lasts, in seconds (12 hours).
pub const SESSION_SECONDS: i64 = 43_200;
const SESSION_VERSION: &str = "v1";
/// Labels the derivation so the session key is used for nothing else.
const SESSION_KEY_LABEL: &[u8] = b"tradeflow viewer session key v1";

/// Where a request's credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Header,
    Cookie,
}

/// The API key and the session key derived from it.
#[derive(Clone)]
pub struct Keys {
    api_key: Secret,
    session: hmac::Key,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

impl Keys {
    pub fn new(api_key: Secret) -> Self {
        // Derived from the key: rotating the API key ends every viewer session.
        let derive = hmac::Key::new(hmac::HMAC_SHA256, api_key.expose().as_bytes());
        let tag = hmac::sign(&derive, SESSION_KEY_LABEL);
        Self {
            session: hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()),
            api_key,
        }
    }

    /// Whether `given` is the API key (the viewer's login link, a header).
    pub fn is_key(&self, given: &str) -> bool {
        // An empty configured key would accept an empty header: refuse everything instead.
        !self.api_key.is_empty()
            && bool::from(self.api_key.expose().as_bytes().ct_eq(given.as_bytes()))
    }

    /// Returns a session cookie value that expires `SESSION_SECONDS` after `now`.
    pub fn session(&self, now: DateTime<Utc>) -> String {
        let expires = now.timestamp() + SESSION_SECONDS;
        let signed = format!("{SESSION_VERSION}.{expires}");
        let tag = hmac::sign(&self.session, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Whether `value` is a session this key signed that has not expired at `now`.
    pub fn is_session(&self, value: &str, now: DateTime<Utc>) -> bool {
        if self.api_key.is_empty() {
            return false;
        }
        let Some((signed, tag)) = value.rsplit_once('.') else {
            return false;
        };
        let Some(expires) = signed
            .strip_prefix(SESSION_VERSION)
            .and_then(|s| s.strip_prefix('.'))
            .and_then(|s| s.parse::<i64>().ok())
        else {
            return false;
        };
        let now = now.timestamp();
        if expires <= now || expires > now + SESSION_SECONDS {
            return false;
        }
        URL_SAFE_NO_PAD
            .decode(tag)
            .is_ok_and(|tag| hmac::verify(&self.session, signed.as_bytes(), &tag).is_ok())
    }

    /// The `Set-Cookie` value that logs a browser in at `now`.
    pub fn login_cookie(&self, now: DateTime<Utc>) -> String {
        format!(
            "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}",
            self.session(now)
        )
    }
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

/// Returns how the request authenticated at `now`, or `None` when it did not.
pub fn authenticate(
    keys: &Keys,
    method: &Method,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<Credential> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if bearer
        .into_iter()
        .chain(api_key)
        .any(|k| keys.is_key(k.trim()))
    {
        return Some(Credential::Header);
    }
    // Only safe methods may use the cookie (SameSite=Strict keeps it off cross-site
    // requests as well).
    if method == Method::GET
        && cookie_value(headers, COOKIE).is_some_and(|v| keys.is_session(v, now))
    {
        return Some(Credential::Cookie);
    }
    None
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
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

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap()
    }

    fn keys() -> Keys {
        Keys::new(Secret::new("k-123"))
    }

    #[rstest]
    #[case::bearer(Method::POST, &[("authorization", "Bearer k-123")], Some(Credential::Header))]
    #[case::x_api_key(Method::DELETE, &[("x-api-key", "k-123")], Some(Credential::Header))]
    #[case::wrong_key(Method::GET, &[("x-api-key", "k-124")], None)]
    #[case::no_scheme(Method::GET, &[("authorization", "k-123")], None)]
    #[case::nothing(Method::GET, &[], None)]
    #[case::raw_key_in_cookie(Method::GET, &[("cookie", "tf_session=k-123")], None)]
    fn requests_authenticate_only_with_the_configured_key(
        #[case] method: Method,
        #[case] pairs: &[(&'static str, &str)],
        #[case] expected: Option<Credential>,
    ) {
        assert_eq!(
            authenticate(&keys(), &method, &headers(pairs), now()),
            expected
        );
    }

    #[test]
    fn a_session_cookie_authenticates_get_requests_only() {
        let cookie = format!("a=b; {COOKIE}={}", keys().session(now()));
        let h = headers(&[("cookie", &cookie)]);

        let get = authenticate(&keys(), &Method::GET, &h, now());
        let post = authenticate(&keys(), &Method::POST, &h, now());

        assert_eq!(get, Some(Credential::Cookie));
        assert_eq!(post, None);
    }

    #[test]
    fn the_session_cookie_does_not_contain_the_key_and_is_secure() {
        let set_cookie = keys().login_cookie(now());

        assert!(!set_cookie.contains("k-123"), "{set_cookie}");
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(
                set_cookie.split("; ").any(|a| a == attr),
                "{attr} in {set_cookie}"
            );
        }
    }

    #[test]
    fn a_session_expires_after_twelve_hours() {
        let session = keys().session(now());

        let before = keys().is_session(
            &session,
            now() + chrono::Duration::seconds(SESSION_SECONDS - 1),
        );
        let after = keys().is_session(&session, now() + chrono::Duration::seconds(SESSION_SECONDS));

        assert!(before);
        assert!(!after);
    }

    #[rstest]
    #[case::other_key(Keys::new(Secret::new("k-124")).session(now()))]
    #[case::no_tag(format!("v1.{}", now().timestamp() + 60))]
    #[case::garbage("v1.x.y".to_string())]
    #[case::other_version(keys().session(now()).replacen("v1.", "v2.", 1))]
    #[case::far_future(forged_expiry(now().timestamp() + 10 * SESSION_SECONDS))]
    fn forged_or_foreign_sessions_are_refused(#[case] value: String) {
        assert!(!keys().is_session(&value, now()), "{value}");
    }

    /// A session whose expiry was changed after signing.
    fn forged_expiry(expires: i64) -> String {
        let good = keys().session(now());
        let tag = good.rsplit_once('.').unwrap().1;
        format!("v1.{expires}.{tag}")
    }

    #[test]
    fn rotating_the_api_key_ends_every_session() {
        let session = keys().session(now());

        let rotated = Keys::new(Secret::new("k-456"));

        assert!(!rotated.is_session(&session, now()));
    }

    #[test]
    fn an_empty_configured_key_accepts_nothing() {
        let key = Keys::new(Secret::new(""));
        let session = key.session(now());

        assert_eq!(
            authenticate(&key, &Method::GET, &headers(&[("x-api-key", "")]), now()),
            None
        );
        assert!(!key.is_key(""));
        assert!(!key.is_session(&session, now()));
    }
}
