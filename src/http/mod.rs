//! HTTP: the route table, extractors, error mapping and handlers. No SQL here.

pub mod admin;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod ops;
pub mod problem;
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
    /// `<base-url>/scim/v2`, made once rather than per request.
    pub scim_url: String,
    pub store: Store,
    pub verifier: Arc<KeyVerifier>,
    pub provisioning: Provisioning,
    pub admin: crate::admin::Admin,
    pub metrics: ops::Metrics,
}

/// The whole route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .service(
            web::scope("/admin/v1")
                .app_data(web::QueryConfig::default().error_handler(|err, _| {
                    problem::Problem::new(400, format!("malformed query string: {err}")).into()
                }))
                .configure(admin::routes),
        )
        .service(web::scope("/scim/v2").configure(scim_routes))
        .service(web::scope("/t/{tenant}/scim/v2").configure(scim_routes));
}

/// SCIM routes, mounted at `/scim/v2` and at `/t/{tenant}/scim/v2`.
fn scim_routes(cfg: &mut web::ServiceConfig) {
    use crate::scim::ResourceKind::{Group, User};
    // Any method a resource does not serve gets a SCIM error (405, or 501
    // for PATCH while unsupported), never actix's bare 404/405.
    let resource = |path: &str| web::resource(path).default_service(web::route().to(resources::method_not_allowed));
    let read_only = |path: &str| web::resource(path).default_service(web::route().to(resources::method_not_allowed));
    // actix tries a scope's resources in order and matches each pattern with
    // a parameter by running its regex, so the routes IdPs call most come
    // first: a `GET /Users/{id}` runs one regex, not three. Static paths
    // cost a string compare; `/Users/.search` must precede `/Users/{id}`.
    cfg.service(read_only("/ServiceProviderConfig").route(web::get().to(discovery::service_provider_config)))
        .service(read_only("/ResourceTypes").route(web::get().to(discovery::resource_types)))
        .service(read_only("/Schemas").route(web::get().to(discovery::schemas)))
        .route("/Me", web::route().to(resources::me))
        .service(resource("/Bulk").route(web::post().to(resources::bulk)))
        .service(resource("/.search").route(web::post().to(resources::search_all)))
        .service(
            resource("/Users/.search")
                .app_data(web::Data::new(User))
                .route(web::post().to(resources::search)),
        )
        .service(
            resource("/Groups/.search")
                .app_data(web::Data::new(Group))
                .route(web::post().to(resources::search)),
        )
        .service(
            resource("/Users")
                .app_data(web::Data::new(User))
                .route(web::get().to(resources::list))
                .route(web::post().to(resources::create)),
        )
        .service(
            resource("/Groups")
                .app_data(web::Data::new(Group))
                .route(web::get().to(resources::list))
                .route(web::post().to(resources::create)),
        )
        .service(
            resource("/Users/{id}")
                .app_data(web::Data::new(User))
                .route(web::get().to(resources::get))
                .route(web::put().to(resources::replace))
                .route(web::patch().to(resources::patch))
                .route(web::delete().to(resources::delete)),
        )
        .service(
            resource("/Groups/{id}")
                .app_data(web::Data::new(Group))
                .route(web::get().to(resources::get))
                .route(web::put().to(resources::replace))
                .route(web::patch().to(resources::patch))
                .route(web::delete().to(resources::delete)),
        )
        .service(read_only("/ResourceTypes/{id}").route(web::get().to(discovery::resource_type)))
        .service(read_only("/Schemas/{id}").route(web::get().to(discovery::schema)))
        .default_service(web::route().to(resources::unknown_endpoint));
}
