//! Problem details (RFC 9457): every error the edge returns, as `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ActError, Report, StoreError, ValidationError};

/// The media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response body, after RFC 9457 (problem details for HTTP APIs), with the
/// edge's own members: `code` (stable, machine-readable), and for validation errors
/// `target` (what was validated), `path` (the RFC 6901 pointer of the first offending
/// field) and `errors` (every problem, each with its path).
///
/// ```
/// use act_runtime::error::ActError;
/// use act_runtime::http::Problem;
///
/// let p = Problem::from_error(&ActError::UnknownAction("Fly".into()));
/// assert_eq!((p.status, p.code), (404, "unknown-action"));
/// assert_eq!(p.kind, "urn:act:problem:unknown-action");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:act:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem, the same for every occurrence.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The machine-readable kind: `validation`, `malformed-json`, `unknown-action`, ...
    pub code: &'static str,
    /// What was validated (an action's name, `stream`, `request` for the body's envelope,
    /// `query` for the query string); validation problems only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The RFC 6901 pointer of the first offending field, relative to `target`: inside the
    /// action's payload for an action, inside the request body for `request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Every field problem: `{"path": ..., "message": ...}`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// Further members of some kinds: `stream`, `expected` and `actual` versions of a
    /// conflict; `action`, `invariant` of a broken invariant.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

