//! The CLI's one error type.

use std::error::Error as _;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::{ActError, BuildError, StoreError};
use crate::projections::RebuildError;

/// Why a CLI command did not run (see [`run`](super::run)).
///
/// Each variant carries what the operator needs to act on it; [`CliError::report`] prints it
/// with its causes, and [`CliError::exit_code`] is `2` for a usage error (as clap's own),
/// `1` for everything else.
///
/// ```
/// use act_runtime::cli::{self, CliError};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut out = Vec::new();
/// let err = cli::run(["ops", "streams"], &mut out, act_runtime::app::act)
///     .await
///     .unwrap_err();
/// assert!(matches!(err, CliError::NoStore));
/// assert!(err.report().contains("--sqlite FILE or --pg URL"));
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The arguments do not parse: clap's message, with the usage.
    #[error(transparent)]
    Usage(clap::Error),
    /// The command reads the store, and none was given.
    #[error("this command reads the store: pass --sqlite FILE or --pg URL")]
    NoStore,
    /// `--sqlite` names a file that does not exist (the CLI never creates a database).
    #[error("no SQLite database at `{}`", path.display())]
    NoDatabase {
        /// The path given.
        path: PathBuf,
    },
    /// The store could not be opened, or its schema not seeded: a bad URL or schema name,
    /// a server that is down, a file that is not a database.
    #[error("cannot open the store at {store}")]
    Connect {
        /// The file or the URL, its password hidden.
        store: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The app given to the CLI does not build.
    #[error("the app does not build")]
    Build(#[source] BuildError),
    /// `replay` names a projection the app does not have.
    #[error("no projection is named `{name}` (the app has: {})", list(known))]
    UnknownProjection {
        /// The name given.
        name: String,
        /// The app's projections.
        known: Vec<String>,
    },
    /// The command failed in the app or the store (a store that went down, a pattern
    /// outside the portable grammar).
    #[error("`{command}` failed")]
    Command {
        /// The command.
        command: &'static str,
        /// The app's error.
        #[source]
        source: ActError,
    },
    /// The rebuild of a projection stopped (its live copy is as it was before, unless the
    /// error says it failed after the promotion).
    #[error("replaying `{projection}` failed")]
    Replay {
        /// The projection.
        projection: String,
        /// The rebuild's error.
        #[source]
        source: RebuildError,
    },
    /// The output could not be written.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl CliError {
    /// The process exit code for this error: `2` for a usage error, `1` otherwise.
    ///
    /// ```
    /// use act_runtime::cli::CliError;
    /// use std::process::ExitCode;
    ///
    /// assert_eq!(CliError::NoStore.exit_code(), ExitCode::from(1));
    /// ```
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(e) => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2)),
            _ => ExitCode::from(1),
        }
    }

    /// The error for a person: `error: ` and the message, then each cause on a line of its
    /// own (a cause whose text the line above already shows is left out). A usage error is
    /// clap's own text.
    ///
    /// ```
    /// use act_runtime::cli::CliError;
    ///
    /// let e = CliError::NoDatabase { path: "missing/bank.db".into() };
    /// assert_eq!(e.report(), "error: no SQLite database at `missing/bank.db`\n");
    /// ```
    pub fn report(&self) -> String {
        if let Self::Usage(e) = self {
            return e.to_string();
        }
        let mut out = format!("error: {self}\n");
        let mut shown = self.to_string();
        let mut cause = self.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !shown.contains(&text) {
                let _ = writeln!(out, "  caused by: {text}");
            }
            shown = text;
            cause = e.source();
        }
        out
    }
}
