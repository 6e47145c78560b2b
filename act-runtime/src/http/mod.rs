//! The HTTP edge (feature `http`): an [axum](https://docs.rs/axum/0.8) [`Router`] over an
//! app, built from its registry.
//!
//! | route | what it does |
//! |---|---|
//! | `POST /actions/{name}` | runs the action by name ([`Act::execute_json`]) |
//! | `GET /streams/{state}/{stream}` | a stream's state as JSON, with its version |
//! | `GET /events` | Server-Sent Events of committed events, resumable |
//! | `GET /openapi.json` | an OpenAPI 3.1 document of all of the above |
//!
//! Every error is a problem body ([`Problem`], `application/problem+json`); no input makes a
//! handler panic, and a panic in user code (a handler, a reducer) is caught and answered
//! with a `500`.
//!
//! # `POST /actions/{name}`
//!
//! The body, with `Content-Type: application/json` (anything else is a `415`, so a plain
//! HTML form cannot post to the edge from another site):
//!
//! ```json
//! {"stream": "cart-1", "actor": {"id": "u1", "name": "Ada"},
//!  "payload": {"sku": "A1", "qty": 2}, "expected_version": 3, "correlation": "req-77"}
//! ```
//!
//! `payload` defaults to `{}` (what a unit-struct action takes); `expected_version` pins the
//! stream's version (else the framework derives it and retries lost races); `correlation`
//! is the request's trace id (else the app makes one). Unknown members are rejected.
//!
//! **Who the actor is** is the caller's business: a middleware that authenticates the
//! request and inserts an [`Actor`] into its extensions (`request.extensions_mut()`) sets
//! it, and then the body's `actor` is ignored and may be left out. Without one, the body
//! must name the actor.
//!
//! `200` answers with what [`ExecutedJson`](crate::app::ExecutedJson) serializes to:
//! `{"state": ..., "version": n, "events": [...]}`. Errors (see
//! [`Problem::from_error`] for the whole table): an unknown action `404`; a body that is not
//! JSON `400`; a body that is JSON but not of this shape, or a payload that does not match
//! the action's JSON Schema, `422` with `target` (`request` or the action's name), `path`
//! (the RFC 6901 pointer of the first offending field, inside the body for `request`,
//! inside `payload` for the action) and `errors` (each field problem with its path); an
//! invariant, a handler's refusal or a lost race `409`; a closed stream `410`; an app shut
//! down `503`.
//!
//! # `GET /streams/{state}/{stream}`
//!
//! `{"stream": "cart-1", "state": {...}, "version": 2}`: the state after the stream's last
//! event, `version` `-1` for a stream with no events (its initial state). Stream names may
//! contain `/` (only control characters are refused), so `{stream}` is the rest of the
//! path: `/streams/Cart/tenant-1/cart-9` reads stream `tenant-1/cart-9`; percent-encode
//! `?`, `#` and `%`. An unknown state is a `404`.
//!
//! # `GET /events`
//!
//! A `text/event-stream` of committed events, in id order: each has `id:` the event's id,
//! `event:` its name and `data:` the committed event as JSON (`{"id", "name", "data",
//! "stream", "version", "created", "meta"}`). It starts after the id in the
//! `Last-Event-ID` header (what a reconnecting `EventSource` sends), else after `?after=`,
//! else at the first event, and replays from the store page by page before following new
//! commits. Filters: `?stream=` (one stream, exact), `?pattern=` (streams matching the
//! store's portable pattern grammar), `?names=A,B` (event names). Snapshot events are left
//! out. Comment lines keep idle connections alive ([`HttpOptions::keep_alive`]).
//!
//! **One source, so nothing is missed or repeated.** Every event sent is read from the
//! store with `Query::after(last id sent)`, both while replaying and while live; a commit
//! in this process only *wakes* the feed (a [`Lifecycle::Committed`](crate::app::Lifecycle)
//! listener), and every [`HttpOptions::poll`] it reads the store anyway, which is how
//! commits made by other processes on the same store arrive. The stores hand out reads
//! over several streams in id order and never show a new id below one already shown (the
//! PostgreSQL store stops such reads at its read horizon), so resuming after the last id
//! received gets exactly the events not yet received. A store error mid-stream ends the
//! stream with a `problem` event (its data a [`Problem`]); the client reconnects with
//! `Last-Event-ID`.
//!
//! # `GET /openapi.json`
//!
//! See [`openapi`]: built once, when the router is.
//!
//! # Example
//!
//! The router is a value: call it in memory (here with `tower::ServiceExt::oneshot`), or
//! serve it with [`axum::serve()`] (re-exported as [`axum`], so its version matches).
//!
//! ```
//! use act_runtime::prelude::*;
//! use act_runtime::http::axum::{body::Body, http::Request};
//! use tower::ServiceExt;
//!
//! #[state(name = "Counter", actions(Increment))]
//! #[derive(Debug, Clone, Default)]
//! pub struct Counter { pub count: i64 }
//!
//! #[emits(Counter)]
//! #[derive(Debug, Clone)]
//! pub enum CounterEvent { Incremented { by: i64 } }
//!
//! impl Patch<CounterEvent> for Counter {
//!     fn patch(&mut self, event: &CounterEvent) {
//!         match event { CounterEvent::Incremented { by } => self.count += by }
//!     }
//! }
//!
//! #[action(Counter, emit = CounterEvent::Incremented)]
//! pub struct Increment { pub by: i64 }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = act().with_state::<Counter>().build()?;
//! let router = act_runtime::http::router(app);
//! let request = Request::post("/actions/Increment")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"stream": "c-1", "actor": {"id": "u1", "name": "Ada"},
//!                          "payload": {"by": "two"}}"#))?;
//! let response = router.oneshot(request).await?;
//! assert_eq!(response.status(), 422); // `/by` is not an integer
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Serving it:
//!
//! ```no_run
//! # use act_runtime::prelude::*;
//! # async fn serve(app: Act) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! act_runtime::http::axum::serve(listener, act_runtime::http::router(app)).await
//! # }
//! ```

