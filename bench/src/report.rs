//! The run's results: JSON with every figure, and Markdown tables (one per
//! scenario, rows per target, ratios to scimd on SQLite from the same run),
//! plus the targets checked against this run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{Settings, TargetKind};
use crate::load::Measured;
use crate::scenarios::{Scenario, TargetReport, thousands};

#[derive(Debug, Serialize)]
pub struct Report {
    pub started_at: String,
    pub finished_at: String,
    pub seconds: f64,
    pub command: String,
    pub settings: Settings,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    pub targets: Vec<TargetReport>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_mib: u64,
    pub cpu: String,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_mib: memory_kib / 1024,
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

/// One of the targets, judged on this run's figures.
#[derive(Debug, Serialize)]
pub struct Check {
    pub goal: String,
    pub target: String,
    pub measured: String,
    /// `met`, `not met`, or `not measured`.
    pub status: &'static str,
}

impl Report {
    fn target(&self, kind: TargetKind) -> Option<&TargetReport> {
        self.targets.iter().find(|t| t.target == kind)
    }

    fn rps(&self, kind: TargetKind, scenario: Scenario) -> Option<f64> {
        self.target(kind)
            .and_then(|t| t.result(scenario))
            .filter(|m| m.errors == 0 && m.requests_per_sec > 0.0)
            .map(|m| m.requests_per_sec)
    }

    fn p99(&self, kind: TargetKind, scenario: Scenario) -> Option<f64> {
        self.target(kind)
            .and_then(|t| t.result(scenario))
            .filter(|m| m.errors == 0)
            .map(|m| m.p99_ms)
    }

