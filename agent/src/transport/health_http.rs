//! `GET /metrics` beside it: Prometheus text (see [`crate::metrics`]),
//! loopback only like `/healthz`.
//!
//! A readiness endpoint a kubelet or a supervisor can probe without a
//! client certificate: `GET /healthz` in plain HTTP, on a loopback address
//! only (so it tells nothing beyond the host), answering the agent's overall
//! `grpc.health.v1` status — `200 SERVING`, or `503` and the status — as the
//! mTLS health service does. A bare TCP probe would call an agent ready
//! whose subsystems report themselves not serving.

use std::{future::Future, sync::Arc};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use tokio::net::TcpListener;
use tonic_health::{
    pb::{HealthCheckRequest, health_check_response::ServingStatus, health_server::Health},
    server::{HealthReporter, HealthService},
};

#[derive(Clone)]
struct Served {
    health: HealthReporter,
    metrics: Arc<crate::metrics::Metrics>,
}

async fn metrics(State(s): State<Served>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz(State(Served { health, .. }): State<Served>) -> (StatusCode, String) {
    let svc = HealthService::from_health_reporter(health);
    let asked = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    match svc.check(asked).await {
        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
            (StatusCode::OK, "SERVING\n".to_owned())
        }
        Ok(r) => {
            let status = ServingStatus::try_from(r.get_ref().status)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN");
            (StatusCode::SERVICE_UNAVAILABLE, format!("{status}\n"))
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", e.message()),
        ),
    }
}

/// Serves `/healthz` and `/metrics` on `listener` until `shutdown`.
pub async fn serve(
    health: HealthReporter,
    metrics: Arc<crate::metrics::Metrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(self::metrics))
        .with_state(Served { health, metrics });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
