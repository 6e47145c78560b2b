//! `GET /events`: Server-Sent Events of committed events, read from the store only.
//!
//! The feed keeps the id of the last event it sent and reads `Query::after(that id)`, a
//! page at a time, whether it is replaying or live; between reads it waits for a commit in
//! this process (the router's lifecycle listener bumps a `watch` channel) or for the poll
//! interval, whichever comes first. The channel is marked seen *before* each read and the
//! listener runs after the commit is readable, so a commit is never left unread until the
//! next poll; and an event whose id is not above the last sent is dropped, so none is
//! sent twice.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::watch;

use super::{Edge, Problem};
use crate::app::Act;
use crate::error::{ActError, Report, ValidationError};
use crate::model::{Committed, EventId};
use crate::ports::{Query, StreamMatch};

/// The query string of `GET /events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedParams {
    after: Option<EventId>,
    stream: Option<String>,
    pattern: Option<String>,
    names: Option<String>,
}

pub(super) async fn feed(
    State(edge): State<Edge>,
    headers: HeaderMap,
    params: Result<UrlQuery<FeedParams>, QueryRejection>,
) -> Response {
    match open(&edge, &headers, params).await {
        Ok(feed) => {
            let keep_alive = KeepAlive::new().interval(edge.0.options.keep_alive);
            let stream = futures_util::stream::unfold(feed, Feed::next);
            Sse::new(stream).keep_alive(keep_alive).into_response()
        }
        Err(p) => p.into_response(),
    }
}

/// Checks the request and reads the first page, so that a bad filter or an app that is
/// shut down is an error response, not a stream that ends at once.
async fn open(
    edge: &Edge,
    headers: &HeaderMap,
    params: Result<UrlQuery<FeedParams>, QueryRejection>,
) -> Result<Feed, Problem> {
    let UrlQuery(params) =
        params.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-query", e.body_text()))?;
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::trim))
        .filter(|v| !matches!(v, Ok("")));
    let after = match last {
        Some(v) => v
            .ok()
            .and_then(|s| s.parse::<EventId>().ok())
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-last-event-id",
                    "`Last-Event-ID` must be an event id (an integer)",
                )
            })?,
        None => params.after.unwrap_or(-1),
    };
    let mut query = Query::all();
    query.stream = match (params.stream, params.pattern) {
        (Some(_), Some(_)) => {
            return Err(Problem::validation(&ValidationError::new(
                "query",
                "/pattern",
                "give `stream` or `pattern`, not both",
            )));
        }
        (Some(s), None) => Some(StreamMatch::Exact(s)),
        (None, Some(p)) => Some(StreamMatch::Pattern(p)),
        (None, None) => None,
    };
    if let Some(names) = params.names {
        let names: Vec<String> = names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if !names.is_empty() {
            query.names = Some(names);
        }
    }
    let mut feed = Feed {
        app: edge.0.app.clone(),
        query,
        after,
        page: edge.0.options.page.max(1),
        poll: edge.0.options.poll,
        buffer: VecDeque::new(),
        commits: edge.0.commits.clone(),
        ended: false,
        // the router is kept while a feed is open: its listener keeps waking it
        _edge: edge.clone(),
    };
    feed.commits.borrow_and_update();
    feed.fetch().await.map_err(Problem::from)?;
    Ok(feed)
}

/// One client's feed.
struct Feed {
    app: Act,
    /// The filters; `after` and `limit` are set per read.
    query: Query,
    /// The id of the last event sent (or buffered to be sent).
    after: EventId,
    page: usize,
    poll: Duration,
    buffer: VecDeque<Committed>,
    commits: watch::Receiver<u64>,
    ended: bool,
    _edge: Edge,
}

impl Feed {
    /// Reads the next page after the last event; returns how many it buffered.
    async fn fetch(&mut self) -> Result<usize, ActError> {
        let mut query = self.query.clone();
        query.after = Some(self.after);
        query.limit = Some(self.page);
        let events = self.app.query(&query).await?;
        let before = self.buffer.len();
        for e in events {
            if e.id > self.after {
                self.after = e.id;
                self.buffer.push_back(e);
            }
        }
        Ok(self.buffer.len() - before)
    }

    /// The next SSE event: a buffered event, else the next page, else (caught up) after
    /// the next wake-up or poll. Ends after a `problem` event when the store fails.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(e) = self.buffer.pop_front() {
                return Some((Ok(sse_event(&e)), self));
            }
            self.commits.borrow_and_update();
            match self.fetch().await {
                Ok(0) => self.wait().await,
                Ok(_) => {}
                Err(e) => {
                    self.ended = true;
                    let p = Problem::from_error(&e);
                    let event = Event::default().event("problem").data(p.to_json());
                    return Some((Ok(event), self));
                }
            }
        }
    }

    /// Waits for a commit in this process or the poll interval.
    async fn wait(&mut self) {
        let commits = &mut self.commits;
        let woken = async {
            if commits.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(self.poll) => {}
        }
    }
}

/// `id:` the event id, `event:` its name, `data:` the committed event as JSON.
fn sse_event(e: &Committed) -> Event {
    let data = serde_json::to_string(e).unwrap_or_else(|err| {
        // a stored payload is JSON text and the rest are plain fields: not expected
        tracing::error!(id = e.id, error = %Report::new(&err), "a committed event does not serialize");
        Problem::internal().to_json()
    });
    let event = Event::default().id(e.id.to_string()).data(data);
    // an `event:` line cannot hold a line break; such a name (not one `#[emits]` makes)
    // goes out as a plain `message`, its name still in the data
    if e.name.contains(['\n', '\r']) {
        event
    } else {
        event.event(&e.name)
    }
}