    /// Judges the targets on this run, for each scimd backend run.
    pub fn compute_checks(&mut self) {
        let mut checks = Vec::new();
        let scimds: Vec<TargetKind> = self.targets.iter().map(|t| t.target).filter(|k| k.is_scimd()).collect();
        let ratio_check = |goal: &str, scimd: TargetKind, ours: Option<f64>, theirs: Option<f64>, at_least: f64| {
            let (measured, status) = match (ours, theirs) {
                (Some(a), Some(b)) if b > 0.0 => {
                    let r = a / b;
                    (times(r), if r >= at_least { "met" } else { "not met" })
                }
                _ => ("—".to_string(), "not measured"),
            };
            Check {
                goal: goal.to_string(),
                target: scimd.label().to_string(),
                measured,
                status,
            }
        };
        for &scimd in &scimds {
            let get = self.rps(scimd, Scenario::GetUser);
            for (peer, name) in [
                (TargetKind::Scim2Server, "scim2-server"),
                (TargetKind::Scimmy, "SCIMMY"),
            ] {
                checks.push(ratio_check(
                    &format!("GET /Users/{{id}} with key auth ≥ 10× {name}"),
                    scimd,
                    get,
                    self.rps(peer, Scenario::GetUser),
                    10.0,
                ));
            }
            checks.push(ratio_check(
                "GET /Users/{id} with key auth ≥ 50% of the bare actix-web ceiling",
                scimd,
                get,
                self.rps(TargetKind::Ceiling, Scenario::GetUser),
                0.5,
            ));
            for (scenario, how) in [(Scenario::ListIndex, "by index"), (Scenario::ListCursor, "by cursor")] {
                for (peer, name) in [
                    (TargetKind::Scim2Server, "scim2-server"),
                    (TargetKind::Scimmy, "SCIMMY"),
                ] {
                    checks.push(ratio_check(
                        &format!("a page of 100 users {how} ≥ 50× {name} (its page by index)"),
                        scimd,
                        self.rps(scimd, scenario),
                        self.rps(peer, Scenario::ListIndex),
                        50.0,
                    ));
                }
            }
            checks.push(ratio_check(
                "key auth costs ≤ 10% of throughput: GET /Me (key) ≥ 0.9× GET /ServiceProviderConfig (no key)",
                scimd,
                self.rps(scimd, Scenario::AuthMe),
                self.rps(scimd, Scenario::AuthBaseline),
                0.9,
            ));
            checks.push(Check {
                goal: "userName eq p99 at 1,000,000 users ≤ 2× its p99 at 10,000 users".into(),
                target: scimd.label().to_string(),
                measured: match self.p99(scimd, Scenario::FilterUserName) {
                    Some(p99) => format!(
                        "p99 {p99:.2} ms at {} users; compare the JSON of a 10,000- and a 1,000,000-user run",
                        thousands(self.settings.users as u64)
                    ),
                    None => "—".into(),
                },
                status: "not measured",
            });
            let (small, big) = (
                self.p99(scimd, Scenario::PatchMemberSmall),
                self.p99(scimd, Scenario::PatchMemberBig),
            );
            checks.push(Check {
                goal: format!(
                    "member add/remove p99 at {} members ≤ 2× its p99 at 10 members",
                    thousands(self.settings.members as u64)
                ),
                target: scimd.label().to_string(),
                measured: match (small, big) {
                    (Some(s), Some(b)) if s > 0.0 => format!("{b:.2} ms vs {s:.2} ms: {}", times(b / s)),
                    _ => "—".into(),
                },
                status: match (small, big) {
                    (Some(s), Some(b)) if s > 0.0 && self.settings.members >= 100_000 => {
                        if b <= 2.0 * s {
                            "met"
                        } else {
                            "not met"
                        }
                    }
                    _ => "not measured",
                },
            });
            checks.push(ratio_check(
                "POST /Users ≥ 5× scim2-server",
                scimd,
                self.rps(scimd, Scenario::CreateUser),
                self.rps(TargetKind::Scim2Server, Scenario::CreateUser),
                5.0,
            ));
            let bulk = self
                .target(scimd)
                .and_then(|t| t.bulk.as_ref())
                .filter(|b| b.failure.is_none() && b.creates_per_sec > 0.0)
                .map(|b| b.creates_per_sec);
            checks.push(ratio_check(
                "Bulk creates ≥ 5× single POSTs per user (creates/s)",
                scimd,
                bulk,
                self.rps(scimd, Scenario::CreateUser),
                5.0,
            ));
            if scimd == TargetKind::ScimdSqlite {
                let rss = self.target(scimd).and_then(|t| t.peak_rss_kib);
                let at_size = self.settings.users >= 1_000_000;
                checks.push(Check {
                    goal: "peak RSS at 1,000,000 users ≤ 150 MB on SQLite".into(),
                    target: scimd.label().to_string(),
                    measured: match rss {
                        Some(kib) => format!("{} at {} users", mib(kib), thousands(self.settings.users as u64)),
                        None => "—".into(),
                    },
                    status: match rss {
                        Some(kib) if at_size => {
                            if kib * 1024 <= 150_000_000 {
                                "met"
                            } else {
                                "not met"
                            }
                        }
                        _ => "not measured",
                    },
                });
            }
        }
        self.checks = checks;
    }

    pub fn markdown(&self) -> String {
        let s = &self.settings;
        let mut md = String::new();
        let _ = writeln!(md, "# scimd benchmark, {}\n", self.started_at);
        let _ = writeln!(md, "Command: `{}`  ", self.command);
        let _ = writeln!(
            md,
            "Settings: {} users, {} connections, {} s per scenario, big group of {} members, Bulk of {} creates × {}; \
             scimd connects to PostgreSQL with sslmode {}.  ",
            thousands(s.users as u64),
            s.connections,
            s.duration_secs,
            thousands(s.members as u64),
            thousands(s.bulk_size as u64),
            s.bulk_repeats,
            s.postgres_sslmode
                .as_deref()
                .unwrap_or("prefer (not set: TLS if the server offers it)")
        );
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Machine: {} cores ({}), {:.1} GiB memory, Linux {}; load generator and servers share it.  ",
            m.cores,
            m.cpu,
            m.memory_mib as f64 / 1024.0,
            m.kernel
        );
        let versions: Vec<String> = self.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(md, "Versions: {}.  ", versions.join(", "));
        let _ = writeln!(md, "Run time: {:.0} s.\n", self.seconds);
        let _ = writeln!(
            md,
            "requests/s, p50 and p99 latency per scenario; \"vs scimd (SQLite)\" is the target's requests/s \
             divided by scimd on SQLite's in this run. Errors are answers with an unexpected status (⚠: the \
             row's figures are not comparable). Tool: oha, or scimd-bench's own loop where requests vary.\n"
        );

