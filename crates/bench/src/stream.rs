//! Row 5 — streaming to the screen: read what `ui/bench/stream.mjs` measured in headless
//! Chromium (the real UI rendering a 10,000-delta reply against a bare `<pre>`), for a burst of
//! deltas and for deltas paced over animation frames as a model streams them.

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
    let count = |what: &str| v.get(what).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let n = count("deltas");
    let arrivals = [
        ("", format!("{n} deltas at once")),
        (
            "_paced",
            format!("{n} deltas, {} a frame", count("per_frame")),
        ),
    ];
    for (suffix, how) in arrivals {
        let ours = format!("ours{suffix}");
        let bare = format!("bare{suffix}");
        if let (Some(o), Some(b)) = (get(&ours, "task_ms"), get(&bare, "task_ms")) {
            rows.push(
                Row::new(format!("UI: {how}, main-thread time"), o, "ms").against("bare <pre>", b),
            );
        }
        if let (Some(o), Some(b)) = (get(&ours, "wall_ms"), get(&bare, "wall_ms")) {
            rows.push(
                Row::new(format!("UI: {how}, until the last word shows"), o, "ms")
                    .against("bare <pre>", b),
            );
        }
        if let (Some(o), Some(b)) = (
            get(&ours, "longest_frame_ms"),
            get(&bare, "longest_frame_ms"),
        ) {
            rows.push(
                Row::new(format!("UI: {how}, longest frame"), o, "ms")
                    .against("bare <pre>", b)
                    .target("≤ 50 ms (no visible jank)", o <= 50.0),
            );
        }
    }
}
