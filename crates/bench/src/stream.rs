//! Row 5 — streaming to the screen: read what `ui/bench/stream.mjs` measured in headless
//! Chromium (the real UI rendering a 10,000-delta reply against a bare `<pre>`).

use std::path::Path;

use crate::report::Row;

pub fn run(rows: &mut Vec<Row>, json: &Path) {
    let Some(v) = std::fs::read(json)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        eprintln!(
            "bench: no streaming results at {} (run scripts/bench)",
            json.display()
        );
        return;
    };
    let get = |side: &str, what: &str| {
        v.pointer(&format!("/{side}/{what}"))
            .and_then(serde_json::Value::as_f64)
    };
    let n = v
        .get("deltas")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if let (Some(ours), Some(bare)) = (get("ours", "task_ms"), get("bare", "task_ms")) {
        rows.push(
            Row::new(format!("UI: {n}-delta reply, main-thread time"), ours, "ms")
                .against("bare <pre>", bare),
        );
    }
    if let (Some(ours), Some(bare)) = (get("ours", "wall_ms"), get("bare", "wall_ms")) {
        rows.push(
            Row::new(
                format!("UI: {n}-delta reply, until the last word shows"),
                ours,
                "ms",
            )
            .against("bare <pre>", bare),
        );
    }
    if let (Some(ours), Some(bare)) = (
        get("ours", "longest_frame_ms"),
        get("bare", "longest_frame_ms"),
    ) {
        rows.push(
            Row::new("UI: longest frame while streaming", ours, "ms")
                .against("bare <pre>", bare)
                .target("≤ 50 ms (no visible jank)", ours <= 50.0),
        );
    }
}