        for scenario in Scenario::ALL {
            if !self.targets.iter().any(|t| scenario.runs_on(t.target)) {
                continue;
            }
            let _ = writeln!(md, "### {} ({})\n", scenario.title(s), scenario.tool());
            let _ = writeln!(
                md,
                "| target | requests/s | p50 ms | p99 ms | errors | vs scimd (SQLite) |"
            );
            let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
            let base = self.rps(TargetKind::ScimdSqlite, scenario);
            for target in &self.targets {
                let _ = writeln!(md, "{}", row(target, scenario, base));
            }
            md.push('\n');
        }

        let scimds: Vec<&TargetReport> = self.targets.iter().filter(|t| t.target.is_scimd()).collect();
        if !scimds.is_empty() {
            let _ = writeln!(
                md,
                "### POST /Bulk of {} user creates, {} requests one after another (scimd-bench)\n",
                thousands(s.bulk_size as u64),
                s.bulk_repeats
            );
            let _ = writeln!(
                md,
                "| target | median wall s | creates/s | POST /Users creates/s | Bulk ÷ POST per user |"
            );
            let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: |");
            for target in &scimds {
                let post = self.rps(target.target, Scenario::CreateUser);
                let line = match &target.bulk {
                    Some(b) if b.failure.is_none() && b.creates_per_sec > 0.0 => format!(
                        "| {} | {:.3} | {} | {} | {} |",
                        target.label,
                        b.median_seconds,
                        rate(b.creates_per_sec),
                        post.map_or("—".into(), rate),
                        post.map_or("—".into(), |p| times(b.creates_per_sec / p))
                    ),
                    Some(b) => format!(
                        "| {} | failed: {} | | | |",
                        target.label,
                        cell(b.failure.as_deref().unwrap_or("no figures"))
                    ),
                    None => format!("| {} | n/a | | | |", target.label),
                };
                let _ = writeln!(md, "{line}");
            }
            md.push('\n');

            let _ = writeln!(md, "### Cost of key verification (oha)\n");
            let _ = writeln!(
                md,
                "| target | GET /Me with key, req/s | GET /ServiceProviderConfig without key, req/s | ratio | auth cost |"
            );
            let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: |");
            for target in &scimds {
                let me = self.rps(target.target, Scenario::AuthMe);
                let spc = self.rps(target.target, Scenario::AuthBaseline);
                let (ratio, cost) = match (me, spc) {
                    (Some(a), Some(b)) if b > 0.0 => (times(a / b), format!("{:.0}%", (1.0 - a / b) * 100.0)),
                    _ => ("—".into(), "—".into()),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {ratio} | {cost} |",
                    target.label,
                    me.map_or("—".into(), rate),
                    spc.map_or("—".into(), rate)
                );
            }
            md.push('\n');
        }

