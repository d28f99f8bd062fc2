//! oha, the load generator for fixed requests: installed by the harness with
//! `cargo install oha --locked` into the tools directory, run once per
//! scenario with JSON output, its figures read back into [`Measured`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::load::Measured;
use crate::process::{Process, run_checked, run_shown};

/// The oha release the harness installs; figures are comparable only between
/// runs of one release.
pub const VERSION: &str = "1.16.0";

pub struct Oha {
    binary: PathBuf,
    json_flags: Vec<&'static str>,
    wait_flag: Option<&'static str>,
    pub version: String,
}

/// One fixed request, sent over and over.
pub struct Request<'a> {
    pub url: &'a str,
    pub method: &'a str,
    pub bearer: Option<&'a str>,
    pub body: Option<&'a str>,
}

impl Oha {
    /// Finds oha in `tools_dir/bin`, installing the pinned release there if it
    /// is missing or another release.
    pub async fn ensure(tools_dir: &Path) -> anyhow::Result<Oha> {
        let binary = tools_dir.join("bin").join("oha");
        let installed = version_of(&binary);
        if installed.as_deref() != Some(VERSION) {
            eprintln!(
                "scimd-bench: installing oha {VERSION} into {} (cargo install; takes a few minutes once)",
                tools_dir.display()
            );
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut install = Command::new(cargo);
            install
                .args(["install", "oha", "--locked", "--version", VERSION, "--root"])
                .arg(tools_dir);
            run_shown("cargo install oha", install).await?;
        }
        let version = version_of(&binary).with_context(|| format!("{} does not run", binary.display()))?;
        let help = run_checked("oha --help", Command::new(&binary).arg("--help"))?;
        // Recent releases take `--output-format json`, older ones `-j`.
        let json_flags = if help.contains("--output-format") {
            vec!["--output-format", "json"]
        } else {
            vec!["-j"]
        };
        let wait_flag = help
            .contains("--wait-ongoing-requests-after-deadline")
            .then_some("--wait-ongoing-requests-after-deadline");
        Ok(Oha {
            binary,
            json_flags,
            wait_flag,
            version,
        })
    }

    /// Sends `request` over `connections` connections for `duration`; every
    /// answer whose status is not in `expected` counts as an error.
    pub async fn run(
        &self,
        request: &Request<'_>,
        connections: usize,
        duration: Duration,
        expected: &[u16],
        scratch: &Path,
    ) -> anyhow::Result<Measured> {
        let mut command = Command::new(&self.binary);
        command
            .arg("--no-tui")
            .args(&self.json_flags)
            .args(["-z", &format!("{}ms", duration.as_millis().max(1))])
            .args(["-c", &connections.to_string()])
            .args(["-m", request.method]);
        if let Some(flag) = self.wait_flag {
            command.arg(flag);
        }
        if let Some(key) = request.bearer {
            command.args(["-H", &format!("Authorization: Bearer {key}")]);
        }
        if let Some(body) = request.body {
            command.args(["-T", "application/scim+json", "-d", body]);
        }
        command.arg(request.url);
        let log = scratch.join("oha.json");
        let mut oha = Process::spawn("oha", command, &log)?;
        let status = oha.wait(duration + Duration::from_secs(60)).await?;
        let output = std::fs::read_to_string(&log).context("reading oha's output")?;
        if !status.success() {
            bail!("oha failed ({status}) on {}: {output}", request.url);
        }
        parse(&output, expected).with_context(|| format!("reading oha's JSON for {}: {output}", request.url))
    }
}

fn version_of(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "oha 1.16.0"
    text.split_whitespace().nth(1).map(str::to_string)
}

/// Reads oha's JSON summary. Requests still in flight at the deadline are
/// not counted (oha reports them as "aborted due to deadline").
fn parse(output: &str, expected: &[u16]) -> anyhow::Result<Measured> {
    // oha may print a line of its own before the document.
    let start = output.find('{').context("no JSON document")?;
    let json: Value = serde_json::from_str(&output[start..])?;
    let number = |pointer: &str| json.pointer(pointer).and_then(Value::as_f64);
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    let mut requests = 0;
    if let Some(distribution) = json.get("statusCodeDistribution").and_then(Value::as_object) {
        for (status, count) in distribution {
            let count = count.as_u64().unwrap_or(0);
            requests += count;
            if !status.parse::<u16>().is_ok_and(|s| expected.contains(&s)) {
                errors += count;
            }
            statuses.insert(status.clone(), count);
        }
    }
    if let Some(distribution) = json.get("errorDistribution").and_then(Value::as_object) {
        for (error, count) in distribution {
            if error.contains("aborted due to deadline") {
                continue;
            }
            let count = count.as_u64().unwrap_or(0);
            requests += count;
            errors += count;
            *statuses.entry("transport".to_string()).or_default() += count;
        }
    }
    let seconds = number("/summary/total").context("no summary.total")?;
    Ok(Measured {
        tool: "oha",
        requests,
        seconds,
        requests_per_sec: number("/summary/requestsPerSec").context("no summary.requestsPerSec")?,
        p50_ms: number("/latencyPercentiles/p50").unwrap_or(0.0) * 1000.0,
        p99_ms: number("/latencyPercentiles/p99").unwrap_or(0.0) * 1000.0,
        errors,
        statuses,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn unexpected_statuses_and_transport_errors_count_as_errors_but_deadline_aborts_do_not() {
        let output = r#"{"summary":{"successRate":1.0,"total":2.0,"requestsPerSec":150.0},
            "latencyPercentiles":{"p50":0.002,"p99":0.010},
            "statusCodeDistribution":{"200":290,"500":10},
            "errorDistribution":{"aborted due to deadline":4,"connection refused":3}}"#;
        let measured = parse(output, &[200]).expect("parses");
        assert_eq!(measured.requests, 303);
        assert_eq!(measured.errors, 13);
        assert_eq!(measured.p50_ms, 2.0);
        assert_eq!(measured.p99_ms, 10.0);
        assert_eq!(measured.statuses.get("transport"), Some(&3));
    }
}
