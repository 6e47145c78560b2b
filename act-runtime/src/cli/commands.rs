//! The commands: each reads or changes the store through the app and returns what it
//! found, as a value that prints as a table or as one JSON document.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;

use super::CliError;
use super::args::{Command, EventsArgs, StreamsArgs};
use super::table::{Table, clip};
use crate::app::Act;
use crate::error::ActError;
use crate::model::{Committed, EventId};
use crate::ports::{Lease, Query, StreamFilter, StreamMatch, StreamPosition};
use crate::projections::{ProjectionStatus, RebuildOptions};

/// What a command prints.
pub(crate) trait Render: Serialize {
    /// The text for a person (a table, a count).
    fn text(&self) -> String;
}

/// Runs `command` (any but `diagram`) on `app`; returns the output, as JSON or as text.
pub(crate) async fn run(app: &Act, command: &Command, json: bool) -> Result<String, CliError> {
    let failed = |source: ActError| CliError::Command {
        command: command.name(),
        source,
    };
    match command {
        Command::Streams(args) => print(json, &streams(app, args).await.map_err(failed)?),
        Command::Blocked => print(json, &blocked(app).await.map_err(failed)?),
        Command::Unblock(s) => print(
            json,
            &Count {
                verb: "unblocked",
                count: app.unblock(s.streams.as_slice()).await.map_err(failed)?,
            },
        ),
        Command::Reset(s) => print(
            json,
            &Count {
                verb: "reset",
                count: app.reset(s.streams.as_slice()).await.map_err(failed)?,
            },
        ),
        Command::Retry(s) => print(json, &retry(app, &s.streams).await.map_err(failed)?),
        Command::Events(args) => print(json, &events(app, args).await.map_err(failed)?),
        Command::Projections => print(json, &projections(app).await.map_err(failed)?),
        Command::Replay { projection } => print(json, &replay(app, projection).await?),
        Command::Diagram => print(json, &Diagram::of(app)),
    }
}

/// `value` as pretty JSON (with a final newline) or as its text.
pub(crate) fn print(json: bool, value: &impl Render) -> Result<String, CliError> {
    if json {
        let mut s = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
        s.push('\n');
        Ok(s)
    } else {
        Ok(value.text())
    }
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

// ---- streams ---------------------------------------------------------------------------

/// What the lag column counts, printed under the table.
const LAG_MEANS: &str = "events of the row's source after its watermark, up to its work mark";

/// One subscription row, with its lag.
#[derive(Debug, Serialize)]
pub(crate) struct StreamRow {
    stream: String,
    /// `None`: every stream.
    source: Option<String>,
    source_is_pattern: bool,
    /// The last event id handled (`-1`: none).
    watermark: EventId,
    /// The work mark: the highest event id with work for the target.
    mark: Option<EventId>,
    /// Events of the source after the watermark, up to the mark, counted up to the cap.
    lag: usize,
    /// Whether counting stopped at the cap (there are more).
    lag_capped: bool,
    retry: i32,
    blocked: bool,
    error: Option<String>,
    priority: i32,
    leased_by: Option<String>,
    leased_until: Option<DateTime<Utc>>,
}

/// The `streams` output.
#[derive(Debug, Serialize)]
pub(crate) struct StreamRows {
    /// What `lag` counts.
    lag_means: String,
    rows: Vec<StreamRow>,
}

async fn streams(app: &Act, args: &StreamsArgs) -> Result<StreamRows, ActError> {
    let filter = StreamFilter {
        stream: args.pattern.clone().map(StreamMatch::Pattern),
        blocked: args.blocked.then_some(true),
        after: args.after.clone(),
        limit: Some(args.limit),
    };
    let positions = app.store().query_streams(&filter).await?;
    let mut rows = Vec::with_capacity(positions.len());
    for p in positions {
        let (lag, lag_capped) = lag(app, &p, args.lag_cap).await?;
        rows.push(StreamRow {
            stream: p.stream,
            source: p.source,
            source_is_pattern: p.source_is_pattern,
            watermark: p.at,
            mark: p.correlated_at,
            lag,
            lag_capped,
            retry: p.retry,
            blocked: p.blocked,
            error: p.error,
            priority: p.priority,
            leased_by: p.leased_by,
            leased_until: p.leased_until,
        });
    }
    Ok(StreamRows {
        lag_means: format!("{LAG_MEANS}, counted up to {}", args.lag_cap),
        rows,
    })
}

/// The events of `row`'s source after its watermark up to its work mark, counted up to
/// `cap` (one bounded query, without the events' metadata); and whether there are more.
async fn lag(app: &Act, row: &StreamPosition, cap: usize) -> Result<(usize, bool), ActError> {
    let Some(mark) = row.correlated_at.filter(|m| *m > row.at) else {
        return Ok((0, false));
    };
    let query = match (&row.source, row.source_is_pattern) {
        (None, _) => Query::all(),
        (Some(s), false) => Query::stream(s),
        (Some(s), true) => Query::pattern(s),
    };
    let mut query = query
        .after(row.at)
        .before(mark.saturating_add(1))
        .limit(cap.saturating_add(1));
    query.skip_meta = true;
    let n = app.query_with(&query, |_| {}).await?;
    Ok((n.min(cap), n > cap))
}

impl Render for StreamRows {
    fn text(&self) -> String {
        if self.rows.is_empty() {
            return "no subscription rows\n".to_owned();
        }
        let mut t = Table::new([
            "STREAM",
            "SOURCE",
            "WATERMARK",
            "MARK",
            "LAG",
            "RETRY",
            "BLOCKED",
            "ERROR",
            "LEASE",
        ]);
        for r in &self.rows {
            let source = match (&r.source, r.source_is_pattern) {
                (None, _) => "*".to_owned(),
                (Some(s), false) => s.clone(),
                (Some(s), true) => format!("~{s}"),
            };
            let lease = match (&r.leased_by, &r.leased_until) {
                (Some(by), Some(until)) => format!("{by} until {}", time(until)),
                (Some(by), None) => by.clone(),
                _ => "-".to_owned(),
            };
            t.row([
                r.stream.clone(),
                source,
                r.watermark.to_string(),
                or_dash(r.mark),
                format!("{}{}", r.lag, if r.lag_capped { "+" } else { "" }),
                r.retry.to_string(),
                if r.blocked { "yes" } else { "no" }.to_owned(),
                r.error
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |e| clip(e, 48)),
                lease,
            ]);
        }
        format!(
            "{}lag: {}; source *: every stream, ~P: streams matching P\n",
            t.render(),
            self.lag_means
        )
    }
}

