//! The table: one row per figure, its baseline measured in the same run, the ratio, the target
//! and what limits it. Printed to stdout and written to `target/bench/report.md`.

use std::fmt::Write as _;
use std::path::Path;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub value: f64,
    pub baseline_name: String,
    pub baseline: Option<f64>,
    pub unit: &'static str,
    /// e.g. "≤ 1.2×" — empty when the row has none.
    pub target: String,
    /// Whether the target is met (None: no target).
    pub met: Option<bool>,
}

impl Row {
    pub fn new(figure: impl Into<String>, value: f64, unit: &'static str) -> Row {
        Row {
            figure: figure.into(),
            value,
            baseline_name: String::new(),
            baseline: None,
            unit,
            target: String::new(),
            met: None,
        }
    }

    pub fn against(mut self, name: impl Into<String>, baseline: f64) -> Row {
        self.baseline_name = name.into();
        self.baseline = Some(baseline);
        self
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    pub fn ratio(&self) -> Option<f64> {
        self.baseline.filter(|b| *b != 0.0).map(|b| self.value / b)
    }
}

fn num(v: f64, unit: &str) -> String {
    let n = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if unit.is_empty() {
        n
    } else {
        format!("{n} {unit}")
    }
}

/// The table as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| figure | clawtray | baseline (same run) | ratio | target |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let baseline = match r.baseline {
            Some(b) => format!("{}: {}", r.baseline_name, num(b, r.unit)),
            None => "—".into(),
        };
        // small ratios keep two significant digits (0.0046×, not 0.00×)
        let ratio = r.ratio().map_or("—".into(), |x| {
            if x > 0.0 && x < 0.01 {
                let places = (1.0 - x.log10().floor()) as usize;
                format!("{x:.places$}×")
            } else {
                format!("{x:.2}×")
            }
        });
        let target = match r.met {
            Some(true) => format!("{} ✓", r.target),
            Some(false) => format!("{} ✗", r.target),
            None => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.figure,
            num(r.value, r.unit),
            baseline,
            ratio,
            target
        );
    }
    s
}

/// Print and write `report.md` under `dir`, with a header naming the machine.
pub fn write(rows: &[Row], dir: &Path, machine: &str) -> std::io::Result<()> {
    let table = markdown(rows);
    println!("\n{table}");
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("report.md"),
        format!("# clawtray benchmarks\n\n{machine}\n\n{table}"),
    )
}

/// The machine, for the report's header.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!(
        "Machine: {cpu}, {cores} cores, {mem_gib:.0} GiB RAM, {}.",
        std::env::consts::OS
    )
}
