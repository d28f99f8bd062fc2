//! Builds the application from settings: database, migrations, bootstrap,
//! caches and the HTTP server. `main` and the tests both start here.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::admin::{Admin, KeyLifetimes};
use crate::auth::KeyVerifier;
use crate::auth::bootstrap::bootstrap_if_empty;
use crate::auth::hashing::Hasher;
use crate::config::Settings;
use crate::http::{self, AppState, ops};
use crate::provisioning::Provisioning;
use crate::store::Store;

pub struct Application {
    port: u16,
    server: Server,
    verifier: Arc<KeyVerifier>,
}

/// Opens the database and applies pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    if settings.is_sqlite() || !settings.data_dir.exists() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    }
    let store = Store::connect(&settings.database_url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

impl Application {
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
        let store = open_store(&settings).await?;
        let hasher = Hasher::default();
        if let Some(path) =
            bootstrap_if_empty(&store, &hasher, &settings.data_dir, settings.key_default_lifetime_days).await?
        {
            tracing::info!(path = %path.display(), "first start: bootstrap admin key written");
        }

        let listener = TcpListener::bind(&settings.listen).with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        if settings.base_url_is_default {
            // The default base URL names the port actually bound (port 0 in tests).
            settings.base_url = format!("http://{}", listener.local_addr()?);
        }

        store.spawn_statistics_upkeep();
        store.spawn_checkpoint_upkeep();
        let verifier = KeyVerifier::new(store.clone(), hasher.clone());
        verifier.spawn_background(settings.flush_interval);
        let admin = Admin::new(
            store.clone(),
            hasher.clone(),
            Arc::clone(&verifier),
            KeyLifetimes {
                default_days: settings.key_default_lifetime_days,
                max_days: settings.key_max_lifetime_days,
            },
        );
        let state = web::Data::new(AppState {
            admin,
            provisioning: Provisioning::new(store.clone(), hasher),
            metrics: ops::Metrics::new().context("registering metrics")?,
            verifier: Arc::clone(&verifier),
            store,
            scim_url: format!("{}/scim/v2", settings.base_url),
            settings,
        });
        tracing::info!(port, base_url = %state.settings.base_url, "listening");
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(ops::key_expiry_header))
                .wrap(from_fn(ops::record_metrics))
                .wrap(from_fn(ops::request_id_header))
                .wrap(TracingLogger::<ops::RequestSpan>::new())
                .configure(http::configure)
        })
        .listen(listener)?
        .run();
        Ok(Application { port, server, verifier })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM; in-flight requests finish first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.verifier.flush_last_used().await;
        self.verifier.flush_refusals().await;
        result
    }
}
