//! End to end in a real browser: a strategy created and run through the API, then
//! its execution opened in the lineage viewer by headless Chromium, driven over
//! WebDriver (chromedriver, from Debian's `chromium-driver`; `tests/install-chromium.sh`
//! installs both). Checks every step card, the chart image and the signal, and
//! saves a screenshot under `$CARGO_TARGET_DIR/test-artifacts/`.

mod api_support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_support::{Api, strategy_body};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tradeflow_adapters::workflow;
use tradeflow_integration_tests::{Stack, unique};

/// chromedriver for the test's lifetime; killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

impl Driver {
    async fn start() -> Self {
        let exe =
            which("chromedriver").expect("chromedriver not found: run tests/install-chromium.sh");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("webdriver")
            .local_addr()
            .expect("webdriver")
            .port();
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let d = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let t0 = Instant::now();
        loop {
            let ready = d.http.get(format!("{}/status", d.base)).send().await;
            if let Ok(r) = ready
                && r.json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true)
            {
                return d;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "chromedriver not ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver");
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn session(&self) -> String {
        let chrome = which("chromium").expect("chromium not found: run tests/install-chromium.sh");
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--hide-scrollbars"]
        }}}});
        let v = self
            .cmd(reqwest::Method::POST, "/session", Some(caps))
            .await;
        v["sessionId"].as_str().expect("webdriver").to_string()
    }

    async fn script(&self, sid: &str, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            &format!("/session/{sid}/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }
}

/// What the test reads from the rendered page.
const INSPECT: &str = r#"
const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0
    && getComputedStyle(el).visibility !== 'hidden' && getComputedStyle(el).display !== 'none'; };
const cards = [...document.querySelectorAll('section.step')].map(c => ({
    key: c.id.replace(/^step-/, ''), step: c.dataset.step, status: c.dataset.status, visible: visible(c),
    badge: (c.querySelector('.badge') || {}).textContent }));
const charts = [...document.querySelectorAll('img.chart')].map(i => ({
    complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, visible: visible(i),
    src: i.src, href: i.closest('a') ? i.closest('a').href : null }));
const s = document.getElementById('signal');
return { title: document.title, cards, charts,
    signal: s ? { text: s.textContent.replace(/\s+/g, ' ').trim(), visible: visible(s),
                  action: (s.querySelector('.action') || {}).textContent } : null,
    height: document.documentElement.scrollHeight };
"#;

#[tokio::test]
async fn the_viewer_shows_every_step_the_chart_and_the_signal_of_an_execution() {
    let (api, stack) = (Api::from_env(), Stack::connect().await.unwrap());
    let id = unique("browser");
    let (created, body) = api.post("strategies", &strategy_body(&id)).await;
    assert_eq!(created, StatusCode::CREATED, "{body}");
    let (started, run) = api.post(&format!("strategies/{id}/run"), &json!({})).await;
    assert_eq!(started, StatusCode::ACCEPTED, "{run}");
    let done = workflow::wait(
        &stack.sfn,
        run["execution_arn"].as_str().unwrap(),
        Duration::from_secs(600),
    )
    .await
    .unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{:?}", done.cause);
    let name = run["execution_id"].as_str().unwrap();
    let (status, lineage) = api.get(&format!("lineage/execution/{name}")).await;
    assert_eq!(status, StatusCode::OK, "{lineage}");
    let step_keys: Vec<String> = lineage["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {lineage}"))
        .iter()
        .map(|s| s["step_key"].as_str().unwrap().to_string())
        .collect();

    let driver = Driver::start().await;
    let sid = driver.session().await;
    // `?key=` logs the browser in: the viewer sets a cookie and redirects.
    let url = format!(
        "{}?key={}",
        api.url(&format!("viewer/execution/{name}")),
        api.key
    );
    driver
        .cmd(
            reqwest::Method::POST,
            &format!("/session/{sid}/url"),
            Some(json!({"url": url})),
        )
        .await;
    let t0 = Instant::now();
    while driver
        .script(&sid, "return document.readyState === 'complete' && [...document.images].every(i => i.complete)")
        .await
        != json!(true)
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "page did not finish loading");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = driver.script(&sid, INSPECT).await;
    let current = driver
        .cmd(reqwest::Method::GET, &format!("/session/{sid}/url"), None)
        .await;
    // A screenshot of the whole page: grow the window to the document first.
    let height = page["height"].as_u64().unwrap_or(1000).clamp(1000, 16_000);
    driver
        .cmd(
            reqwest::Method::POST,
            &format!("/session/{sid}/window/rect"),
            Some(json!({"width": 1400, "height": height})),
        )
        .await;
    let shot = driver
        .cmd(
            reqwest::Method::GET,
            &format!("/session/{sid}/screenshot"),
            None,
        )
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("viewer-execution.png");
    std::fs::write(&file, &png).unwrap();
    println!("screenshot: {} ({} bytes)", file.display(), png.len());
    driver
        .cmd(reqwest::Method::DELETE, &format!("/session/{sid}"), None)
        .await;

    assert!(
        !current.as_str().unwrap().contains("key="),
        "the key left the address bar: {current}"
    );
    assert!(
        page["title"].as_str().unwrap().contains(name),
        "{}",
        page["title"]
    );
    let cards = page["cards"].as_array().unwrap();
    assert_eq!(cards.len(), step_keys.len(), "{cards:?}");
    for key in &step_keys {
        let card = cards
            .iter()
            .find(|c| c["key"] == key.as_str())
            .unwrap_or_else(|| panic!("no card for {key}"));
        assert_eq!(card["visible"], true, "{key} hidden");
        assert_eq!(card["status"], "SUCCEEDED", "{key}");
        assert_eq!(card["badge"], "SUCCEEDED", "{key}");
    }
    let charts = page["charts"].as_array().unwrap();
    assert!(!charts.is_empty(), "no chart image on the page");
    let chart = &charts[0];
    assert_eq!(chart["complete"], true);
    assert_eq!(
        (chart["w"].as_u64(), chart["h"].as_u64()),
        (Some(1600), Some(900)),
        "chart did not load: {chart}"
    );
    assert_eq!(chart["visible"], true);
    assert_eq!(
        chart["href"], chart["src"],
        "click opens the full-size chart"
    );
    let signal = &page["signal"];
    assert_eq!(signal["visible"], true, "{signal}");
    assert!(
        ["BUY", "SELL", "HOLD"].contains(&signal["action"].as_str().unwrap()),
        "{signal}"
    );
    assert!(signal["text"].as_str().unwrap().contains("R:R"), "{signal}");
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "screenshot is not a PNG"
    );

    api.delete(&format!("strategies/{id}")).await;
}
