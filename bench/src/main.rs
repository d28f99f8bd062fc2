//! scimd-bench: the benchmark harness of issue #6. It starts scimd (SQLite and
//! PostgreSQL), the scim2-server and SCIMMY peers and a bare actix-web
//! ceiling on this machine, one after another, seeds each through its API,
//! runs fixed scenarios for a fixed duration and connection count, and writes
//! `bench/results/<timestamp>.{json,md}`. See BENCHMARKS.md.
//!
//! `cargo run --release -p scimd-bench -- [--users N] [--duration S] [--connections C] [--targets …] [--tiny]`

mod api;
mod ceiling;
mod cli;
mod growth;
mod load;
mod oha;
mod process;
mod report;
mod scenarios;
mod seed;
mod targets;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use crate::cli::{Cli, Settings, TargetKind, bench_dir};
use crate::oha::Oha;
use crate::report::{Machine, Report};
use crate::scenarios::RunContext;
use crate::targets::Launcher;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(cli::Command::Ceiling { listen }) = cli.command {
        return match ceiling::serve(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("scimd-bench ceiling: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(cli::Command::Growth { small, large }) = &cli.command {
        return match growth::compare(small, large) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("scimd-bench growth: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let outcome = cli.options.resolve().and_then(|settings| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        runtime.block_on(async {
            // On Ctrl-C or SIGTERM the run's future is dropped, and with it
            // every guard: servers, oha and scratch databases go too.
            tokio::select! {
                result = run(settings) => result,
                signal = shutdown_signal() => Err(anyhow::anyhow!("interrupted by {signal}")),
            }
        })
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("scimd-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() -> &'static str {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// The whole run; `Ok(false)` when a target, a scenario or a status check failed.
async fn run(settings: Settings) -> anyhow::Result<bool> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    std::fs::create_dir_all(&settings.out).with_context(|| format!("creating {}", settings.out.display()))?;
    let oha = Oha::ensure(&settings.tools_dir).await?;
    let scimd_bin = if settings.targets.iter().any(|t| t.is_scimd()) {
        Some(targets::scimd_binary(&settings).await?)
    } else {
        None
    };
    let context = RunContext {
        settings: &settings,
        launcher: Launcher {
            settings: &settings,
            scimd_bin: scimd_bin.clone(),
        },
        oha: &oha,
        run_tag: format!("{:08x}", rand::random::<u32>()),
    };
    let mut reports = Vec::new();
    for &kind in &settings.targets {
        reports.push(scenarios::measure(&context, kind).await);
    }

    let mut versions = BTreeMap::new();
    versions.insert("oha".to_string(), oha.version.clone());
    collect_versions(&settings, scimd_bin.as_deref(), &mut versions);
    let finished_at = chrono::Utc::now();
    let profile = if cfg!(debug_assertions) { "" } else { " --release" };
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let mut report = Report {
        started_at: started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        finished_at: finished_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        seconds: started.elapsed().as_secs_f64(),
        command: format!("cargo run{profile} -p scimd-bench -- {}", arguments.join(" "))
            .trim_end()
            .to_string(),
        settings: settings.clone(),
        machine: Machine::read(),
        versions,
        targets: reports,
        checks: Vec::new(),
    };
    report.compute_checks();

    let stem = started_at.format("%Y%m%dT%H%M%SZ").to_string();
    let json_path = settings.out.join(format!("{stem}.json"));
    let md_path = settings.out.join(format!("{stem}.md"));
    let markdown = report.markdown();
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, &markdown).with_context(|| format!("writing {}", md_path.display()))?;
    println!("{markdown}");
    eprintln!(
        "scimd-bench: wrote {} and {} ({:.0} s)",
        md_path.display(),
        json_path.display(),
        report.seconds
    );
    let problems = report.problems();
    for problem in &problems {
        eprintln!("scimd-bench: problem: {problem}");
    }
    Ok(problems.is_empty())
}

/// The versions of what ran, for the report.
fn collect_versions(settings: &Settings, scimd_bin: Option<&Path>, versions: &mut BTreeMap<String, String>) {
    let first_line = |program: &Path, args: &[&str]| -> Option<String> {
        let output = Command::new(program).args(args).output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        text.lines().next().map(|l| l.trim().to_string())
    };
    if let Some(line) = first_line(Path::new("rustc"), &["--version"]) {
        versions.insert("rustc".into(), line.trim_start_matches("rustc ").to_string());
    }
    if let Some(bin) = scimd_bin
        && let Some(line) = first_line(bin, &["--version"])
    {
        versions.insert("scimd".into(), line.trim_start_matches("scimd ").to_string());
        let root = cli::workspace_root();
        let git = Path::new("git");
        let root = root.to_string_lossy();
        if let Some(commit) = first_line(git, &["-C", &root, "rev-parse", "--short", "HEAD"]) {
            let dirty = first_line(git, &["-C", &root, "status", "--porcelain", "--", "src", "migrations"]).is_some();
            versions.insert(
                "scimd commit".into(),
                format!("{commit}{}", if dirty { " (with uncommitted changes)" } else { "" }),
            );
        }
    }
    let has = |kind: TargetKind| settings.targets.contains(&kind);
    if has(TargetKind::ScimdPostgres)
        && let Ok(version) = process::psql(&settings.postgres_url, "SHOW server_version")
    {
        versions.insert("postgresql".into(), version.trim().to_string());
    }
    if has(TargetKind::Scim2Server) {
        let python = bench_dir().join(".venv/bin/python");
        if let Some(line) = first_line(&python, &["--version"]) {
            versions.insert("python".into(), line.trim_start_matches("Python ").to_string());
        }
        let requirements =
            std::fs::read_to_string(bench_dir().join("peers/scim2-server/requirements.txt")).unwrap_or_default();
        for line in requirements.lines() {
            if let Some((name, version)) = line.split_once("==")
                && ["scim2-server", "uvicorn"].contains(&name)
            {
                versions.insert(name.to_string(), version.to_string());
            }
        }
    }
    if has(TargetKind::Scimmy) {
        if let Some(line) = first_line(Path::new("node"), &["--version"]) {
            versions.insert("node".into(), line.trim_start_matches('v').to_string());
        }
        let manifest = std::fs::read_to_string(bench_dir().join("peers/scimmy/package.json")).unwrap_or_default();
        if let Ok(manifest) = serde_json::from_str::<serde_json::Value>(&manifest)
            && let Some(dependencies) = manifest.get("dependencies").and_then(|d| d.as_object())
        {
            for (name, version) in dependencies {
                versions.insert(name.clone(), version.as_str().unwrap_or("").to_string());
            }
        }
    }
}
