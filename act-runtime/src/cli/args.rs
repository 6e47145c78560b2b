//! The command line, as clap's derive reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::EventId;

/// The heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// The top level: where the store is, how to print, and the command.
#[derive(Debug, Parser)]
#[command(
    about = "Operate an act app's store: subscriptions, blocked targets, events, projections",
    disable_version_flag = true,
    // The docs show the help text: the same on every terminal, even in a binary where
    // clap's `wrap_help` feature is on.
    term_width = 100
)]
pub(crate) struct Cli {
    /// The app's SQLite database file (it must exist)
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "pg", help_heading = GLOBAL)]
    pub sqlite: Option<PathBuf>,
    /// The app's PostgreSQL database (postgres://user:password@host:5432/db)
    #[arg(long, value_name = "URL", global = true, help_heading = GLOBAL)]
    pub pg: Option<String>,
    /// The PostgreSQL schema of the app's tables [default: public]
    #[arg(long, value_name = "NAME", global = true, help_heading = GLOBAL)]
    pub schema: Option<String>,
    /// The PostgreSQL base name of the app's tables [default: events]
    #[arg(long, value_name = "NAME", global = true, help_heading = GLOBAL)]
    pub table: Option<String>,
    /// Print one JSON document instead of a table
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The subscription rows: watermark, lag, retries, blocks and leases
    Streams(StreamsArgs),
    /// The blocked targets, with their errors
    Blocked,
    /// Unblock blocked targets; handling resumes at the event that blocked them
    Unblock(Streams),
    /// Rewind targets to the start and unblock them: all their events are handled again
    Reset(Streams),
    /// Make targets claimable now: unblock the blocked ones, end the wait of the others
    #[command(long_about = RETRY_LONG)]
    Retry(Streams),
    /// The events in the log, oldest first
    Events(EventsArgs),
    /// Each projection's position, the head of its events and how far behind it is
    Projections,
    /// Rebuild a projection from the log beside its live copy, then swap it in
    Replay {
        /// The projection's name
        projection: String,
    },
    /// The app's event flow as a Mermaid diagram (needs no store)
    Diagram,
}

/// `retry --help`, wrapped by hand (clap wraps only with its `wrap_help` feature).
const RETRY_LONG: &str = "\
Make targets claimable now: unblock the blocked ones, end the wait of the others.

A blocked target is unblocked, keeping its watermark. A target that failed and waits for its next
attempt is held by the drainer that failed until the attempt is due: retry hands the row back to
the store as that drainer would, due now, keeping its watermark and its retry count.

The store cannot tell that wait from a live lease: a drainer still handling the target keeps
going while another may claim it, so some of its events may be handled twice (reactions are at
least once).";

impl Command {
    /// The command's name, for errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Streams(_) => "streams",
            Self::Blocked => "blocked",
            Self::Unblock(_) => "unblock",
            Self::Reset(_) => "reset",
            Self::Retry(_) => "retry",
            Self::Events(_) => "events",
            Self::Projections => "projections",
            Self::Replay { .. } => "replay",
            Self::Diagram => "diagram",
        }
    }
}

/// The options of `streams`.
#[derive(Debug, Args)]
pub(crate) struct StreamsArgs {
    /// Only targets whose names match this pattern (literals, `.`, `.*`, `^`, `$`)
    #[arg(long, value_name = "P")]
    pub pattern: Option<String>,
    /// Only blocked targets
    #[arg(long)]
    pub blocked: bool,
    /// Only targets after this name (the next page)
    #[arg(long, value_name = "STREAM")]
    pub after: Option<String>,
    /// At most this many rows, by name
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// Count each row's lag up to this many events
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub lag_cap: usize,
}

/// Target streams.
#[derive(Debug, Args)]
pub(crate) struct Streams {
    /// The target streams
    #[arg(value_name = "STREAM", required = true)]
    pub streams: Vec<String>,
}

/// The options of `events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only this stream
    #[arg(long, value_name = "S", conflicts_with = "pattern")]
    pub stream: Option<String>,
    /// Only streams matching this pattern (literals, `.`, `.*`, `^`, `$`)
    #[arg(long, value_name = "P")]
    pub pattern: Option<String>,
    /// Only these event names
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub names: Option<Vec<String>>,
    /// Only events with a greater id
    #[arg(long, value_name = "ID")]
    pub after: Option<EventId>,
    /// Only events with a smaller id
    #[arg(long, value_name = "ID")]
    pub before: Option<EventId>,
    /// Only events of this correlation id
    #[arg(long, value_name = "C")]
    pub correlation: Option<String>,
    /// At most this many events
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
    /// Newest first
    #[arg(long)]
    pub backward: bool,
}
