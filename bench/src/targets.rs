//! Starting each target on a free loopback port with fresh, empty storage:
//! scimd on SQLite and on PostgreSQL, the two peers (installed on first use
//! from their pinned manifests under `bench/peers/`), and the ceiling.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::cli::{Settings, TargetKind, bench_dir, workspace_root};
use crate::process::{PgDatabase, Process, free_port, run_quiet, run_shown};

/// A target being measured. Dropping it stops the server, then drops its
/// database, then removes its data directory (fields drop in this order).
pub struct Running {
    /// Root of the SCIM endpoints, e.g. `http://127.0.0.1:PORT/scim/v2`.
    pub base: String,
    /// The bootstrap admin key (scimd only; the peers run without auth).
    pub key: Option<String>,
    pub server: Process,
    _database: Option<PgDatabase>,
    pub dir: TempDir,
}

/// What the run needs to start targets.
pub struct Launcher<'a> {
    pub settings: &'a Settings,
    pub scimd_bin: Option<PathBuf>,
}

impl Launcher<'_> {
    pub async fn start(&self, kind: TargetKind) -> anyhow::Result<Running> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("scimd-bench-{}-", kind.name()))
            .tempdir()
            .context("creating a scratch directory")?;
        let port = free_port()?;
        let origin = format!("http://127.0.0.1:{port}");
        let log = dir.path().join("server.log");
        let mut database = None;
        let (command, base, ready) = match kind {
            TargetKind::ScimdSqlite | TargetKind::ScimdPostgres => {
                let bin = self.scimd_bin.as_ref().context("scimd was not built")?;
                let data = dir.path().join("data");
                let mut command = Command::new(bin);
                command
                    .arg("serve")
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .args(["--base-url", &origin])
                    .args(["--log-format", "json"])
                    // scimd's default logging, as users run it: it writes no
                    // line per request (peers run without request logs too).
                    .env_remove("RUST_LOG")
                    .env_remove("SCIMD_DATABASE_URL")
                    .env_remove("SCIMD_CONFIG")
                    .current_dir(dir.path());
                if kind == TargetKind::ScimdPostgres {
                    let db = PgDatabase::create(&self.settings.postgres_url)?;
                    // Through the environment, so no credentials show in `ps`.
                    command.env("SCIMD_DATABASE_URL", db.url());
                    database = Some(db);
                }
                (command, format!("{origin}/scim/v2"), format!("{origin}/healthz"))
            }
            TargetKind::Scim2Server => {
                let python = ensure_venv().await?;
                let mut command = Command::new(python);
                command
                    .args(["-m", "uvicorn", "--app-dir"])
                    .arg(bench_dir().join("peers/scim2-server"))
                    .args(["app:app", "--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--loop", "uvloop", "--http", "httptools"])
                    .args(["--log-level", "warning", "--no-access-log"]);
                (
                    command,
                    format!("{origin}/v2"),
                    format!("{origin}/v2/ServiceProviderConfig"),
                )
            }
            TargetKind::Scimmy => {
                let peer = ensure_node_modules().await?;
                let mut command = Command::new("node");
                command
                    .arg(peer.join("server.js"))
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .env("NODE_ENV", "production")
                    .current_dir(&peer);
                (
                    command,
                    format!("{origin}/scim/v2"),
                    format!("{origin}/scim/v2/ServiceProviderConfig"),
                )
            }
            TargetKind::Ceiling => {
                let me = std::env::current_exe().context("locating scimd-bench itself")?;
                let mut command = Command::new(me);
                command.args(["ceiling", "--listen", &format!("127.0.0.1:{port}")]);
                (command, origin.clone(), format!("{origin}/"))
            }
        };
        let mut server = Process::spawn(kind.name(), command, &log)?;
        wait_ready(&mut server, &ready, Duration::from_secs(120)).await?;
        let key = if kind.is_scimd() {
            Some(read_key(&dir.path().join("data"), &server).await?)
        } else {
            None
        };
        Ok(Running {
            base,
            key,
            server,
            _database: database,
            dir,
        })
    }
}

/// Polls `url` until it answers 200, the process exits, or `limit` passes.
async fn wait_ready(server: &mut Process, url: &str, limit: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = server.exited() {
            bail!(
                "the server exited ({status}) before {url} answered:\n{}",
                server.log_tail(4000)
            );
        }
        if let Ok(response) = client.get(url).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{url} did not answer 200 within {limit:?}:\n{}", server.log_tail(4000));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bootstrap admin key scimd writes to `APIKey-bootstrap-admin-<date>.key`
/// in its data directory on first start.
async fn read_key(data_dir: &Path, server: &Process) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir(data_dir)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .find(|entry| entry.file_name().to_string_lossy().starts_with("APIKey-"));
        if let Some(entry) = found {
            let key = std::fs::read_to_string(entry.path())?.trim().to_string();
            if !key.is_empty() {
                return Ok(key);
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "no APIKey-* file in {} after scimd started:\n{}",
                data_dir.display(),
                server.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Builds scimd in the harness's own profile (release under
/// `cargo run --release`), unless `--scimd-bin` names a binary.
pub async fn scimd_binary(settings: &Settings) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &settings.scimd_bin {
        anyhow::ensure!(bin.is_file(), "--scimd-bin {} is not a file", bin.display());
        return std::fs::canonicalize(bin).with_context(|| format!("resolving {}", bin.display()));
    }
    let (profile, dir) = if cfg!(debug_assertions) {
        ("dev", "debug")
    } else {
        ("release", "release")
    };
    eprintln!("scimd-bench: cargo build --profile {profile} --bin scimd");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let mut build = Command::new(cargo);
    build
        .args(["build", "--profile", profile, "--bin", "scimd"])
        .current_dir(&root);
    run_shown("cargo build --bin scimd", build).await?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target_dir = if target_dir.is_absolute() {
        target_dir
    } else {
        root.join(target_dir)
    };
    Ok(target_dir.join(dir).join("scimd"))
}

/// `bench/.venv` with the pinned requirements of the scim2-server peer;
/// rebuilt when the requirements change. Returns its python.
async fn ensure_venv() -> anyhow::Result<PathBuf> {
    let venv = bench_dir().join(".venv");
    let requirements = bench_dir().join("peers/scim2-server/requirements.txt");
    let stamp = venv.join("requirements.installed");
    let python = venv.join("bin/python");
    let wanted = std::fs::read_to_string(&requirements).context("reading the scim2-server requirements")?;
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    eprintln!("scimd-bench: creating {} with pip (scim2-server peer)", venv.display());
    let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    let mut create = Command::new(&system_python);
    create.args(["-m", "venv"]).arg(&venv);
    run_quiet("python3 -m venv", create).await?;
    let mut install = Command::new(&python);
    install
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "-r"])
        .arg(&requirements);
    run_quiet("pip install", install).await?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// `npm ci` in `bench/peers/scimmy` when its lockfile changed since the last
/// install. Returns the peer's directory.
async fn ensure_node_modules() -> anyhow::Result<PathBuf> {
    let peer = bench_dir().join("peers/scimmy");
    let lock = std::fs::read_to_string(peer.join("package-lock.json")).context("reading the SCIMMY peer's lockfile")?;
    let stamp = peer.join("node_modules/.scimd-bench-installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(lock.as_str()) {
        return Ok(peer);
    }
    eprintln!("scimd-bench: npm ci in {} (SCIMMY peer)", peer.display());
    let mut install = Command::new("npm");
    install
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&peer);
    run_quiet("npm ci", install).await?;
    std::fs::write(&stamp, lock)?;
    Ok(peer)
}
