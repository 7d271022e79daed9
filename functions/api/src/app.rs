//! The API function: one `App` built per cold start, one `handle` per request.
//! It authenticates, routes by method and path, and turns results into JSON (or,
//! under `/viewer`, HTML) responses.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::Value;
use tradeflow_adapters::Deps;
use tradeflow_adapters::config::{self, ConfigError};
use tradeflow_adapters::schedules::Schedules;
use tradeflow_adapters::store::Store;

use crate::auth::{self, Keys};
use crate::error::ApiError;
use crate::{catalog, lineage_api, strategies, trading, viewer};

/// Settings of the API beyond the shared `Config`.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The API key (from Secrets Manager, read once per container) and the viewer's
    /// session key derived from it.
    pub keys: Keys,
    /// Role EventBridge assumes to start the state machine.
    pub events_role_arn: String,
    pub state_machine_arn: String,
}

impl ApiSettings {
    /// Reads the API key from the secret `API_KEY_SECRET_ARN` names, and the names
    /// `EVENTS_ROLE_ARN` and `STATE_MACHINE_ARN` from the configuration.
    ///
    /// # Errors
    /// A missing name or an unreadable secret: the API refuses to start without a key.
    pub async fn load(
        deps: &Deps,
        secrets: &aws_sdk_secretsmanager::Client,
    ) -> Result<Self, ConfigError> {
        let c = &deps.config;
        let secret = c
            .api_key_secret_arn
            .as_deref()
            .ok_or(ConfigError::Missing("API_KEY_SECRET_ARN"))?;
        Ok(Self {
            keys: Keys::new(config::read_secret(secrets, secret).await?),
            events_role_arn: c
                .events_role_arn
                .clone()
                .ok_or(ConfigError::Missing("EVENTS_ROLE_ARN"))?,
            state_machine_arn: c
                .state_machine_arn
                .clone()
                .ok_or(ConfigError::Missing("STATE_MACHINE_ARN"))?,
        })
    }
}

pub struct App {
    pub deps: Deps,
    pub store: Store,
    pub settings: ApiSettings,
    pub sfn: aws_sdk_sfn::Client,
    pub schedules: Schedules,
    pub views: minijinja::Environment<'static>,
}

/// What a route produces.
pub enum Reply {
    Json(StatusCode, Value),
    Html(String),
}

impl Reply {
    pub fn ok<T: Serialize>(v: &T) -> Result<Self, ApiError> {
        Self::with(StatusCode::OK, v)
    }

    pub fn with<T: Serialize>(status: StatusCode, v: &T) -> Result<Self, ApiError> {
        serde_json::to_value(v)
            .map(|v| Self::Json(status, v))
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// A request, reduced to what routes read.
pub struct Req<'a> {
    pub method: Method,
    pub segs: Vec<String>,
    pub query: HashMap<String, String>,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
    /// Relative path from the page to the API root, for links in HTML.
    pub root: String,
}

impl Req<'_> {
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Path segments, decoded; a local `cargo lambda watch` prefix is dropped so the
/// same routes answer behind API Gateway and at `/lambda-url/api/…`.
pub fn segments(path: &str) -> Vec<String> {
    let path = path.strip_prefix("/lambda-url/api").unwrap_or(path);
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// The relative path from a page back to the API root: a browser resolves links
/// against the page's directory.
pub fn root_of(raw_path: &str, segments: usize) -> String {
    let depth = segments.saturating_sub(1) + usize::from(raw_path.ends_with('/') && segments > 0);
    if depth == 0 {
        "./".into()
    } else {
        "../".repeat(depth)
    }
}

fn response(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// No script runs on viewer pages, whatever a lineage payload contains; images may
/// come from S3 (presigned URLs on another host).
const CSP: &str = "default-src 'none'; img-src 'self' http: https: data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut r = response(status, "text/html; charset=utf-8", body);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

fn json(status: StatusCode, v: &Value) -> Response<Body> {
    response(status, "application/json", v.to_string())
}

impl App {
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let method = req.method().clone();
        let segs = segments(req.uri().path());
        let query: HashMap<String, String> = req
            .query_string_parameters()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let is_viewer = segs.first().is_some_and(|s| s == "viewer");
        let now = Utc::now();
        if is_viewer
            && method == Method::GET
            && let Some(key) = query.get("key")
        {
            return self.viewer_login(req.uri().path(), &segs, key, now);
        }
        if auth::authenticate(&self.settings.keys, &method, req.headers(), now).is_none() {
            tracing::info!(%method, path = %req.uri().path(), "unauthenticated request refused");
            return self.error(is_viewer, &ApiError::Unauthorized);
        }
        let root = root_of(req.uri().path(), segs.len());
        let r = Req {
            method,
            segs,
            query,
            body: req.body().as_ref(),
            now,
            root,
        };
        match self.route(&r).await {
            Ok(Reply::Json(status, v)) => json(status, &v),
            Ok(Reply::Html(page)) => html(StatusCode::OK, page),
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::error!(error = %e, path = %r.segs.join("/"), "request failed");
                } else {
                    tracing::info!(error = %e, "request refused");
                }
                self.error(is_viewer, &e)
            }
        }
    }

