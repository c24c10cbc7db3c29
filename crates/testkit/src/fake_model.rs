//! A fake OpenAI-compatible model server for the real OpenClaw gateway: `GET /v1/models` and
//! `POST /v1/chat/completions` streaming SSE chunks. Each reply is driven by markers in the
//! conversation, so tests running in parallel never disturb each other:
//!
//! - `#id=TAG#` — the reply starts with `ok TAG:` (default `ok:`),
//! - `#words=N#` — then ` w1 … wN` (default 5), one chunk each,
//! - `#delay=MS#` — pause between chunks (default 100 ms: the gateway merges faster chunks),
//! - `#fail#` — answer HTTP 500 instead.
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
    let mut pieces = vec![match tag {
        Some(t) => format!("ok {t}:"),
        None => "ok:".to_owned(),
    }];
    pieces.extend((1..=words).map(|i| format!(" w{i}")));
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
