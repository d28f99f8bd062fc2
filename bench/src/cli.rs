//! The command line: options of a run, their `--tiny` defaults, and the
//! `ceiling` subcommand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "scimd-bench",
    about = "Runs fixed scenarios against scimd and peer SCIM servers on this machine and writes a Markdown table plus JSON",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the ceiling target: a bare actix-web handler answering a fixed
    /// JSON document the size of a user, on every path.
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
    },
    /// Compare two runs' JSON reports (a smaller and a larger directory) and
    /// print how scimd's figures grow, with the growth targets judged.
    Growth { small: PathBuf, large: PathBuf },
}

/// Which servers a run measures, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    ScimdSqlite,
    ScimdPostgres,
    Scim2Server,
    Scimmy,
    Ceiling,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::ScimdSqlite => "scimd-sqlite",
            TargetKind::ScimdPostgres => "scimd-postgres",
            TargetKind::Scim2Server => "scim2-server",
            TargetKind::Scimmy => "scimmy",
            TargetKind::Ceiling => "ceiling",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TargetKind::ScimdSqlite => "scimd (SQLite)",
            TargetKind::ScimdPostgres => "scimd (PostgreSQL)",
            TargetKind::Scim2Server => "scim2-server (uvicorn)",
            TargetKind::Scimmy => "SCIMMY (express 4)",
            TargetKind::Ceiling => "ceiling (bare actix-web)",
        }
    }

    pub fn is_scimd(self) -> bool {
        matches!(self, TargetKind::ScimdSqlite | TargetKind::ScimdPostgres)
    }
}

#[derive(Debug, Args)]
pub struct Options {
    /// Directory size: users seeded before the scenarios [default: 10000; --tiny: 200]
    #[arg(long)]
    pub users: Option<usize>,
    /// Seconds each scenario runs [default: 10; --tiny: 2]
    #[arg(long)]
    pub duration: Option<f64>,
    /// Concurrent connections of the load [default: 32; --tiny: 4]
    #[arg(long)]
    pub connections: Option<usize>,
    /// Members of the big group of the member scenarios (scimd only) [default: 100000; --tiny: 50]
    #[arg(long)]
    pub members: Option<usize>,
    /// Operations in each Bulk request of the Bulk scenario (scimd only) [default: 1000; --tiny: 100]
    #[arg(long)]
    pub bulk_size: Option<usize>,
    /// Bulk requests the Bulk scenario sends, one after another [default: 5; --tiny: 1]
    #[arg(long)]
    pub bulk_repeats: Option<usize>,
    /// Targets to measure, comma-separated, run one after another
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "scimd-sqlite,scimd-postgres,scim2-server,scimmy,ceiling"
    )]
    pub targets: Vec<TargetKind>,
    /// A PostgreSQL server's URL; the harness creates and drops its own
    /// database `scimd_bench_<random>` next to the one named, and scimd
    /// connects with the same parameters. The default server is on this
    /// machine, reached over loopback without TLS (`sslmode=disable`), as
    /// an operator would run a database on scimd's own host; leave
    /// `sslmode` out to measure TLS (PostgreSQL's default, `prefer`)
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")]
    pub postgres_url: String,
    /// Where the Markdown and JSON results go [default: bench/results]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A CI-sized run: users 200, duration 2, connections 4, members 50, Bulk of 100
    #[arg(long)]
    pub tiny: bool,
    /// A scimd binary to use as is, instead of `cargo build --bin scimd` in the
    /// harness's own profile
    #[arg(long)]
    pub scimd_bin: Option<PathBuf>,
    /// Concurrent requests while seeding
    #[arg(long, default_value_t = 4)]
    pub seed_parallel: usize,
    /// Where oha is installed (`cargo install --root`) [default: bench/.tools]
    #[arg(long, env = "SCIMD_BENCH_TOOLS")]
    pub tools_dir: Option<PathBuf>,
}

/// The options with every default applied.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub users: usize,
    pub duration_secs: f64,
    pub connections: usize,
    pub members: usize,
    pub bulk_size: usize,
    pub bulk_repeats: usize,
    pub targets: Vec<TargetKind>,
    #[serde(skip)]
    pub postgres_url: String,
    /// The URL's `sslmode`, which the report states (the URL may hold a password).
    pub postgres_sslmode: Option<String>,
    pub out: PathBuf,
    pub tiny: bool,
    #[serde(skip)]
    pub scimd_bin: Option<PathBuf>,
    pub seed_parallel: usize,
    #[serde(skip)]
    pub tools_dir: PathBuf,
    /// The groups of ten members every target gets, besides the big group.
    pub small_groups: usize,
}

impl Settings {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }
}

/// The workspace root (the directory above this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

pub fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Options {
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let tiny = self.tiny;
        let pick =
            |value: Option<usize>, normal: usize, small: usize| value.unwrap_or(if tiny { small } else { normal });
        let mut targets = Vec::new();
        for target in self.targets {
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        let settings = Settings {
            users: pick(self.users, 10_000, 200),
            duration_secs: self.duration.unwrap_or(if tiny { 2.0 } else { 10.0 }),
            connections: pick(self.connections, 32, 4),
            members: pick(self.members, 100_000, 50),
            bulk_size: pick(self.bulk_size, 1000, 100),
            bulk_repeats: pick(self.bulk_repeats, 5, 1),
            targets,
            postgres_sslmode: sslmode(&self.postgres_url),
            postgres_url: self.postgres_url,
            out: self.out.unwrap_or_else(|| bench_dir().join("results")),
            tiny,
            scimd_bin: self.scimd_bin,
            seed_parallel: self.seed_parallel.max(1),
            tools_dir: self.tools_dir.unwrap_or_else(|| bench_dir().join(".tools")),
            small_groups: 10,
        };
        anyhow::ensure!(
            settings.users >= 100,
            "--users must be at least 100 (the small groups take the first 100)"
        );
        anyhow::ensure!(settings.connections >= 1, "--connections must be at least 1");
        anyhow::ensure!(
            settings.duration_secs > 0.0 && settings.duration_secs.is_finite(),
            "--duration must be a positive number of seconds"
        );
        anyhow::ensure!(
            (1..=1000).contains(&settings.bulk_size),
            "--bulk-size must be between 1 and 1000 (scimd's maxOperations)"
        );
        anyhow::ensure!(settings.bulk_repeats >= 1, "--bulk-repeats must be at least 1");
        anyhow::ensure!(!settings.targets.is_empty(), "--targets names no target");
        Ok(settings)
    }
}

/// The `sslmode` parameter of a PostgreSQL URL, if it has one.
pub fn sslmode(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sslmode="))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::sslmode;

    #[test]
    fn sslmode_is_read_from_the_url_query_only() {
        assert_eq!(
            sslmode("postgres://postgres@127.0.0.1:5432/test?sslmode=disable").as_deref(),
            Some("disable")
        );
        assert_eq!(
            sslmode("postgres://u:p@h/db?application_name=x&sslmode=require").as_deref(),
            Some("require")
        );
        assert_eq!(sslmode("postgres://u:sslmode=x@h/db"), None);
        assert_eq!(sslmode("postgres://h/db?application_name=x"), None);
    }
}
