//! The operator CLI (feature `cli`): a command line over an app's store, for the app's own
//! binary (the app's registry decodes its events and replays its projections).
//!
//! ```no_run
//! use act_runtime::prelude::*;
//! # fn bank_app() -> ActBuilder { act() }
//!
//! fn main() -> std::process::ExitCode {
//!     // `ops --sqlite bank.db blocked`, `ops --pg postgres://... --schema tenant_a streams`
//!     act_runtime::cli::main(bank_app)
//! }
//! ```
//!
//! | command | what it does |
//! |---|---|
//! | `streams [--pattern P] [--blocked] [--after S] [--limit N] [--lag-cap N]` | the subscription rows: watermark, work mark, lag, retry, blocked, error, lease holder and expiry |
//! | `blocked` | the blocked targets with their errors ([`Act::blocked_streams`]) |
//! | `unblock STREAM...` | unblocks them, keeping their progress ([`Act::unblock`]); prints how many were blocked |
//! | `reset STREAM...` | rewinds them to the start ([`Act::reset`]); prints how many changed |
//! | `retry STREAM...` | makes them claimable now (below) |
//! | `events [--stream S \| --pattern P] [--names A,B] [--after ID] [--before ID] [--correlation C] [--limit N] [--backward]` | the events: id, stream, version, name, created, data (cut in tables, whole in JSON) |
//! | `projections` | each projection's position, head, how far behind, blocked ([`Act::projections`]) |
//! | `replay PROJECTION` | rebuilds it ([`Act::rebuild`]) with a progress bar on stderr, then prints the result and its status |
//! | `diagram` | the event flow as Mermaid ([`Act::diagram`]); needs no store |
//!
//! The store is `--sqlite FILE` (an existing file: the CLI never creates a database) or
//! `--pg URL` with `--schema NAME` and `--table NAME` for a tenant's tables; either way the
//! CLI seeds it as an app does on boot (idempotent), builds the app with the user's
//! builder and that store, runs one command and shuts the app down. It never drains: the
//! app's workers do, and pick up what `unblock`, `reset` and `retry` changed at their next
//! wake-up or poll. `--json` prints one JSON document per command instead of a table.
//!
//! **Lag** (`streams`): the events of the row's source (every stream, one stream, or the
//! streams matching a pattern) after its watermark, up to its work mark: what the row has
//! yet to read. Counted with one query per row, stopped at `--lag-cap` (1000) events, so a
//! page of rows costs at most `limit × lag-cap` events read (without their metadata); a
//! count that reached the cap prints as `1000+` (`"lag_capped": true`).
//!
//! **Retry.** The store keeps no operation that clears a waiting row's due time, so `retry`
//! does what the store's contract allows: a blocked row is unblocked ([`Act::unblock`]); a
//! row held until a future time (a failed target waiting for its next attempt is held by
//! the drainer that failed until the attempt is due) is handed back as that drainer would,
//! with an ack due now ([`Store::ack`](crate::ports::Store::ack) with
//! [`Lease::due`](crate::ports::Lease::due) in the past), keeping its watermark and its
//! retry count. The store cannot tell such a wait from a live lease: releasing a live one
//! lets another drainer claim the target while its holder still works, so its events may
//! be handled twice (reactions are at least once, as after an expired lease). A holder
//! acking between `retry`'s read and its hand-back may see its watermark set back to the
//! value read: those events are handled again too.
//!
//! **Runtimes.** [`main`] builds a multi-threaded Tokio runtime, runs [`run`] on it with a
//! buffer as the output, and writes the buffer to stdout once the runtime is gone.
//! [`run`] is async, for a binary that owns its runtime (one that must `await` something
//! before it can build its app, such as a projection's connection pool) and for tests; it
//! writes the output to `out` once, when the command is done, on the task that awaits it:
//! give it a buffer, or a writer that does not block for long.