        let _ = writeln!(md, "### Peak RSS and seeding\n");
        let _ = writeln!(
            md,
            "| target | peak RSS | users seeded | seeding s | users/s | big group seeding s | target total s |"
        );
        let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for target in &self.targets {
            let seed = &target.seed;
            let seeded = seed.users > 0;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.0} |",
                target.label,
                target.peak_rss_kib.map_or("—".into(), mib),
                if seeded {
                    thousands(seed.users as u64)
                } else {
                    "—".into()
                },
                if seeded {
                    format!("{:.1}", seed.users_seconds)
                } else {
                    "—".into()
                },
                if seeded { rate(seed.users_per_sec) } else { "—".into() },
                seed.big_group_seconds.map_or("—".into(), |v| format!("{v:.1}")),
                target.seconds
            );
        }
        md.push('\n');

        let failures: Vec<String> = self
            .targets
            .iter()
            .filter_map(|t| t.failure.as_ref().map(|f| format!("- {}: {}", t.label, cell(f))))
            .collect();
        if !failures.is_empty() {
            let _ = writeln!(md, "### Failures\n\n{}\n", failures.join("\n"));
        }
        let warnings: Vec<String> = self
            .targets
            .iter()
            .flat_map(|t| {
                t.seed
                    .warnings
                    .iter()
                    .map(move |w| format!("- {}: {}", t.label, cell(w)))
            })
            .collect();
        if !warnings.is_empty() {
            let _ = writeln!(md, "### Warnings\n\n{}\n", warnings.join("\n"));
        }

        let _ = writeln!(md, "## Targets (issue #6), judged on this run\n");
        let _ = writeln!(md, "| goal | target | measured | status |");
        let _ = writeln!(md, "| --- | --- | --- | --- |");
        for check in &self.checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                check.goal, check.target, check.measured, check.status
            );
        }
        md
    }

    /// What makes the run fail: targets or scenarios that could not run, and
    /// scenarios with errors.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for target in &self.targets {
            if let Some(failure) = &target.failure {
                problems.push(format!("{}: {failure}", target.label));
            }
            for result in &target.scenarios {
                if let Some(failure) = &result.failure {
                    problems.push(format!("{} / {}: {failure}", target.label, result.scenario.id()));
                }
                if let Some(m) = result.measured.as_ref().filter(|m| m.errors > 0) {
                    problems.push(format!(
                        "{} / {}: {} errors of {} requests ({:?})",
                        target.label,
                        result.scenario.id(),
                        m.errors,
                        m.requests,
                        m.statuses
                    ));
                }
            }
            if let Some(failure) = target.bulk.as_ref().and_then(|b| b.failure.as_ref()) {
                problems.push(format!("{} / bulk: {failure}", target.label));
            }
        }
        problems
    }
}

fn row(target: &TargetReport, scenario: Scenario, base: Option<f64>) -> String {
    if !scenario.runs_on(target.target) {
        return format!("| {} | n/a | | | | |", target.label);
    }
    match target.scenarios.iter().find(|r| r.scenario == scenario) {
        Some(result) => match (&result.measured, &result.failure) {
            (Some(m), _) => measured_row(target.label, m, base),
            (None, Some(failure)) => format!("| {} | failed: {} | | | | |", target.label, cell(failure)),
            (None, None) => format!("| {} | — | | | | |", target.label),
        },
        None if target.failure.is_some() => format!("| {} | not run (target failed) | | | | |", target.label),
        None => format!("| {} | — | | | | |", target.label),
    }
}

fn measured_row(label: &str, m: &Measured, base: Option<f64>) -> String {
    let errors = if m.errors > 0 {
        format!("**{} ⚠**", thousands(m.errors))
    } else {
        "0".into()
    };
    let versus = match base {
        Some(b) if m.errors == 0 => times(m.requests_per_sec / b),
        _ => "—".into(),
    };
    format!(
        "| {label} | {} | {:.2} | {:.2} | {errors} | {versus} |",
        rate(m.requests_per_sec),
        m.p50_ms,
        m.p99_ms
    )
}

/// A ratio: `12.3×`, `0.45×`.
fn times(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// Requests or creates per second.
fn rate(r: f64) -> String {
    if r >= 100.0 {
        thousands(r.round() as u64)
    } else {
        format!("{r:.1}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Text made safe for one table cell: one line, no pipes, bounded.
fn cell(text: &str) -> String {
    let line: String = text.replace(['\n', '\r'], " ").replace('|', "/");
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::{cell, rate, times};

    #[test]
    fn figures_are_formatted_for_tables() {
        assert_eq!(times(12.345), "12.3×");
        assert_eq!(times(0.456), "0.46×");
        assert_eq!(rate(12345.6), "12,346");
        assert_eq!(rate(8.04), "8.0");
        assert_eq!(cell("a|b\nc"), "a/b c");
    }
}
