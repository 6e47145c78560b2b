//! `POST /actions/{name}`: the request envelope, decoded with the path of any bad member,
//! then [`Act::execute_json`](crate::app::Act::execute_json).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::{Edge, Problem, detached};
use crate::error::{ActError, ValidationError};
use crate::model::{Actor, Target, Version};

/// The body of `POST /actions/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    stream: String,
    #[serde(default)]
    actor: Option<Actor>,
    #[serde(default = "empty_object")]
    payload: Value,
    #[serde(default)]
    expected_version: Option<Version>,
    #[serde(default)]
    correlation: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

pub(super) async fn execute(
    State(edge): State<Edge>,
    name: Result<Path<String>, PathRejection>,
    actor: Option<Extension<Actor>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match run(edge, name, actor, &headers, body).await {
        Ok(out) => out,
        Err(p) => p.into_response(),
    }
}

async fn run(
    edge: Edge,
    name: Result<Path<String>, PathRejection>,
    actor: Option<Extension<Actor>>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Path(name) = name.map_err(|e| Problem::new(e.status(), "bad-path", e.body_text()))?;
    let app = edge.0.app.clone();
    if app.registry().action(&name).is_none() {
        return Err(ActError::UnknownAction(name).into());
    }
    if !is_json(headers) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as JSON, with `Content-Type: application/json`",
        ));
    }
    let body = body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body-too-large"
        } else {
            "bad-body"
        };
        Problem::new(e.status(), code, e.body_text())
    })?;
    let request = decode(&body).map_err(|p| *p)?;
    let actor = match (actor, request.actor) {
        (Some(Extension(actor)), _) | (None, Some(actor)) => actor,
        (None, None) => {
            return Err(Problem::validation(&ValidationError::new(
                "request",
                "/actor",
                "missing field `actor`",
            )));
        }
    };
    let target = Target {
        stream: request.stream,
        actor,
        expected_version: request.expected_version,
        correlation: request.correlation,
    };
    let payload = request.payload;
    let executed = detached(async move { app.execute_json(&name, target, payload).await }).await?;
    Ok(Json(executed).into_response())
}

/// Whether the request says its body is JSON: `application/json` or any `+json` type.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = mime.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
}

/// Decodes the envelope: text that is not JSON is a `400` (`malformed-json`), JSON of
/// another shape a `422` on target `request` with the path of the offending member.
fn decode(body: &[u8]) -> Result<ActionRequest, Box<Problem>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let request: ActionRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = crate::error::json_pointer(e.path());
        envelope_problem(path, e.into_inner())
    })?;
    de.end().map_err(|e| envelope_problem(String::new(), e))?;
    Ok(request)
}

fn envelope_problem(path: String, e: serde_json::Error) -> Box<Problem> {
    Box::new(if e.is_data() {
        Problem::validation(&ValidationError::new("request", path, e.to_string()))
    } else {
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            format!("the body is not JSON: {e}"),
        );
        p.path = Some(path);
        p.with("line", e.line()).with("column", e.column())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognized() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!with("text/plain"));
        assert!(!with("json"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn envelope_errors_name_the_member() {
        let p = decode(br#"{"stream": "s", "actor": {"id": 1, "name": "n"}}"#).unwrap_err();
        assert_eq!((p.status, p.path.as_deref()), (422, Some("/actor/id")));
        assert_eq!(p.target.as_deref(), Some("request"));
        let p = decode(br#"{"stream": "s", "colour": 1}"#).unwrap_err();
        assert_eq!(p.status, 422, "{p:?}");
        let p = decode(br#"{"stream": "s""#).unwrap_err();
        assert_eq!((p.status, p.code), (400, "malformed-json"));
        let p = decode(br#"{"stream": "s"} {}"#).unwrap_err();
        assert_eq!((p.status, p.code), (400, "malformed-json"));
        let deep = "[".repeat(10_000);
        let p = decode(format!(r#"{{"stream": "s", "payload": {deep}"#).as_bytes()).unwrap_err();
        assert_eq!(p.status, 400);
    }

    #[test]
    fn the_payload_defaults_to_an_empty_object() {
        let r = decode(br#"{"stream": "s"}"#).unwrap();
        assert_eq!(r.payload, serde_json::json!({}));
        assert!(r.actor.is_none());
    }
}
