//! A minimal W3C WebDriver client: JSON over HTTP/1.0 on loopback, enough to drive the real app
//! through `tauri-driver` (find, click, type, read, run a script, screenshot, wait).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The W3C key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often `wait_*` polls.
const POLL: Duration = Duration::from_millis(100);

/// W3C "Enter" key, for `send_keys`.
pub const ENTER: &str = "\u{E007}";
/// W3C "Escape" key.
pub const ESCAPE: &str = "\u{E00C}";

/// A WebDriver session (one app instance).
pub struct Session {
    addr: SocketAddr,
    id: String,
}

/// An element reference in a session.
#[derive(Debug, Clone)]
pub struct Element(String);

/// A WebDriver error, with the server's own words.
#[derive(Debug)]
pub struct WdError(pub String);

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest one WebDriver request may take. Starting the app (a new session) under a loaded
/// CI machine takes seconds; a driver that never answers must fail the test, not hang the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, WdError> {
    tokio::time::timeout(REQUEST_TIMEOUT, call_once(addr, method, path, body))
        .await
        .map_err(|_| {
            WdError(format!(
                "{method} {path}: the WebDriver at {addr} did not answer in {REQUEST_TIMEOUT:?}"
            ))
        })?
}

async fn call_once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, WdError> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| WdError(format!("connect to the WebDriver at {addr}: {e}")))?;
    // HTTP/1.0: the server closes after one response and never chunks it
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| WdError(format!("send {method} {path}: {e}")))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| WdError(format!("read the answer to {method} {path}: {e}")))?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(WdError(format!("{method} {path}: not an HTTP response"))),
    };
    let status = response.code.unwrap_or(0);
    let value: Value = serde_json::from_slice(&raw[head..])
        .map_err(|e| WdError(format!("{method} {path}: answer is not JSON ({e})")))?;
    let value = value.get("value").cloned().unwrap_or(Value::Null);
    if status >= 400 || value.get("error").is_some() {
        return Err(WdError(format!(
            "{method} {path} → {status}: {} {}",
            value["error"].as_str().unwrap_or(""),
            value["message"].as_str().unwrap_or("")
        )));
    }
    Ok(value)
}

impl Session {
    /// Start `application` (with `args`) through the WebDriver at `addr`.
    pub async fn start(
        addr: SocketAddr,
        application: &Path,
        args: &[&str],
    ) -> Result<Session, WdError> {
        let caps = json!({"capabilities": {"alwaysMatch": {"tauri:options": {
            "application": application, "args": args
        }}}});
        Self::open(addr, &caps).await
    }

    async fn open(addr: SocketAddr, caps: &Value) -> Result<Session, WdError> {
        let v = call(addr, "POST", "/session", Some(caps)).await?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| WdError(format!("no session id in {v}")))?
            .to_owned();
        Ok(Session { addr, id })
    }

    /// A session with the browser the driver at `addr` is attached to (`WebKitWebDriver
    /// --target`: the app was started by someone else).
    pub async fn attach(addr: SocketAddr) -> Result<Session, WdError> {
        Self::open(addr, &json!({"capabilities": {"alwaysMatch": {}}})).await
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        call(
            self.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body.as_ref(),
        )
        .await
    }

    /// The first element matching a CSS selector, now.
    pub async fn find(&self, css: &str) -> Result<Element, WdError> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v[ELEMENT_KEY]
            .as_str()
            .map(|s| Element(s.to_owned()))
            .ok_or_else(|| WdError(format!("no element reference in {v}")))
    }

    /// The first element matching `css`, waiting up to `timeout` for it to appear.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element, WdError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.find(css).await {
                Ok(e) => return Ok(e),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(WdError(format!("{css} did not appear in {timeout:?}: {e}")))
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Click it.
    pub async fn click(&self, e: &Element) -> Result<(), WdError> {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .await
            .map(drop)
    }

    /// Click the element matching `css`, finding it again when the page re-rendered it between
    /// the find and the click (a "stale element reference"), as a person would click what is
    /// on screen now. Waits up to `timeout` for it to be there.
    pub async fn click_css(&self, css: &str, timeout: Duration) -> Result<(), WdError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let e = self.wait_for(css, timeout).await?;
            match self.click(&e).await {
                Ok(()) => return Ok(()),
                Err(err) if err.0.contains("stale element") => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(err);
                    }
                    tokio::time::sleep(POLL).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Type into it (W3C key codes such as [`ENTER`] allowed).
    pub async fn send_keys(&self, e: &Element, text: &str) -> Result<(), WdError> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    /// Empty an input.
    pub async fn clear(&self, e: &Element) -> Result<(), WdError> {
        self.cmd("POST", &format!("/element/{}/clear", e.0), Some(json!({})))
            .await
            .map(drop)
    }

    /// Its rendered text.
    pub async fn text(&self, e: &Element) -> Result<String, WdError> {
        let v = self
            .cmd("GET", &format!("/element/{}/text", e.0), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Run `script` (a function body; `arguments` holds `args`) in the page; returns its result.
    pub async fn exec(&self, script: &str, args: Value) -> Result<Value, WdError> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Poll `script` (with `args`) until it returns something truthy (not null/false/""/0);
    /// returns that. On timeout the error carries the page's text.
    pub async fn wait_js(
        &self,
        what: &str,
        script: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, WdError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = self.exec(script, args.clone()).await?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                let page = self
                    .exec(
                        "return document.body ? document.body.innerText : ''",
                        json!([]),
                    )
                    .await
                    .unwrap_or_default();
                return Err(WdError(format!(
                    "timed out after {timeout:?} waiting for {what}; the page shows:\n{}",
                    page.as_str().unwrap_or_default()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A PNG of the window, as WebDriver renders it.
    pub async fn screenshot(&self) -> Result<Vec<u8>, WdError> {
        let v = self.cmd("GET", "/screenshot", None).await?;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| WdError(format!("screenshot is not base64: {e}")))
    }

    /// End the session (the driver closes the app).
    pub async fn quit(self) -> Result<(), WdError> {
        call(self.addr, "DELETE", &format!("/session/{}", self.id), None)
            .await
            .map(drop)
    }
}
