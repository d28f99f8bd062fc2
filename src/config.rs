//! Runtime settings, resolved once at start-up with the precedence
//! flag > environment > config file > default (contract §1).
//!
//! clap reads flags and their `SCIMD_*` variables into [`SettingsArgs`]; the
//! TOML file fills what both left empty; [`Settings`] is the resolved result.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Settings that may come from flags or the environment. Every field is
/// optional so that an unset flag can fall through to the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SettingsArgs {
    /// TOML configuration file.
    #[arg(long, env = "SCIMD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SCIMD_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Directory for the embedded database and key files (created if missing) [default: ./data].
    #[arg(long, env = "SCIMD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// sqlite://… or postgres://… [default: sqlite://<data-dir>/scimd.db].
    #[arg(long, env = "SCIMD_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Public URL used in meta.location and $ref [default: http://<listen>].
    #[arg(long, env = "SCIMD_BASE_URL", global = true)]
    pub base_url: Option<String>,
    /// Log format: pretty or json [default: pretty on a terminal, json otherwise].
    #[arg(long, env = "SCIMD_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "SCIMD_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<usize>,
    /// Lifetime of a new key when none is given, in days [default: 90].
    #[arg(long, env = "SCIMD_KEY_DEFAULT_LIFETIME_DAYS", global = true)]
    pub key_default_lifetime_days: Option<u32>,
    /// Longest lifetime a key may be given, in days [default: 365].
    #[arg(long, env = "SCIMD_KEY_MAX_LIFETIME_DAYS", global = true)]
    pub key_max_lifetime_days: Option<u32>,
    /// Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed [default: none].
    #[arg(long, env = "SCIMD_TRUSTED_PROXIES", global = true, value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The config file: the same settings, keys spelt as the flags with `_` or `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
struct FileSettings {
    #[serde(alias = "listen")]
    listen: Option<String>,
    #[serde(alias = "data-dir")]
    data_dir: Option<PathBuf>,
    #[serde(alias = "database-url")]
    database_url: Option<String>,
    #[serde(alias = "base-url")]
    base_url: Option<String>,
    #[serde(alias = "log-format")]
    log_format: Option<LogFormat>,
    #[serde(alias = "max-body-bytes")]
    max_body_bytes: Option<usize>,
    #[serde(alias = "key-default-lifetime-days")]
    key_default_lifetime_days: Option<u32>,
    #[serde(alias = "key-max-lifetime-days")]
    key_max_lifetime_days: Option<u32>,
    #[serde(alias = "trusted-proxies")]
    trusted_proxies: Option<Vec<String>>,
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Without a trailing slash.
    pub base_url: String,
    /// True when no base URL was configured and it was derived from `listen`.
    pub base_url_is_default: bool,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub key_default_lifetime_days: u32,
    pub key_max_lifetime_days: u32,
    /// Peers whose `X-Forwarded-For` names the client; empty: never believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often `lastUsedAt` and refused-authentication summaries are written
    /// (30 s; `lastUsedAt` may lag by this much, within the contract's 60 s).
    pub flush_interval: std::time::Duration,
}

impl Settings {
    pub fn resolve(args: &SettingsArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let listen = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}/scimd.db", data_dir.display()));
        let configured_base_url = args.base_url.clone().or(file.base_url);
        let base_url_is_default = configured_base_url.is_none();
        let base_url = configured_base_url
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string();
        let log_format = args.log_format.or(file.log_format).unwrap_or_else(|| {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            }
        });
        let settings = Settings {
            listen,
            data_dir,
            database_url,
            base_url,
            base_url_is_default,
            log_format,
            max_body_bytes: args.max_body_bytes.or(file.max_body_bytes).unwrap_or(1024 * 1024),
            key_default_lifetime_days: args
                .key_default_lifetime_days
                .or(file.key_default_lifetime_days)
                .unwrap_or(90),
            key_max_lifetime_days: args.key_max_lifetime_days.or(file.key_max_lifetime_days).unwrap_or(365),
            trusted_proxies: args
                .trusted_proxies
                .clone()
                .or(file.trusted_proxies)
                .unwrap_or_default()
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    crate::auth::verifier::parse_cidr(s.trim())
                        .ok_or_else(|| anyhow::anyhow!("trusted proxy \"{s}\" is not an IP address or CIDR range"))
                })
                .collect::<anyhow::Result<_>>()?,
            flush_interval: std::time::Duration::from_secs(30),
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"),
            "database URL must start with sqlite:// or postgres://"
        );
        anyhow::ensure!(
            self.base_url.starts_with("http://") || self.base_url.starts_with("https://"),
            "base URL must start with http:// or https://"
        );
        anyhow::ensure!(self.max_body_bytes >= 1024, "max body bytes must be at least 1024");
        anyhow::ensure!(
            (1..=self.key_max_lifetime_days).contains(&self.key_default_lifetime_days),
            "key default lifetime must be between 1 day and the maximum lifetime"
        );
        Ok(())
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_and_file_beats_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scimd.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\ndata-dir = \"/tmp/x\"\n").expect("write");
        let args = SettingsArgs {
            config: Some(path),
            listen: Some("0.0.0.0:1".into()),
            log_format: Some(LogFormat::Json),
            ..Default::default()
        };
        let s = Settings::resolve(&args).expect("resolves");
        assert_eq!(s.listen, "0.0.0.0:1");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.database_url, "sqlite:///tmp/x/scimd.db");
        assert_eq!(s.base_url, "http://0.0.0.0:1");
        assert_eq!(s.key_default_lifetime_days, 90);
    }

    #[test]
    fn unknown_config_file_key_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scimd.toml");
        std::fs::write(&path, "lisen = \"x\"\n").expect("write");
        let args = SettingsArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(Settings::resolve(&args).is_err());
    }
}
