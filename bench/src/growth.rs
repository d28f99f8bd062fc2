//! `scimd-bench growth SMALL.json LARGE.json`: how scimd's figures grow from
//! one run's directory size to another's, as a Markdown table, with the
//! issue's two growth targets judged (userName eq p99 at the large size
//! ≤ 2× the small; peak RSS on SQLite ≤ 150 MB at 1,000,000 users).
//!
//! It reads the JSON reports that runs write, so the table can be remade
//! from committed or archived results without running anything.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use crate::scenarios::thousands;

/// The scimd targets, in report order.
const TARGETS: [(&str, &str); 2] = [
    ("scimd-sqlite", "scimd (SQLite)"),
    ("scimd-postgres", "scimd (PostgreSQL)"),
];

const RSS_LIMIT_MB: f64 = 150.0;

struct Run {
    users: u64,
    report: Value,
}

impl Run {
    fn read(path: &Path) -> anyhow::Result<Run> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let users = report["settings"]["users"]
            .as_u64()
            .with_context(|| format!("{} has no settings.users", path.display()))?;
        Ok(Run { users, report })
    }

    fn target(&self, name: &str) -> Option<&Value> {
        self.report["targets"]
            .as_array()?
            .iter()
            .find(|t| t["target"] == name && t["failure"].is_null())
    }
}

fn scenario<'a>(target: &'a Value, name: &str) -> Option<&'a Value> {
    target["scenarios"]
        .as_array()?
        .iter()
        .find(|s| s["scenario"] == name && s["failure"].is_null() && s["errors"] == 0)
}

fn number(value: &Value, field: &str) -> Option<f64> {
    value[field].as_f64()
}

/// The Markdown table and judged targets for two runs; errors if either
/// file cannot be read or they are the same size.
pub fn compare(small: &Path, large: &Path) -> anyhow::Result<String> {
    let (small, large) = (Run::read(small)?, Run::read(large)?);
    anyhow::ensure!(
        small.users < large.users,
        "the first run ({} users) must be the smaller one ({} users)",
        small.users,
        large.users
    );
    let (s, l) = (thousands(small.users), thousands(large.users));
    let mut out = String::new();
    let _ = writeln!(out, "### Growth: {s} → {l} users\n");
    let _ = writeln!(
        out,
        "| target | scenario | req/s at {s} | req/s at {l} | p99 ms at {s} | p99 ms at {l} | p99 ratio |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    let mut checks = Vec::new();
    for (name, label) in TARGETS {
        let (Some(a), Some(b)) = (small.target(name), large.target(name)) else {
            continue;
        };
        let names: Vec<&str> = a["scenarios"]
            .as_array()
            .map(|list| list.iter().filter_map(|s| s["scenario"].as_str()).collect())
            .unwrap_or_default();
        for scenario_name in names {
            let (Some(x), Some(y)) = (scenario(a, scenario_name), scenario(b, scenario_name)) else {
                continue;
            };
            let (Some(rx), Some(ry), Some(px), Some(py)) = (
                number(x, "requests_per_sec"),
                number(y, "requests_per_sec"),
                number(x, "p99_ms"),
                number(y, "p99_ms"),
            ) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {label} | {scenario_name} | {rx:.0} | {ry:.0} | {px:.2} | {py:.2} | {:.2}× |",
                py / px
            );
            if scenario_name == "filter-username" {
                checks.push((
                    format!("userName eq p99 at {l} users ≤ 2× its p99 at {s} users"),
                    label,
                    format!("{py:.2} ms vs {px:.2} ms: {:.2}×", py / px),
                    py / px <= 2.0,
                ));
            }
        }
        if name == "scimd-sqlite"
            && let Some(kib) = b["peak_rss_kib"].as_f64()
        {
            let mb = kib * 1024.0 / 1e6;
            checks.push((
                format!("peak RSS at {l} users ≤ {RSS_LIMIT_MB:.0} MB on SQLite"),
                label,
                format!("{mb:.1} MB ({:.1} MiB)", kib / 1024.0),
                mb <= RSS_LIMIT_MB,
            ));
        }
    }
    let _ = writeln!(out, "\n| goal | target | measured | status |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for (goal, label, measured, met) in checks {
        let status = if met { "met" } else { "not met" };
        let _ = writeln!(out, "| {goal} | {label} | {measured} | {status} |");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(users: u64, p99: f64, rss_kib: u64) -> String {
        serde_json::json!({
            "settings": { "users": users },
            "targets": [{
                "target": "scimd-sqlite",
                "failure": null,
                "peak_rss_kib": rss_kib,
                "scenarios": [
                    { "scenario": "filter-username", "requests_per_sec": 1000.0, "p50_ms": 1.0,
                      "p99_ms": p99, "errors": 0, "failure": null },
                ],
            }],
        })
        .to_string()
    }

    #[test]
    fn growth_judges_the_username_p99_ratio_and_the_peak_rss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = dir.path().join("small.json");
        let large = dir.path().join("large.json");
        std::fs::write(&small, report(10_000, 4.0, 100_000)).expect("write");
        std::fs::write(&large, report(1_000_000, 9.0, 120_000)).expect("write");
        let table = compare(&small, &large).expect("compare");
        assert!(
            table.contains("| scimd (SQLite) | filter-username | 1000 | 1000 | 4.00 | 9.00 | 2.25× |"),
            "{table}"
        );
        assert!(table.contains("9.00 ms vs 4.00 ms: 2.25× | not met"), "{table}");
        assert!(table.contains("122.9 MB (117.2 MiB) | met"), "{table}");
        assert!(compare(&large, &small).is_err(), "the smaller run comes first");
    }
}