mod args;
mod commands;
mod connect;
mod error;
mod table;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use error::CliError;

#[cfg(doc)]
use crate::app::Act;
use crate::app::ActBuilder;
use args::{Cli, Command};

/// The `fn main` of an operator binary: parses the process's arguments, runs the command
/// on a Tokio runtime of its own, prints the output on stdout (a usage or help text, a
/// table, or JSON) and an error on stderr ([`CliError::report`]); returns the exit code
/// (`0`; `2` for a usage error; `1` for any other error).
///
/// `build` makes the app's builder, without a store: the CLI adds the one the command line
/// names. An app that needs to `await` before building (a projection's pool) calls [`run`]
/// from its own runtime instead.
///
/// ```no_run
/// use act_runtime::prelude::*;
///
/// fn main() -> std::process::ExitCode {
///     act_runtime::cli::main(|| act() /* .with_state::<Account>() ... */)
/// }
/// ```
pub fn main(build: impl FnOnce() -> ActBuilder) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = Vec::new();
    let result = runtime.block_on(run(std::env::args_os(), &mut out, build));
    drop(runtime);
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(&out).and_then(|()| stdout.flush());
    match (result, written) {
        (Err(e), _) => {
            eprint!("{}", e.report());
            e.exit_code()
        }
        // `ops events | head`: the reader had enough.
        (Ok(()), Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        (Ok(()), Err(e)) => {
            let e = CliError::Output(e);
            eprint!("{}", e.report());
            e.exit_code()
        }
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
    }
}

/// Runs one command line: `args` starts with the program's name (as
/// [`std::env::args_os`] does). Parses it, opens the store it names, builds the app from
/// `build()` and that store, runs the command, writes its output to `out` and shuts the
/// app down (whether the command succeeded or not).
///
/// `--help` (and `help`) writes the help text to `out` and returns `Ok`. Every failure is
/// a [`CliError`]: nothing panics on bad input or a store that is down.
///
/// ```
/// use act_runtime::prelude::*;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut out = Vec::new();
/// act_runtime::cli::run(["ops", "diagram"], &mut out, act).await?;
/// assert!(String::from_utf8(out)?.starts_with("flowchart LR"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn run<I, T>(
    args: I,
    out: &mut (impl Write + ?Sized),
    build: impl FnOnce() -> ActBuilder,
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // `--help`: the text is the output.
        Err(e) if !e.use_stderr() => return write(out, &e.to_string()),
        Err(e) => return Err(CliError::Usage(e)),
    };
    if cli.pg.is_none() && (cli.schema.is_some() || cli.table.is_some()) {
        // clap does not check `requires` on global options: said here, in clap's words.
        let name = args
            .first()
            .and_then(|a| std::path::Path::new(a).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let message =
            "--schema and --table name a PostgreSQL tenant's tables: they need --pg <URL>";
        return Err(CliError::Usage(
            Cli::command()
                .bin_name(name)
                .error(clap::error::ErrorKind::MissingRequiredArgument, message),
        ));
    }
    let text = if let Command::Diagram = cli.command {
        // The registry is all it reads: the app stays on the in-memory store.
        let app = build().build().map_err(CliError::Build)?;
        let text = commands::print(cli.json, &commands::Diagram::of(&app));
        let _ = app.shutdown().await;
        text?
    } else {
        let store = connect::open(&cli).await?;
        let app = match build().with_store_arc(store.clone()).build() {
            Ok(app) => app,
            Err(e) => {
                let _ = store.dispose().await;
                return Err(CliError::Build(e));
            }
        };
        let text = commands::run(&app, &cli.command, cli.json).await;
        let down = app.shutdown().await;
        let text = text?;
        down.map_err(|source| CliError::Command {
            command: cli.command.name(),
            source,
        })?;
        text
    };
    write(out, &text)
}

fn write(out: &mut (impl Write + ?Sized), text: &str) -> Result<(), CliError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}
