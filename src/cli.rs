//! The command line (contract §1).

use clap::{Parser, Subcommand};

use crate::config::SettingsArgs;

#[derive(Debug, Parser)]
#[command(
    name = "scimd",
    version,
    about = "SCIM 2.0 provisioning server with service-account API keys"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database if needed, then serve HTTP until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
}