// ---- blocked ---------------------------------------------------------------------------

/// One blocked target.
#[derive(Debug, Serialize)]
pub(crate) struct BlockedRow {
    stream: String,
    /// The last event id handled: handling resumes after it once unblocked.
    watermark: EventId,
    retry: i32,
    error: Option<String>,
}

/// The `blocked` output.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct BlockedRows(Vec<BlockedRow>);

async fn blocked(app: &Act) -> Result<BlockedRows, ActError> {
    Ok(BlockedRows(
        app.blocked_streams()
            .await?
            .into_iter()
            .map(|p| BlockedRow {
                stream: p.stream,
                watermark: p.at,
                retry: p.retry,
                error: p.error,
            })
            .collect(),
    ))
}

impl Render for BlockedRows {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "no blocked targets\n".to_owned();
        }
        let mut t = Table::new(["STREAM", "WATERMARK", "RETRY", "ERROR"]);
        for r in &self.0 {
            t.row([
                r.stream.clone(),
                r.watermark.to_string(),
                r.retry.to_string(),
                or_dash(r.error.as_deref()),
            ]);
        }
        t.render()
    }
}

// ---- unblock, reset ----------------------------------------------------------------------

/// How many rows a repair changed.
#[derive(Debug)]
pub(crate) struct Count {
    verb: &'static str,
    count: usize,
}

impl Serialize for Count {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.verb, &self.count)?;
        m.end()
    }
}

impl Render for Count {
    fn text(&self) -> String {
        format!("{}: {}\n", self.verb, self.count)
    }
}

// ---- retry -----------------------------------------------------------------------------

/// What `retry` did to one target.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub(crate) enum Retried {
    /// It was blocked: unblocked, its watermark kept.
    Unblocked,
    /// It was held (a retry's wait, or a live lease) by `by` until `until`: handed back,
    /// due now, its watermark and retry count kept.
    Released {
        /// The holder.
        by: String,
        /// The end of the hold.
        until: DateTime<Utc>,
    },
    /// Neither blocked nor held: claimable already when it has work, so nothing to do.
    NotHeld,
    /// The row changed between reading it and handing it back (another holder): nothing
    /// done.
    Changed,
    /// No subscription row has this name.
    NotFound,
}

