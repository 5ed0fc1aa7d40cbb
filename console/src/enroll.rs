//! `POST ENROLL_PATH`: a collector exchanges a one-time token for its identity and key.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use base64::Engine as _;
use chrono::Utc;
use citysoc_collector::protocol::{EnrollRequest, EnrollResponse};

use crate::app::{blocking, respond, App};
use crate::metrics::Metrics;
use crate::registry::TokenProblem;
use crate::rejection::Rejected;

/// Longest name, host name or version accepted.
const MAX_LABEL_BYTES: usize = 255;

/// The handler.
pub(crate) async fn enroll(
    State(app): State<App>,
    request: Result<Json<EnrollRequest>, JsonRejection>,
) -> Response {
    let result = match request {
        Ok(Json(request)) => exchange(&app, request).await,
        Err(rejection) => Err(Rejected::bad_request(format!(
            "not an enrollment request: {}",
            rejection.body_text()
        ))),
    };
    respond(&app, "enroll", None, result).await
}

async fn exchange(app: &App, request: EnrollRequest) -> Result<EnrollResponse, Rejected> {
    let hostname = label("hostname", &request.hostname)?;
    // A machine without a host name (some containers) still enrolls; the id tells it apart.
    let name = [label("name", &request.name)?, hostname.clone()]
        .into_iter()
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unnamed".to_owned());
    let version = label("version", &request.version)?;
    let token = request.token;
    let enrolled = blocking(app, move |app| {
        Ok(app
            .registry
            .enroll(&token, &name, &hostname, &version, Utc::now())?)
    })
    .await?;
    match enrolled {
        Ok(enrolled) => {
            Metrics::add(&app.metrics.enrollments, 1);
            tracing::info!(
                collector = %enrolled.collector_id,
                agency = %enrolled.agency,
                "collector enrolled"
            );
            Ok(EnrollResponse {
                collector_id: enrolled.collector_id,
                agency: enrolled.agency,
                key: base64::engine::general_purpose::STANDARD.encode(enrolled.key),
            })
        }
        Err(TokenProblem::Unknown) => Err(Rejected::token(
            StatusCode::UNAUTHORIZED,
            "unknown_token",
            "this enrollment token is not known: check it, or ask the SOC for a new one",
        )),
        Err(TokenProblem::Used) => Err(Rejected::token(
            StatusCode::FORBIDDEN,
            "token_used",
            "this enrollment token already enrolled a collector: each token works once",
        )),
        Err(TokenProblem::Expired) => Err(Rejected::token(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "this enrollment token has expired: ask the SOC for a new one",
        )),
        Err(TokenProblem::Revoked) => Err(Rejected::token(
            StatusCode::UNAUTHORIZED,
            "token_revoked",
            "this enrollment token was revoked by the SOC: ask the SOC for a new one",
        )),
    }
}

/// A name-like field: trimmed, bounded, no control characters.
fn label(field: &str, value: &str) -> Result<String, Rejected> {
    let value = value.trim();
    if value.len() > MAX_LABEL_BYTES || value.chars().any(char::is_control) {
        return Err(Rejected::bad_request(format!(
            "{field}: at most {MAX_LABEL_BYTES} bytes without control characters"
        )));
    }
    Ok(value.to_owned())
}
