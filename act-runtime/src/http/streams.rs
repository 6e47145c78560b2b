//! `GET /streams/{state}/{stream}`: a stream's state as JSON, with its version.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::{Edge, Problem, detached};
use crate::model::Version;

/// The body of a `200`.
#[derive(Debug, Serialize)]
struct StreamState {
    stream: String,
    state: Value,
    version: Version,
}

pub(super) async fn load(
    State(edge): State<Edge>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Path((state, stream)) = match path {
        Ok(p) => p,
        Err(e) => return Problem::new(e.status(), "bad-path", e.body_text()).into_response(),
    };
    let app = edge.0.app.clone();
    let name = stream.clone();
    match detached(async move { app.load_json_snapshot(&state, &name).await }).await {
        Ok(snap) => Json(StreamState {
            stream,
            state: snap.state,
            version: snap.version,
        })
        .into_response(),
        Err(p) => p.into_response(),
    }
}
