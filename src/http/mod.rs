//! HTTP: the route table, extractors, error mapping and handlers. No SQL here.

pub mod discovery;
pub mod error;
pub mod extract;
pub mod ops;
pub mod resources;

use std::sync::Arc;

use actix_web::web;

use crate::auth::KeyVerifier;
use crate::config::Settings;
use crate::provisioning::Provisioning;
use crate::store::Store;

/// Shared by every request.
pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub verifier: Arc<KeyVerifier>,
    pub provisioning: Provisioning,
    pub metrics: ops::Metrics,
}

/// The whole route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .service(web::scope("/scim/v2").configure(scim_routes))
        .service(web::scope("/t/{tenant}/scim/v2").configure(scim_routes));
}

/// SCIM routes, mounted at `/scim/v2` and at `/t/{tenant}/scim/v2`.
fn scim_routes(cfg: &mut web::ServiceConfig) {
    use crate::scim::ResourceKind::{Group, User};
    cfg.route(
        "/ServiceProviderConfig",
        web::get().to(discovery::service_provider_config),
    )
    .route("/ResourceTypes", web::get().to(discovery::resource_types))
    .route("/ResourceTypes/{id}", web::get().to(discovery::resource_type))
    .route("/Schemas", web::get().to(discovery::schemas))
    .route("/Schemas/{id}", web::get().to(discovery::schema))
    .route("/Me", web::route().to(resources::me))
    .route("/Bulk", web::route().to(resources::not_implemented))
    .route("/.search", web::route().to(resources::not_implemented))
    .route("/Users/.search", web::route().to(resources::not_implemented))
    .route("/Groups/.search", web::route().to(resources::not_implemented))
    .service(
        web::resource("/Users")
            .app_data(web::Data::new(User))
            .route(web::get().to(resources::list))
            .route(web::post().to(resources::create))
            .default_service(web::route().to(resources::unsupported_method)),
    )
    .service(
        web::resource("/Users/{id}")
            .app_data(web::Data::new(User))
            .route(web::get().to(resources::get))
            .route(web::put().to(resources::replace))
            .route(web::delete().to(resources::delete))
            .default_service(web::route().to(resources::unsupported_method)),
    )
    .service(
        web::resource("/Groups")
            .app_data(web::Data::new(Group))
            .route(web::get().to(resources::list))
            .route(web::post().to(resources::create))
            .default_service(web::route().to(resources::unsupported_method)),
    )
    .service(
        web::resource("/Groups/{id}")
            .app_data(web::Data::new(Group))
            .route(web::get().to(resources::get))
            .route(web::put().to(resources::replace))
            .route(web::delete().to(resources::delete))
            .default_service(web::route().to(resources::unsupported_method)),
    )
    .default_service(web::route().to(resources::unknown_endpoint));
}