/// One field problem of a [`Problem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The RFC 6901 pointer of the offending value (`""`: the whole input).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem with no field details.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:act:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            target: None,
            path: None,
            errors: Vec::new(),
            extensions: Map::new(),
        }
    }

    /// A validation problem (`422`) listing every field problem of `e`.
    pub fn validation(e: &ValidationError) -> Self {
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            e.to_string(),
        );
        p.target = Some(e.target.clone());
        p.path = e.problems.first().map(|f| f.path.clone());
        p.errors = e
            .problems
            .iter()
            .map(|f| FieldProblem {
                path: f.path.clone(),
                message: f.message.clone(),
            })
            .collect();
        p
    }

    /// The problem an app error maps to.
    ///
    /// | error | status | code |
    /// |---|---|---|
    /// | `Validation` | 422 | `validation` |
    /// | `UnknownAction` / `UnknownState` | 404 | `unknown-action` / `unknown-state` |
    /// | `Invariant` | 409 | `invariant` |
    /// | `Rejected` (the handler said no) | 409 | `rejected` |
    /// | `Concurrency` | 409 | `concurrency` |
    /// | `StreamClosed` | 410 | `stream-closed` |
    /// | `ShutDown`, `Store(Disposed)` | 503 | `shut-down` |
    /// | `Store(Backend)` | 503 | `store-unavailable` |
    /// | `Corrupt`, `Store(Corrupt)` | 500 | `corrupt` |
    ///
    /// The details of a 500 or a `store-unavailable` 503 stay in the server's log (they
    /// may name tables or hosts); the body says only what kind of failure it was.
    pub fn from_error(e: &ActError) -> Self {
        use StatusCode as S;
        match e {
            ActError::Validation(v) | ActError::Store(StoreError::Invalid(v)) => {
                Self::validation(v)
            }
            ActError::UnknownAction(_) => Self::new(S::NOT_FOUND, "unknown-action", e.to_string()),
            ActError::UnknownState(_) => Self::new(S::NOT_FOUND, "unknown-state", e.to_string()),
            ActError::Invariant(i) => Self::new(S::CONFLICT, "invariant", e.to_string())
                .with("action", i.action.as_str())
                .with("stream", i.stream.as_str())
                .with("invariant", i.description.as_str()),
            ActError::Rejected { action, stream, .. } => {
                Self::new(S::CONFLICT, "rejected", Report::new(e).to_string())
                    .with("action", action.as_str())
                    .with("stream", stream.as_str())
            }
            ActError::Concurrency(c) | ActError::Store(StoreError::Concurrency(c)) => {
                Self::new(S::CONFLICT, "concurrency", c.to_string())
                    .with("stream", c.stream.as_str())
                    .with("expected", c.expected)
                    .with("actual", c.actual)
            }
            ActError::StreamClosed(c) | ActError::Store(StoreError::Closed(c)) => {
                Self::new(S::GONE, "stream-closed", c.to_string()).with("stream", c.stream.as_str())
            }
            ActError::ShutDown | ActError::Store(StoreError::Disposed) => Self::new(
                S::SERVICE_UNAVAILABLE,
                "shut-down",
                ActError::ShutDown.to_string(),
            ),
            ActError::Store(StoreError::Backend { operation, .. }) => {
                tracing::error!(error = %Report::new(e), "store failed");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    format!("the store failed (operation `{operation}`); try again later"),
                )
            }
            ActError::Corrupt { .. } | ActError::Store(StoreError::Corrupt { .. }) => {
                tracing::error!(error = %Report::new(e), "a stored event cannot be read back");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "corrupt",
                    "a stored event cannot be read back",
                )
            }
        }
    }

    /// An internal error (`500`) whose details are in the server's log only.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; see its log",
        )
    }

    /// Adds a member.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The body, as JSON text.
    pub fn to_json(&self) -> String {
        // a struct of strings, numbers and JSON values: serializing it cannot fail
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<&ActError> for Problem {
    fn from(e: &ActError) -> Self {
        Self::from_error(e)
    }
}

impl From<ActError> for Problem {
    fn from(e: ActError) -> Self {
        Self::from_error(&e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = (self.status_code(), self.to_json()).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ConcurrencyError, InvariantError, StreamClosedError};

    #[test]
    fn every_app_error_has_its_status_and_code() {
        let cases: Vec<(ActError, u16, &str)> = vec![
            (
                ValidationError::new("AddItem", "/qty", "bad").into(),
                422,
                "validation",
            ),
            (ActError::UnknownAction("X".into()), 404, "unknown-action"),
            (ActError::UnknownState("X".into()), 404, "unknown-state"),
            (
                InvariantError {
                    action: "A".into(),
                    stream: "s".into(),
                    description: "closed".into(),
                }
                .into(),
                409,
                "invariant",
            ),
            (
                ActError::Rejected {
                    action: "A".into(),
                    stream: "s".into(),
                    source: "no".into(),
                },
                409,
                "rejected",
            ),
            (
                ConcurrencyError {
                    stream: "s".into(),
                    expected: 1,
                    actual: 2,
                }
                .into(),
                409,
                "concurrency",
            ),
            (
                StreamClosedError { stream: "s".into() }.into(),
                410,
                "stream-closed",
            ),
            (ActError::ShutDown, 503, "shut-down"),
            (
                ActError::Store(StoreError::Invalid(ValidationError::new("q", "", "x"))),
                422,
                "validation",
            ),
            (
                ActError::Store(StoreError::Concurrency(ConcurrencyError {
                    stream: "s".into(),
                    expected: 1,
                    actual: 2,
                })),
                409,
                "concurrency",
            ),
            (ActError::Store(StoreError::Disposed), 503, "shut-down"),
            (
                ActError::Store(StoreError::backend("commit", "secret host 10.0.0.1")),
                503,
                "store-unavailable",
            ),
        ];
        for (e, status, code) in cases {
            let p = Problem::from_error(&e);
            assert_eq!((p.status, p.code), (status, code), "{e}");
            assert!(!p.to_json().contains("secret host"), "{}", p.to_json());
        }
    }

    #[test]
    fn a_validation_problem_keeps_every_path() {
        let e = ValidationError {
            target: "AddItem".into(),
            problems: vec![
                crate::error::FieldError {
                    path: "/lines/1/at".into(),
                    message: "not a date".into(),
                },
                crate::error::FieldError {
                    path: "/qty".into(),
                    message: "negative".into(),
                },
            ],
        };
        let body: Value = serde_json::from_str(&Problem::validation(&e).to_json()).unwrap();
        assert_eq!(body["path"], "/lines/1/at");
        assert_eq!(body["target"], "AddItem");
        assert_eq!(body["errors"][1]["path"], "/qty");
        assert_eq!(body["type"], "urn:act:problem:validation");
    }

    #[test]
    fn a_conflict_carries_its_versions() {
        let e: ActError = ConcurrencyError {
            stream: "s".into(),
            expected: 1,
            actual: 2,
        }
        .into();
        let body: Value = serde_json::from_str(&Problem::from(e).to_json()).unwrap();
        assert_eq!(
            (body["expected"].as_i64(), body["actual"].as_i64()),
            (Some(1), Some(2))
        );
    }
}
