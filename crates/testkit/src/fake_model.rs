//! A fake OpenAI-compatible model server for the real OpenClaw gateway: `GET /v1/models` and
//! `POST /v1/chat/completions` streaming SSE chunks. Each reply is driven by markers in the
//! conversation, so tests running in parallel never disturb each other:
//!
//! - `#id=TAG#` — the reply starts with `ok TAG:` (default `ok:`),
//! - `#words=N#` — then ` w1 … wN` (default 5), one chunk each,
//! - `#delay=MS#` — pause between chunks (default 100 ms: the gateway merges faster chunks),
//! - `#fail#` — answer HTTP 500 instead,
//! - `#exec=COMMAND#` — first call the gateway's `exec` tool with `COMMAND` (a tool call, as a
//!   real model would); once the tool's result is in the conversation, reply
//!   `ok TAG: exec said: RESULT` (the result's text, whitespace folded) — so a test sees whether
//!   the command really ran, or how it was refused.
//!
//! The newest marker of each kind wins (the gateway wraps the person's message in context). Runs on its own thread and runtime, so it outlives any
//! single test's runtime.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The text the model streams for a user message `text`.
#[must_use]
pub fn reply_for(text: &str) -> String {
    let (tag, words, _) = markers(text);
    let mut s = match tag {
        Some(t) => format!("ok {t}:"),
        None => "ok:".to_owned(),
    };
    for i in 1..=words {
        s.push_str(&format!(" w{i}"));
    }
    s
}

fn marker<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    // the last occurrence: the newest message comes last in the conversation
    let start = text.rfind(&format!("#{name}="))? + name.len() + 2;
    let end = text[start..].find('#')? + start;
    Some(&text[start..end])
}

fn markers(text: &str) -> (Option<String>, usize, Duration) {
    let tag = marker(text, "id").map(str::to_owned);
    let words = marker(text, "words")
        .and_then(|w| w.parse().ok())
        .unwrap_or(5);
    let delay = marker(text, "delay")
        .and_then(|d| d.parse().ok())
        .unwrap_or(100);
    (tag, words, Duration::from_millis(delay))
}

/// Start the server on a free loopback port; returns its address.
#[must_use]
pub fn start() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            loop {
                if let Ok((s, _)) = listener.accept().await {
                    tokio::spawn(serve(s));
                }
            }
        });
    });
    rx.recv().expect("fake model address")
}

async fn read_request(s: &mut TcpStream) -> Option<(String, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            let mut body = buf[pos + 4..].to_vec();
            while body.len() < len {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            let mut first = head.lines().next().unwrap_or("").split_whitespace();
            let method = first.next().unwrap_or("").to_owned();
            let path = first.next().unwrap_or("").to_owned();
            return Some((method, path, String::from_utf8_lossy(&body).into_owned()));
        }
    }
}

fn user_texts(body: &Value) -> String {
    let Some(msgs) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    msgs.iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tool's result, when the gateway sent it after the last assistant message (the tool call):
/// its text, whitespace folded.
fn tool_result(body: &Value) -> Option<String> {
    let msgs = body.get("messages")?.as_array()?;
    let start = msgs
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))?;
    let result = msgs[start..]
        .iter()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("tool"))?;
    let text = match result.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The name of the gateway's exec tool among the request's tools.
fn exec_tool(body: &Value) -> String {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .find(|n| *n == "exec" || n.ends_with("exec"))
        .unwrap_or("exec")
        .to_owned()
}

/// The reply text to a conversation whose last message is the exec tool's `result`.
#[must_use]
pub fn reply_after_exec(tag: Option<&str>, result: &str) -> String {
    match tag {
        Some(t) => format!("ok {t}: exec said: {result}"),
        None => format!("ok: exec said: {result}"),
    }
}

async fn write_json(s: &mut TcpStream, b: &Value) {
    let b = b.to_string();
    let _ = s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).as_bytes()).await;
}