mod actions;
mod events;
mod openapi;
mod problem;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::app::{Act, Lifecycle, ListenerId};
use crate::error::Report;
#[cfg(doc)]
use crate::model::Actor;

pub use openapi::openapi;
pub use problem::{FieldProblem, PROBLEM_JSON, Problem};

/// The axum this edge is built on, so that serving it (`axum::serve`) or adding routes and
/// layers uses the same version.
pub use axum;

/// How the edge runs.
///
/// ```
/// use std::time::Duration;
/// use act_runtime::http::HttpOptions;
///
/// let options = HttpOptions { poll: Duration::from_millis(250), ..HttpOptions::default() };
/// assert_eq!(options.page, 256);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// How often an idle Server-Sent Events connection gets a keep-alive comment (15 s).
    pub keep_alive: Duration,
    /// How often an event feed reads the store without being woken by a commit in this
    /// process: the delay of events committed by other processes (1 s).
    pub poll: Duration,
    /// How many events an event feed reads from the store at a time (256).
    pub page: usize,
    /// The largest request body accepted, in bytes (2 MiB); over it, a `413`.
    pub body_limit: usize,
    /// The OpenAPI document's `info.title` (`"act"`).
    pub title: String,
    /// The OpenAPI document's `info.version` (this crate's version).
    pub version: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            page: 256,
            body_limit: 2 << 20,
            title: "act".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The edge's routes over `app`, with the default [`HttpOptions`]. See the
/// [module documentation](self) for the routes and their shapes.
///
/// ```
/// use act_runtime::prelude::*;
///
/// let router: act_runtime::http::axum::Router = act_runtime::http::router(act().build()?);
/// # Ok::<(), BuildError>(())
/// ```
pub fn router(app: Act) -> Router {
    router_with(app, HttpOptions::default())
}

/// [`router`] with these options.
///
/// ```
/// use std::time::Duration;
/// use act_runtime::prelude::*;
/// use act_runtime::http::{HttpOptions, router_with};
///
/// let options = HttpOptions { keep_alive: Duration::from_secs(5), ..HttpOptions::default() };
/// let _router = router_with(act().build()?, options);
/// # Ok::<(), BuildError>(())
/// ```
pub fn router_with(app: Act, options: HttpOptions) -> Router {
    let document = openapi(&app, &options).to_string();
    let (wake, commits) = watch::channel(0u64);
    let listener = app.on(move |e| {
        if let Lifecycle::Committed(_) = e {
            wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    });
    let body_limit = options.body_limit;
    let edge = Edge(Arc::new(Inner {
        app,
        options,
        openapi: document,
        commits,
        listener,
    }));
    Router::new()
        .route("/actions/{name}", post(actions::execute))
        .route("/streams/{state}/{*stream}", get(streams::load))
        .route("/events", get(events::feed))
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(traced))
        .with_state(edge)
}

/// Runs each request in an `http.request` span (method, path): the action it runs is a
/// child, and with feature `otel` the reactions that follow join its trace.
async fn traced(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "http.request",
        method = %request.method(),
        path = %request.uri().path(),
    );
    next.run(request).instrument(span).await
}

/// The state the handlers share.
#[derive(Clone)]
struct Edge(Arc<Inner>);

struct Inner {
    app: Act,
    options: HttpOptions,
    /// The OpenAPI document, rendered once.
    openapi: String,
    /// Bumped by each commit in this process: wakes the event feeds.
    commits: watch::Receiver<u64>,
    listener: ListenerId,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.app.off(self.listener);
    }
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not take that method",
    )
}

/// Runs `work` in its own task: a client that disconnects does not cancel an action
/// halfway, and a panic in user code becomes a `500`, not a dropped connection.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, crate::error::ActError>> + Send + 'static,
) -> Result<T, Problem> {
    use tracing::Instrument as _;
    match tokio::spawn(work.instrument(tracing::Span::current())).await {
        Ok(out) => out.map_err(Problem::from),
        Err(e) => {
            tracing::error!(error = %Report::new(&e), "a request's task failed");
            Err(Problem::internal())
        }
    }
}
