//! Child processes and scratch resources that must not outlive the harness:
//! servers under test, oha runs and PostgreSQL databases are each held by a
//! guard whose `Drop` ends or removes them, on success, error and panic alike.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A spawned process, killed and reaped when dropped.
pub struct Process {
    name: String,
    child: Child,
    log: Option<PathBuf>,
}

impl Process {
    /// Spawns `command` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({})", command.get_program().to_string_lossy()))?;
        Ok(Process {
            name: name.to_string(),
            child,
            log: Some(log.to_path_buf()),
        })
    }

    /// Spawns `command` with the harness's own stdout and stderr.
    pub fn spawn_inherit(name: &str, mut command: Command) -> anyhow::Result<Self> {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name} ({})", command.get_program().to_string_lossy()))?;
        Ok(Process {
            name: name.to_string(),
            child,
            log: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to end, polling so that the async caller can be
    /// cancelled (dropping the guard then kills the process).
    pub async fn wait(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} did not end within {limit:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident set size in KiB (`VmHWM`), while the process lives.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The last `max_bytes` of the process's output, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        let Some(Ok(mut file)) = self.log.as_ref().map(File::open) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        text
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A free TCP port on the loopback interface (free when asked).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs a long command (a build, an install) to completion under a guard,
/// its output shown as it goes; awaiting lets a signal interrupt it.
pub async fn run_shown(what: &str, command: Command) -> anyhow::Result<()> {
    let mut process = Process::spawn_inherit(what, command)?;
    let status = process.wait(Duration::from_secs(3 * 3600)).await?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

/// The same with the output kept, and shown only if the command fails.
pub async fn run_quiet(what: &str, command: Command) -> anyhow::Result<String> {
    let log = tempfile::NamedTempFile::new().context("creating a scratch file")?;
    let mut process = Process::spawn(what, command, log.path())?;
    let status = process.wait(Duration::from_secs(3600)).await?;
    let output = std::fs::read_to_string(log.path()).unwrap_or_default();
    anyhow::ensure!(status.success(), "{what} failed ({status}):\n{output}");
    Ok(output)
}

/// Runs a quick command to completion, failing with its output when it fails.
pub fn run_checked(what: &str, command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: could not run {}", command.get_program().to_string_lossy()))?;
    if !output.status.success() {
        // The arguments stay out of the message: they may hold a database password.
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A scratch PostgreSQL database, dropped (with its connections) when the
/// guard is dropped.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates `scimd_bench_<random>` on the server of `admin_url`.
    pub fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("scimd_bench_{:016x}", rand::random::<u64>());
        psql(admin_url, &format!("CREATE DATABASE \"{name}\""))
            .with_context(|| format!("creating database {name} (is PostgreSQL running at {admin_url}?)"))?;
        let url = replace_database(admin_url, &name)?;
        Ok(PgDatabase {
            admin_url: admin_url.to_string(),
            name,
            url,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(error) = psql(&self.admin_url, &sql) {
            eprintln!("scimd-bench: warning: could not drop database {}: {error:#}", self.name);
        }
    }
}

/// Runs one SQL statement with psql against the database of `url`.
pub fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    run_checked(
        "psql",
        Command::new("psql")
            .arg(url)
            .args(["-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql]),
    )
}

/// The same URL naming another database: `postgres://u@h:5432/test?x` with
/// `other` gives `postgres://u@h:5432/other?x`.
fn replace_database(url: &str, other: &str) -> anyhow::Result<String> {
    let Some(scheme_end) = url.find("://") else {
        bail!("--postgres-url {url} is not a URL (postgres://user@host:port/database)");
    };
    let rest = &url[scheme_end + 3..];
    let (before_query, query) = match rest.find('?') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    Ok(format!("{}{authority}/{other}{query}", &url[..scheme_end + 3]))
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn replace_database_keeps_credentials_host_and_parameters() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/test", "b").expect("url"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/test?sslmode=disable", "b").expect("url"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "b").expect("url"), "postgres://h/b");
    }
}
