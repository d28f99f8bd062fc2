//! The ceiling target: a bare actix-web server answering one fixed JSON
//! document, about the size of a user, on every path. Nothing a SCIM server
//! does can be cheaper on this machine, so its requests/s bound the others.

use std::net::SocketAddr;

use actix_web::{App, HttpResponse, HttpServer, web};

/// A user as scimd answers one (schemas, id, meta, name, emails, active).
pub const DOCUMENT: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"0193b0a4-6c1e-7d35-9a4b-2f8e5c1d7a90","userName":"user0@example.com","name":{"givenName":"Given0","familyName":"Family0"},"displayName":"User 0","emails":[{"value":"user0@example.com","type":"work","primary":true}],"active":true,"meta":{"resourceType":"User","created":"2026-01-01T00:00:00Z","lastModified":"2026-01-01T00:00:00Z","location":"http://127.0.0.1:8090/scim/v2/Users/0193b0a4-6c1e-7d35-9a4b-2f8e5c1d7a90","version":"W/\"1\""}}"#;

async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/scim+json").body(DOCUMENT)
}

/// Serves until SIGINT/SIGTERM (or until the harness kills it).
pub fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| App::new().default_service(web::to(document)))
            .bind(listen)?
            .run()
            .await
    })?;
    Ok(())
}
