//! Row 4 — crypto: seal + open throughput against raw `aes-gcm` on the same buffers, read from
//! the criterion run `scripts/bench` does first (`crates/proto/benches/sealed.rs`).

use std::path::Path;

use crate::report::Row;

/// Mean nanoseconds per iteration of one criterion benchmark.
fn mean_ns(dir: &Path, id: &str, size: usize) -> Option<f64> {
    let p = dir
        .join("crypto")
        .join(id)
        .join(size.to_string())
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    v.pointer("/mean/point_estimate")?.as_f64()
}

pub fn run(rows: &mut Vec<Row>, criterion_dir: &Path) {
    for (size, label) in [(64, "64 B"), (1024, "1 KiB"), (64 * 1024, "64 KiB")] {
        let (Some(sealed), Some(raw)) = (
            mean_ns(criterion_dir, "sealed_roundtrip", size),
            mean_ns(criterion_dir, "raw_aes_gcm_roundtrip", size),
        ) else {
            eprintln!(
                "bench: no criterion results under {} (run scripts/bench)",
                criterion_dir.display()
            );
            return;
        };
        let mibs = |ns: f64| size as f64 / ns * 1e9 / (1024.0 * 1024.0);
        rows.push(
            Row::new(
                format!("seal + open, {label} frames"),
                mibs(sealed),
                "MiB/s",
            )
            .against("raw aes-gcm", mibs(raw)),
        );
    }
}