/// One target of `retry`.
#[derive(Debug, Serialize)]
pub(crate) struct RetryRow {
    stream: String,
    #[serde(flatten)]
    outcome: Retried,
}

/// The `retry` output.
#[derive(Debug, Serialize)]
pub(crate) struct RetryRows {
    /// How many targets were made claimable (unblocked or released).
    retried: usize,
    streams: Vec<RetryRow>,
}

async fn retry(app: &Act, streams: &[String]) -> Result<RetryRows, ActError> {
    let mut out = Vec::new();
    for stream in streams {
        if out.iter().any(|r: &RetryRow| &r.stream == stream) {
            continue;
        }
        let outcome = retry_one(app, stream).await?;
        out.push(RetryRow {
            stream: stream.clone(),
            outcome,
        });
    }
    Ok(RetryRows {
        retried: out
            .iter()
            .filter(|r| matches!(r.outcome, Retried::Unblocked | Retried::Released { .. }))
            .count(),
        streams: out,
    })
}

/// Unblocks `stream` if blocked; else, if held, acks it as its holder with `due` in the
/// past (the store's own "deferred until due" hand-back), so the next claim takes it.
async fn retry_one(app: &Act, stream: &str) -> Result<Retried, ActError> {
    let rows = app
        .store()
        .query_streams(&StreamFilter {
            stream: Some(StreamMatch::Exact(stream.to_owned())),
            ..StreamFilter::default()
        })
        .await?;
    let Some(row) = rows.into_iter().find(|r| r.stream == stream) else {
        return Ok(Retried::NotFound);
    };
    if row.blocked {
        return Ok(match app.unblock(&[stream]).await? {
            0 => Retried::Changed,
            _ => Retried::Unblocked,
        });
    }
    let now = Utc::now();
    let (Some(by), Some(until)) = (row.leased_by, row.leased_until) else {
        return Ok(Retried::NotHeld);
    };
    if until <= now {
        return Ok(Retried::NotHeld);
    }
    let lease = Lease {
        stream: row.stream,
        source: row.source,
        source_is_pattern: row.source_is_pattern,
        at: row.at,
        by: by.clone(),
        retry: row.retry,
        lagging: false,
        due: Some(now - TimeDelta::seconds(1)),
    };
    let acked = app.store().ack(&[lease]).await?;
    Ok(if acked.is_empty() {
        Retried::Changed
    } else {
        Retried::Released { by, until }
    })
}

impl Render for RetryRows {
    fn text(&self) -> String {
        let mut t = Table::new(["STREAM", "OUTCOME"]);
        for r in &self.streams {
            let outcome = match &r.outcome {
                Retried::Unblocked => "unblocked".to_owned(),
                Retried::Released { by, until } => {
                    format!("released: was held by {by} until {}", time(until))
                }
                Retried::NotHeld => "not blocked nor held: nothing to do".to_owned(),
                Retried::Changed => "changed meanwhile: nothing done".to_owned(),
                Retried::NotFound => "no such subscription row".to_owned(),
            };
            t.row([r.stream.clone(), outcome]);
        }
        format!("{}retried: {}\n", t.render(), self.retried)
    }
}

// ---- events ----------------------------------------------------------------------------

/// The `events` output.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Events(Vec<Committed>);

async fn events(app: &Act, args: &EventsArgs) -> Result<Events, ActError> {
    let mut q = match (&args.stream, &args.pattern) {
        (Some(s), _) => Query::stream(s),
        (None, Some(p)) => Query::pattern(p),
        (None, None) => Query::all(),
    }
    .limit(args.limit);
    if let Some(names) = &args.names {
        q = q.names(names.iter().cloned());
    }
    if let Some(id) = args.after {
        q = q.after(id);
    }
    if let Some(id) = args.before {
        q = q.before(id);
    }
    if let Some(c) = &args.correlation {
        q = q.correlation(c);
    }
    if args.backward {
        q = q.backward();
    }
    Ok(Events(app.query(&q).await?))
}