    fn error(&self, is_viewer: bool, e: &ApiError) -> Response<Body> {
        let mut r = if is_viewer {
            html(e.status(), viewer::error_page(&self.views, e))
        } else {
            json(e.status(), &e.body())
        };
        if matches!(e, ApiError::Unauthorized) {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tradeflow\""),
            );
        }
        r
    }

    /// `/viewer…?key=K`: a valid key becomes a signed session cookie (not the key)
    /// and the browser is sent to the same page without the key in its address.
    fn viewer_login(
        &self,
        raw_path: &str,
        segs: &[String],
        key: &str,
        now: DateTime<Utc>,
    ) -> Response<Body> {
        if !self.settings.keys.is_key(key) {
            return self.error(true, &ApiError::Unauthorized);
        }
        // Relative to the page's own directory, so it works under any path prefix.
        let last = raw_path
            .rsplit('/')
            .next()
            .filter(|l| !l.is_empty())
            .unwrap_or(".");
        let location = if segs.len() <= 1 && raw_path.ends_with('/') {
            "./".to_string()
        } else {
            last.to_string()
        };
        let mut r = response(StatusCode::SEE_OTHER, "text/plain", String::new());
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&location) {
            h.insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.settings.keys.login_cookie(now)) {
            h.insert(header::SET_COOKIE, v);
        }
        r
    }

    async fn route(&self, r: &Req<'_>) -> Result<Reply, ApiError> {
        let segs: Vec<&str> = r.segs.iter().map(String::as_str).collect();
        let m = &r.method;
        let get = m == Method::GET;
        let post = m == Method::POST;
        let put = m == Method::PUT;
        let delete = m == Method::DELETE;
        match segs.as_slice() {
            ["strategies"] if get => strategies::list(self, r).await,
            ["strategies"] if post => strategies::create(self, r).await,
            ["strategies", id] if get => strategies::get(self, r, id).await,
            ["strategies", id] if put => strategies::update(self, r, id).await,
            ["strategies", id] if delete => strategies::delete(self, r, id).await,
            ["strategies", id, "activate"] if post => {
                strategies::set_active(self, r, id, true).await
            }
            ["strategies", id, "deactivate"] if post => {
                strategies::set_active(self, r, id, false).await
            }
            ["strategies", id, "run"] if post => strategies::run_now(self, r, id).await,
            ["strategies", id, "executions"] if get => strategies::executions(self, r, id).await,
            ["strategies", id, "schedule"] if get => strategies::schedule(self, r, id).await,
            ["executions", id] if get => strategies::execution(self, id).await,

            ["symbols"] if get => catalog::symbols(self, r).await,
            ["indicators"] if get => catalog::indicators(),
            ["prompts"] if get => catalog::list_prompts(self, r).await,
            ["prompts"] if post => catalog::create_prompt(self, r, None).await,
            ["prompts", id] if get => catalog::get_prompt(self, id, None).await,
            ["prompts", id] if put => catalog::create_prompt(self, r, Some(id)).await,
            ["prompts", id] if delete => catalog::delete_prompt(self, id).await,
            ["prompts", id, "versions"] if get => catalog::prompt_versions(self, id).await,
            ["prompts", id, "versions", v] if get => catalog::get_prompt(self, id, Some(v)).await,

            ["lineage", "execution", id] if get => lineage_api::execution(self, id).await,
            ["lineage", "execution", id, "step", name] if get => {
                lineage_api::step(self, id, name).await
            }
            ["lineage", "strategy", id, "recent"] if get => {
                lineage_api::strategy_recent(self, r, id).await
            }
            ["lineage", "step", name, "statistics"] if get => {
                lineage_api::statistics(self, r, name).await
            }
            ["lineage", "recent"] if get => lineage_api::recent(self, r).await,

            ["orders"] if get => trading::orders(self, r).await,
            ["orders", id] if get => trading::order(self, id).await,
            ["positions"] if get => trading::positions(self, r).await,
            ["trades"] if get => trading::trades(self, r).await,
            ["portfolio"] if get => trading::portfolio(self, r).await,
            ["stats"] if get => trading::stats(self).await,

            ["viewer"] if get => viewer::home(self, r).await,
            ["viewer", "strategy", id] if get => viewer::strategy(self, r, id).await,
            ["viewer", "execution", id] if get => viewer::execution(self, r, id).await,
            ["viewer", "portfolio"] if get => viewer::portfolio(self, r).await,
            ["viewer", "orders"] if get => viewer::orders(self, r).await,

            _ if get || post || put || delete => {
                // Same path, other method: 405; unknown path: 404.
                for other in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
                    if other != m && self.has_route(&other, &segs) {
                        return Err(ApiError::MethodNotAllowed(m.to_string()));
                    }
                }
                Err(ApiError::NotFound(format!("route /{}", segs.join("/"))))
            }
            _ => Err(ApiError::MethodNotAllowed(m.to_string())),
        }
    }

    fn has_route(&self, m: &Method, segs: &[&str]) -> bool {
        let get = m == Method::GET;
        let post = m == Method::POST;
        let put = m == Method::PUT;
        let delete = m == Method::DELETE;
        match segs {
            ["strategies"] => get || post,
            ["strategies", _] => get || put || delete,
            ["strategies", _, "activate" | "deactivate" | "run"] => post,
            ["prompts"] => get || post,
            ["prompts", _] => get || put || delete,
            ["strategies", _, "executions" | "schedule"]
            | ["executions", _]
            | [
                "symbols" | "indicators" | "orders" | "positions" | "trades" | "portfolio"
                | "stats",
            ]
            | ["orders", _]
            | ["prompts", _, "versions"]
            | ["prompts", _, "versions", _]
            | ["lineage", ..]
            | ["viewer", ..] => get,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_split_decoded_and_lose_the_local_prefix() {
        assert_eq!(
            segments("/lambda-url/api/lineage/execution/e-1/step/check_order%232"),
            ["lineage", "execution", "e-1", "step", "check_order#2"]
        );
        assert_eq!(segments("/strategies/"), ["strategies"]);
        assert_eq!(segments("/a%2"), ["a%2"]);
    }

    #[test]
    fn links_climb_back_to_the_api_root() {
        assert_eq!(root_of("/lambda-url/api/viewer", 1), "./");
        assert_eq!(root_of("/viewer/", 1), "../");
        assert_eq!(root_of("/viewer/execution/e-1", 3), "../../");
    }
}
