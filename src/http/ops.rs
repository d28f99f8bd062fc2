//! Operations: liveness, readiness, Prometheus metrics and the middleware
//! that records them.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use serde_json::json;

use super::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    keys: IntGaugeVec,
    keys_expiring: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("scimd".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method"],
        )?;
        let keys = IntGaugeVec::new(Opts::new("api_keys", "API keys by state"), &["state"])?;
        let keys_expiring = IntGaugeVec::new(
            Opts::new(
                "api_keys_expiring",
                "Live API keys expiring within the given number of days",
            ),
            &["within_days"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(keys.clone()))?;
        registry.register(Box::new(keys_expiring.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            keys,
            keys_expiring,
        })
    }

    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency.with_label_values(&[route, method]).observe(seconds);
    }
}

/// Records every request under its route pattern (never the raw path, whose
/// IDs would explode the label set).
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().to_string();
    let response = next.call(req).await?;
    if let Some(state) = state {
        let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".into());
        state.metrics.observe(
            &route,
            &method,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(response)
}

/// Adds the key-expiry warning header when the authenticated key expires soon.
pub async fn key_expiry_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let soon = response
        .request()
        .extensions()
        .get::<super::extract::KeyExpiresSoon>()
        .copied();
    if let Some(super::extract::KeyExpiresSoon(at)) = soon
        && let Ok(value) = HeaderValue::from_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static(super::extract::KEY_EXPIRES_HEADER), value);
    }
    Ok(response)
}

/// Echoes the request ID that tracing-actix-web assigned as `X-Request-Id`,
/// so a client report can be matched with the server's logs.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string());
    let mut response = next.call(req).await?;
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), id);
    }
    Ok(response)
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "detail": "database unreachable" }))
        }
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // Key gauges are read at scrape time: one small query, only when scraped.
    match state.store.key_statistics().await {
        Ok((by_state, week, month)) => {
            for (key_state, count) in by_state {
                state
                    .metrics
                    .keys
                    .with_label_values(&[key_state.as_str()])
                    .set(count as i64);
            }
            state.metrics.keys_expiring.with_label_values(&["7"]).set(week as i64);
            state.metrics.keys_expiring.with_label_values(&["30"]).set(month as i64);
        }
        Err(e) => tracing::warn!(error = %e, "cannot read key statistics"),
    }
    let mut buffer = Vec::new();
    match TextEncoder::new().encode(&state.metrics.registry.gather(), &mut buffer) {
        Ok(()) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4"))
            .body(buffer),
        Err(e) => {
            tracing::error!(error = %e, "metrics encoding failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The span each request runs in: method, path and request ID, which every
/// line logged while serving it carries. tracing-actix-web's default span
/// also resolves the route pattern (a regex match), parses the connection
/// info and formats a dozen fields on every request, which cost GET
/// /ServiceProviderConfig a third of its throughput; the request ID is what
/// ties a log line to a client's report, so it is what we keep. The status
/// is not recorded: nothing is logged after it is known (no line per
/// request), and recording it formatted the span's fields again, 4% of a
/// request's CPU.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        let request_id = request.extensions().get::<tracing_actix_web::RequestId>().copied();
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = request_id.map(tracing::field::display),
        )
    }

    fn on_request_end<B: MessageBody>(_: tracing::Span, _: &Result<ServiceResponse<B>, actix_web::Error>) {}
}