impl Render for Events {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "no events\n".to_owned();
        }
        let mut t = Table::new(["ID", "STREAM", "VERSION", "NAME", "CREATED", "DATA"]);
        for e in &self.0 {
            t.row([
                e.id.to_string(),
                e.stream.clone(),
                e.version.to_string(),
                e.name.clone(),
                time(&e.created),
                clip(e.data.get(), 60),
            ]);
        }
        t.render()
    }
}

// ---- projections -------------------------------------------------------------------------

/// One projection's status.
#[derive(Debug, Serialize)]
pub(crate) struct ProjectionRow {
    name: &'static str,
    /// The id of the last event its live model was fed (`-1`: none).
    position: EventId,
    /// The id of the last of its events in the log.
    head: Option<EventId>,
    /// How many of its events the log holds after `position`.
    behind: u64,
    /// Why its subscription is blocked.
    blocked: Option<String>,
    retry: i32,
}

impl From<ProjectionStatus> for ProjectionRow {
    fn from(s: ProjectionStatus) -> Self {
        Self {
            name: s.name,
            position: s.position,
            head: s.head,
            behind: s.behind,
            blocked: s.blocked,
            retry: s.retry,
        }
    }
}

impl ProjectionRow {
    fn cells(&self) -> [String; 5] {
        [
            self.name.to_owned(),
            self.position.to_string(),
            or_dash(self.head),
            self.behind.to_string(),
            self.blocked
                .as_deref()
                .map_or_else(|| "no".to_owned(), |e| clip(e, 48)),
        ]
    }
}

const PROJECTION_HEADER: [&str; 5] = ["PROJECTION", "POSITION", "HEAD", "BEHIND", "BLOCKED"];

/// The `projections` output.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Projections(Vec<ProjectionRow>);

async fn projections(app: &Act) -> Result<Projections, ActError> {
    Ok(Projections(
        app.projections()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

impl Render for Projections {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "no projections\n".to_owned();
        }
        let mut t = Table::new(PROJECTION_HEADER);
        for p in &self.0 {
            t.row(p.cells());
        }
        t.render()
    }
}

// ---- replay ----------------------------------------------------------------------------

/// The `replay` output: what the rebuild did, and the projection's status after it.
#[derive(Debug, Serialize)]
pub(crate) struct Replayed {
    projection: &'static str,
    /// Events applied to the next copy before it was promoted.
    filled: u64,
    /// Events applied to the promoted copy after (committed during the rebuild).
    caught_up: u64,
    /// The id of the last event applied.
    position: EventId,
    status: Option<ProjectionRow>,
}

async fn replay(app: &Act, name: &str) -> Result<Replayed, CliError> {
    let known: Vec<String> = app
        .reactions()
        .projections()
        .map(|p| p.name().to_owned())
        .collect();
    if !known.iter().any(|k| k == name) {
        return Err(CliError::UnknownProjection {
            name: name.to_owned(),
            known,
        });
    }
    let options = RebuildOptions::default().on_progress(crate::projections::progress_bar());
    let rebuilt = app
        .rebuild(name, options)
        .await
        .map_err(|source| CliError::Replay {
            projection: name.to_owned(),
            source,
        })?;
    let status = app
        .projections()
        .await
        .map_err(|source| CliError::Command {
            command: "replay",
            source,
        })?
        .into_iter()
        .find(|s| s.name == name)
        .map(Into::into);
    Ok(Replayed {
        projection: rebuilt.projection,
        filled: rebuilt.filled,
        caught_up: rebuilt.caught_up,
        position: rebuilt.position,
        status,
    })
}

impl Render for Replayed {
    fn text(&self) -> String {
        let mut out = format!(
            "replayed {}: {} event(s) filled, {} caught up, at event {}\n",
            self.projection, self.filled, self.caught_up, self.position
        );
        if let Some(status) = &self.status {
            let mut t = Table::new(PROJECTION_HEADER);
            t.row(status.cells());
            out.push_str(&t.render());
        }
        out
    }
}

// ---- diagram ---------------------------------------------------------------------------

/// The `diagram` output.
#[derive(Debug, Serialize)]
pub(crate) struct Diagram {
    mermaid: String,
}

impl Diagram {
    pub(crate) fn of(app: &Act) -> Self {
        Self {
            mermaid: app.diagram(),
        }
    }
}

impl Render for Diagram {
    fn text(&self) -> String {
        self.mermaid.clone()
    }
}