/// Answer with a call of the exec tool (streamed when asked to stream).
async fn call_exec(s: &mut TcpStream, req: &Value, command: &str) {
    let tool = exec_tool(req);
    let args = json!({"command": command}).to_string();
    let call = json!({"id": "call_exec_1", "type": "function", "function": {"name": tool, "arguments": args}});
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        write_json(s, &json!({"id":"chatcmpl-fake","object":"chat.completion","created":1,"model":"fake-model",
            "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[call]},"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})).await;
        return;
    }
    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n").await.is_err() {
        return;
    }
    let mut streamed = call.clone();
    streamed["index"] = json!(0);
    let first = json!({"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[streamed]},"finish_reason":null}]});
    let stop = json!({"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]});
    let usage = json!({"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}});
    let _ = s
        .write_all(
            format!("data: {first}\n\ndata: {stop}\n\ndata: {usage}\n\ndata: [DONE]\n\n")
                .as_bytes(),
        )
        .await;
    let _ = s.shutdown().await;
}

async fn serve(mut s: TcpStream) {
    let Some((method, path, body)) = read_request(&mut s).await else {
        return;
    };
    if method == "GET" && path.ends_with("/models") {
        let b = json!({"object":"list","data":[{"id":"fake-model","object":"model","owned_by":"clawtray-tests"}]}).to_string();
        let _ = s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).as_bytes()).await;
        return;
    }
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Some(dir) = std::env::var_os("CLAWTRAY_FAKE_MODEL_DUMP") {
        // a developer aid: every request the gateway sent, as it sent it
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{n}.json")), &body);
    }
    // The gateway adds its own context around the person's message, so look at every user
    // message and take the newest markers.
    let text = user_texts(&req);
    if text.contains("#fail#") {
        let b =
            json!({"error":{"message":"the fake model was told to fail","type":"server_error"}})
                .to_string();
        let _ = s.write_all(format!("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).as_bytes()).await;
        return;
    }
    let (tag, words, delay) = markers(&text);
    let after_exec = tool_result(&req);
    if after_exec.is_none() {
        // only this turn's user messages (after the last assistant message) ask for a command:
        // an older one already ran
        let newest = req
            .get("messages")
            .and_then(Value::as_array)
            .map(|m| {
                let start = m
                    .iter()
                    .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                    .map_or(0, |i| i + 1);
                user_texts(&json!({"messages": m[start..].to_vec()}))
            })
            .unwrap_or_default();
        if let Some(command) = marker(&newest, "exec") {
            call_exec(&mut s, &req, command).await;
            return;
        }
    }
    let pieces = match &after_exec {
        Some(result) => vec![reply_after_exec(tag.as_deref(), result)],
        None => {
            let mut p = vec![match &tag {
                Some(t) => format!("ok {t}:"),
                None => "ok:".to_owned(),
            }];
            p.extend((1..=words).map(|i| format!(" w{i}")));
            p
        }
    };
    let streaming = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !streaming {
        let b = json!({"id":"chatcmpl-fake","object":"chat.completion","created":1,"model":"fake-model",
            "choices":[{"index":0,"message":{"role":"assistant","content":pieces.concat()},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":1,"completion_tokens":words,"total_tokens":words + 1}}).to_string();
        let _ = s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).as_bytes()).await;
        return;
    }
    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n").await.is_err() {
        return;
    }
    for (i, piece) in pieces.iter().enumerate() {
        let delta = if i == 0 {
            json!({"role":"assistant","content":piece})
        } else {
            json!({"content":piece})
        };
        let chunk = json!({"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[{"index":0,"delta":delta,"finish_reason":null}]});
        if s.write_all(format!("data: {chunk}\n\n").as_bytes())
            .await
            .is_err()
        {
            return; // the gateway aborted the run
        }
        tokio::time::sleep(delay).await;
    }
    let stop = json!({"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
    let usage = json!({"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":"fake-model","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":words,"total_tokens":words + 1}});
    let _ = s
        .write_all(format!("data: {stop}\n\ndata: {usage}\n\ndata: [DONE]\n\n").as_bytes())
        .await;
    let _ = s.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_drive_the_reply() {
        assert_eq!(reply_for("hello #id=a1# #words=3#"), "ok a1: w1 w2 w3");
        assert_eq!(reply_for("plain"), "ok: w1 w2 w3 w4 w5");
        assert_eq!(markers("#delay=7#").2, Duration::from_millis(7));
    }
}
