use clap::Parser;
use scimd::cli::{Cli, Command};
use scimd::config::Settings;
use scimd::startup::{Application, open_store};

mod allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    allocator::tune();
    let cli = Cli::parse();
    let settings = Settings::resolve(&cli.settings)?;
    scimd::telemetry::init(settings.log_format);
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let store = open_store(&settings).await?;
            store.close().await;
            tracing::info!("migrations applied");
        }
        Command::ServiceUsers(command) => scimd::cli::service_users(&settings, command).await?,
        Command::Keys(command) => scimd::cli::keys(&settings, command).await?,
    }
    Ok(())
}
