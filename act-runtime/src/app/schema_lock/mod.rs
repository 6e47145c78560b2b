//! The schema lock: every event's schema written to a file committed with the code, and a
//! check that the code still reads what the file describes.
//!
//! Events are stored for ever; the code that reads them changes. A lock file taken from
//! the app's [`Catalog`] (each event's state, name, version, deprecated flag and JSON
//! Schema, sorted, pretty-printed so diffs read well) records what was promised. A later
//! build compares its own catalog with the file: a new event, a new `_vN` version, a new
//! optional or defaulted field, a field made optional or a changed description pass; an
//! event removed, a field removed, a field's type changed, or a field made required is a
//! [`Breaking`] change, with the fix (a new version of the event) in its message.
//!
//! Wire it into a test, and the lock is checked on every `cargo test`, CI included:
//!
//! ```
//! use act_runtime::prelude::*;
//! use act_runtime::app::SchemaLock;
//!
//! #[state(name = "Counter")]
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
//! # let dir = std::env::temp_dir().join(format!("act-doc-lock-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("schema.lock.json");
//! // in a `#[test]`, with a path such as
//! // concat!(env!("CARGO_MANIFEST_DIR"), "/schema.lock.json")
//! let app = act().with_state::<Counter>().build()?;
//! SchemaLock::verify(&app, &path)?; // writes the file the first time, checks it after
//! SchemaLock::verify(&app, &path)?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod compare;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Act;
use super::registry::Catalog;
use crate::model::event_version as version_of;

/// The environment variable that makes [`SchemaLock::verify`] rewrite the lock file
/// instead of checking it (`ACT_UPDATE_SCHEMA_LOCK=1 cargo test`).
///
/// ```
/// assert_eq!(act_runtime::app::UPDATE_ENV, "ACT_UPDATE_SCHEMA_LOCK");
/// ```
pub const UPDATE_ENV: &str = "ACT_UPDATE_SCHEMA_LOCK";

/// The lock file's format version, written in the file.
const FORMAT: u32 = 1;

/// The events of an app and their schemas, as written to (and read from) a lock file.
///
/// ```
/// use act_runtime::app::SchemaLock;
///
/// let lock = SchemaLock::from_json(r#"{ "format": 1, "events": [] }"#)?;
/// assert!(lock.events().is_empty());
/// assert_eq!(SchemaLock::from_json(&lock.to_json())?, lock);
/// # Ok::<(), act_runtime::app::SchemaLockError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaLock {
    format: u32,
    events: Vec<LockedEvent>,
}

/// One event in a [`SchemaLock`].
///
/// ```
/// use act_runtime::app::SchemaLock;
///
/// let lock = SchemaLock::from_json(r#"{ "format": 1, "events": [{
///     "state": "Account", "name": "Deposited_v2", "version": 2,
///     "schema": { "type": "object" } }] }"#)?;
/// let e = &lock.events()[0];
/// assert_eq!((e.state.as_str(), e.name.as_str(), e.version, e.deprecated), ("Account", "Deposited_v2", 2, false));
/// # Ok::<(), act_runtime::app::SchemaLockError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedEvent {
    /// The state whose streams hold it.
    pub state: String,
    /// The event's name (`Deposited_v2`).
    pub name: String,
    /// Its version: `1` for a name without a suffix, `N` for `_vN`.
    pub version: u32,
    /// Whether a later version supersedes it (it is still read, never emitted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    /// The payload's JSON Schema, with only the definitions it refers to.
    pub schema: Value,
}

impl SchemaLock {
    /// The lock of `catalog`'s events, sorted by state, base name and version.
    ///
    /// ```
    /// use act_runtime::prelude::*;
    /// use act_runtime::app::SchemaLock;
    ///
    /// #[state(name = "Counter")]
    /// #[derive(Debug, Clone, Default)]
    /// pub struct Counter { pub count: i64 }
    ///
    /// #[emits(Counter)]
    /// #[derive(Debug, Clone)]
    /// pub enum CounterEvent { Incremented { by: i64 }, Incremented_v2 { by: i64, why: String } }
    ///
    /// impl Patch<CounterEvent> for Counter {
    ///     fn patch(&mut self, event: &CounterEvent) {
    ///         match event {
    ///             CounterEvent::Incremented { by } | CounterEvent::Incremented_v2 { by, .. } => {
    ///                 self.count += by
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// let app = act().with_state::<Counter>().build()?;
    /// let lock = SchemaLock::of(&app.catalog());
    /// let names: Vec<_> = lock.events().iter().map(|e| (e.name.as_str(), e.version, e.deprecated)).collect();
    /// assert_eq!(names, [("Incremented", 1, true), ("Incremented_v2", 2, false)]);
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn of(catalog: &Catalog) -> Self {
        let mut events: Vec<LockedEvent> = catalog
            .states
            .iter()
            .flat_map(|s| {
                s.events.iter().map(|e| LockedEvent {
                    state: s.name.to_owned(),
                    name: e.name.to_owned(),
                    version: e.version,
                    deprecated: e.deprecated,
                    schema: normalize(e.schema.as_value()),
                })
            })
            .collect();
        events.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        SchemaLock {
            format: FORMAT,
            events,
        }
    }

    /// The locked events, sorted by state, base name and version (see [`of`](Self::of)).
    pub fn events(&self) -> &[LockedEvent] {
        &self.events
    }

    /// The lock as pretty JSON with sorted keys and a final newline: what [`write`](Self::write)
    /// puts in the file.
    ///
    /// ```
    /// use act_runtime::app::SchemaLock;
    ///
    /// let lock = SchemaLock::from_json(r#"{"events":[],"format":1}"#)?;
    /// assert_eq!(lock.to_json(), "{\n  \"format\": 1,\n  \"events\": []\n}\n");
    /// # Ok::<(), act_runtime::app::SchemaLockError>(())
    /// ```
    pub fn to_json(&self) -> String {
        // a lock is strings, numbers, booleans and JSON values: it always serializes; its
        // schemas' keys were sorted by `of`
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses a lock from its JSON.
    pub fn from_json(text: &str) -> Result<Self, SchemaLockError> {
        let lock: SchemaLock = serde_json::from_str(text)
            .map_err(|source| SchemaLockError::Parse { path: None, source })?;
        if lock.format != FORMAT {
            return Err(SchemaLockError::Format {
                found: lock.format,
                expected: FORMAT,
            });
        }
        Ok(lock)
    }

    /// Reads the lock file at `path`.
    ///
    /// ```
    /// use act_runtime::app::{SchemaLock, SchemaLockError};
    ///
    /// let path = std::env::temp_dir().join(format!("act-doc-read-{}.json", std::process::id()));
    /// let lock = act_runtime::prelude::act().build()?.schema_lock();
    /// lock.write(&path)?;
    /// assert_eq!(SchemaLock::read(&path)?, lock);
    /// std::fs::remove_file(&path)?;
    /// assert!(matches!(SchemaLock::read(&path), Err(SchemaLockError::Io { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(path: impl AsRef<Path>) -> Result<Self, SchemaLockError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SchemaLockError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            SchemaLockError::Parse { source, .. } => SchemaLockError::Parse {
                path: Some(path.to_owned()),
                source,
            },
            other => other,
        })
    }

    /// Writes the lock to `path` (replacing the file), as [`to_json`](Self::to_json); see
    /// [`read`](Self::read) for an example.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), SchemaLockError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()).map_err(|source| SchemaLockError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// The breaking changes from `self` (the lock) to `new` (the code's), every one of
    /// them; `Ok` when the new code still reads every payload the locked schemas describe.
    ///
    /// ```
    /// use act_runtime::app::{Change, SchemaLock};
    ///
    /// let old = SchemaLock::from_json(r#"{ "format": 1, "events": [{
    ///     "state": "Account", "name": "Deposited", "version": 1,
    ///     "schema": { "type": "object", "required": ["amount"],
    ///                 "properties": { "amount": { "type": "integer" } } } }] }"#)?;
    /// let new = SchemaLock::from_json(r#"{ "format": 1, "events": [{
    ///     "state": "Account", "name": "Deposited", "version": 1,
    ///     "schema": { "type": "object", "required": ["amount"],
    ///                 "properties": { "amount": { "type": "string" } } } }] }"#)?;
    /// let breaks = old.check(&new).unwrap_err();
    /// assert_eq!(breaks[0].path, "/amount");
    /// assert!(matches!(breaks[0].change, Change::TypeChanged { .. }));
    /// assert_eq!(
    ///     breaks[0].to_string(),
    ///     "`Deposited` at /amount: type changed from integer to string; add `Deposited_v2` instead"
    /// );
    /// assert!(old.check(&old).is_ok());
    /// # Ok::<(), act_runtime::app::SchemaLockError>(())
    /// ```
    pub fn check(&self, new: &SchemaLock) -> Result<(), Vec<Breaking>> {
        let mut breaks = Vec::new();
        for old in &self.events {
            let fix = next_version(old, self, new);
            let Some(now) = new.events.iter().find(|e| e.name == old.name) else {
                breaks.push(Breaking {
                    event: old.name.clone(),
                    path: String::new(),
                    change: Change::EventRemoved,
                    fix: format!(
                        "keep it in `{}`'s events (a newer version makes it deprecated) so \
                         old streams still load",
                        old.state
                    ),
                });
                continue;
            };
            if now.state != old.state {
                breaks.push(Breaking {
                    event: old.name.clone(),
                    path: String::new(),
                    change: Change::StateChanged {
                        from: old.state.clone(),
                        to: now.state.clone(),
                    },
                    fix: format!("keep it in `{}`'s events", old.state),
                });
            }
            for (path, change) in compare::compare(&old.schema, &now.schema) {
                breaks.push(Breaking {
                    event: old.name.clone(),
                    path,
                    change,
                    fix: fix.clone(),
                });
            }
        }
        if breaks.is_empty() {
            Ok(())
        } else {
            Err(breaks)
        }
    }

    /// Checks `app`'s events against the lock file at `path`, for a test:
    ///
    /// * no file yet, or [`UPDATE_ENV`] set to `1`: writes it ([`Verified::Written`]);
    /// * the file matches the code: [`Verified::Unchanged`];
    /// * compatible changes only (a new event or version, a new optional field):
    ///   [`SchemaLockError::Outdated`], naming the events: rerun with
    ///   `ACT_UPDATE_SCHEMA_LOCK=1` and commit the file, so the new schemas are locked too;
    /// * breaking changes: [`SchemaLockError::Breaking`], listing every one.
    ///
    /// See the [module documentation](self) for an example.
    pub fn verify(app: &Act, path: impl AsRef<Path>) -> Result<Verified, SchemaLockError> {
        let update = std::env::var(UPDATE_ENV).is_ok_and(|v| v == "1");
        Self::verify_with(&app.schema_lock(), path.as_ref(), update)
    }

    /// [`verify`](Self::verify) of a lock already taken, `update` standing for the
    /// environment variable.
    ///
    /// ```
    /// use act_runtime::app::{SchemaLock, SchemaLockError, Verified};
    ///
    /// let path = std::env::temp_dir().join(format!("act-doc-verify-{}.json", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let lock = act_runtime::prelude::act().build()?.schema_lock();
    /// assert_eq!(SchemaLock::verify_with(&lock, &path, false)?, Verified::Written);
    /// assert_eq!(SchemaLock::verify_with(&lock, &path, false)?, Verified::Unchanged);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify_with(
        new: &SchemaLock,
        path: &Path,
        update: bool,
    ) -> Result<Verified, SchemaLockError> {
        if update || !path.exists() {
            new.write(path)?;
            return Ok(Verified::Written);
        }
        let old = Self::read(path)?;
        old.check(new)
            .map_err(|changes| SchemaLockError::Breaking {
                path: path.to_owned(),
                changes,
            })?;
        let changed: Vec<String> = new
            .events
            .iter()
            .filter(|e| !old.events.contains(e))
            .map(|e| e.name.clone())
            .collect();
        if changed.is_empty() {
            Ok(Verified::Unchanged)
        } else {
            Err(SchemaLockError::Outdated {
                path: path.to_owned(),
                events: changed,
            })
        }
    }
}

impl Act {
    /// The [`SchemaLock`] of this app's events.
    ///
    /// ```
    /// let app = act_runtime::prelude::act().build()?;
    /// assert!(app.schema_lock().events().is_empty());
    /// # Ok::<(), act_runtime::prelude::BuildError>(())
    /// ```
    pub fn schema_lock(&self) -> SchemaLock {
        SchemaLock::of(&self.catalog())
    }
}

/// What [`SchemaLock::verify`] did (see [`SchemaLock::verify_with`] for an example).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verified {
    /// The file was missing or an update was asked for: it was written.
    Written,
    /// The file matches the code.
    Unchanged,
}

/// A change that leaves some stored event unreadable (or read with a field lost).
///
/// ```
/// use act_runtime::app::{Breaking, Change};
///
/// let b = Breaking {
///     event: "Deposited".into(),
///     path: "/memo".into(),
///     change: Change::FieldRemoved,
///     fix: "add `Deposited_v2` instead".into(),
/// };
/// assert_eq!(b.to_string(), "`Deposited` at /memo: field removed; add `Deposited_v2` instead");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{event}`{}: {change}; {fix}", at(.path))]
pub struct Breaking {
    /// The locked event's name.
    pub event: String,
    /// Where in its payload, as a JSON pointer (`/lines/*/qty`: `*` is any array element
    /// or map value, an enum variant's name its tag; `/` for the payload as a whole); empty
    /// for a change to the event itself (removed, moved to another state).
    pub path: String,
    /// What changed.
    pub change: Change,
    /// How to make the change without breaking: ``add `Deposited_v2` instead`` for a
    /// changed payload.
    pub fix: String,
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    }
}

/// The kinds of [`Breaking`] change.
///
/// ```
/// use act_runtime::app::Change;
///
/// let c = Change::TypeChanged { from: "integer (uint32)".into(), to: "string".into() };
/// assert_eq!(c.to_string(), "type changed from integer (uint32) to string");
/// assert_eq!(Change::FieldMadeRequired.to_string(), "field made required");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The event is gone (old streams hold it; keep it as a deprecated version).
    EventRemoved,
    /// Another state now owns the event name.
    StateChanged {
        /// The locked state.
        from: String,
        /// The state now.
        to: String,
    },
    /// A field of the payload is gone.
    FieldRemoved,
    /// An optional or defaulted field is now required.
    FieldMadeRequired,
    /// A new field is required: old payloads lack it.
    RequiredFieldAdded,
    /// The field's values are not all read by its new type.
    TypeChanged {
        /// What the lock accepts (`integer (uint32)`, `string | null`).
        from: String,
        /// What the code accepts now.
        to: String,
    },
    /// An enum variant (or an allowed value) is gone.
    VariantRemoved {
        /// The variant, or the value as JSON.
        variant: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::EventRemoved => f.write_str("event removed"),
            Change::StateChanged { from, to } => {
                write!(f, "moved from state `{from}` to `{to}`")
            }
            Change::FieldRemoved => f.write_str("field removed"),
            Change::FieldMadeRequired => f.write_str("field made required"),
            Change::RequiredFieldAdded => f.write_str("required field added"),
            Change::TypeChanged { from, to } => write!(f, "type changed from {from} to {to}"),
            Change::VariantRemoved { variant } => write!(f, "variant {variant} removed"),
        }
    }
}

/// The errors of reading, writing and verifying a schema lock.
///
/// ```
/// use act_runtime::app::{SchemaLock, SchemaLockError};
///
/// let err = SchemaLock::from_json("{}").unwrap_err();
/// assert!(matches!(err, SchemaLockError::Parse { path: None, .. }));
/// assert_eq!(err.to_string(), "schema lock: not a valid lock file");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaLockError {
    /// The file could not be read or written.
    #[error("schema lock `{}`: cannot read or write the file", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a schema lock.
    #[error("schema lock{}: not a valid lock file", .path.as_ref().map(|p| format!(" `{}`", p.display())).unwrap_or_default())]
    Parse {
        /// The lock file, when read from one.
        path: Option<PathBuf>,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The file was written by another format version.
    #[error("schema lock format {found} is not supported (expected {expected})")]
    Format {
        /// The file's format.
        found: u32,
        /// This crate's.
        expected: u32,
    },
    /// The code changed locked events incompatibly.
    #[error(
        "schema lock `{}`: {} breaking change{}:\n{}",
        .path.display(),
        .changes.len(),
        if .changes.len() == 1 { "" } else { "s" },
        lines(.changes)
    )]
    Breaking {
        /// The lock file.
        path: PathBuf,
        /// Every breaking change.
        changes: Vec<Breaking>,
    },
    /// Compatible changes the file does not record yet.
    #[error(
        "schema lock `{}` is out of date (compatible changes to {}): rerun with \
         ACT_UPDATE_SCHEMA_LOCK=1 and commit the file",
        .path.display(),
        .events.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
    )]
    Outdated {
        /// The lock file.
        path: PathBuf,
        /// The events that are new or changed.
        events: Vec<String>,
    },
}

fn lines(changes: &[Breaking]) -> String {
    changes
        .iter()
        .map(|c| format!("  - {c}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sort_key(e: &LockedEvent) -> (&str, &str, u32) {
    let (base, v) = version_of(&e.name);
    (&e.state, base, v)
}

/// The fix for a break in `event`: a version above every one either lock knows.
fn next_version(event: &LockedEvent, old: &SchemaLock, new: &SchemaLock) -> String {
    let (base, _) = version_of(&event.name);
    let top = old
        .events
        .iter()
        .chain(&new.events)
        .map(|e| version_of(&e.name))
        .filter(|(b, _)| *b == base)
        .map(|(_, v)| v)
        .max()
        .unwrap_or(1);
    format!("add `{base}_v{}` instead", top + 1)
}

/// `schema` with sorted keys and only the `$defs` its references reach (a schemars
/// generator shared by an enum's variants hands every variant all the definitions so far).
fn normalize(schema: &Value) -> Value {
    let mut out = sorted(schema);
    if let Some(defs) = out.get("$defs").and_then(Value::as_object).cloned() {
        let mut keep = std::collections::BTreeSet::new();
        let mut todo = Vec::new();
        let mut body = out.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("$defs");
        }
        refs(&body, &mut todo);
        while let Some(name) = todo.pop() {
            if keep.insert(name.clone())
                && let Some(def) = defs.get(&name)
            {
                refs(def, &mut todo);
            }
        }
        let kept: Map<String, Value> = defs.into_iter().filter(|(k, _)| keep.contains(k)).collect();
        if let Some(map) = out.as_object_mut() {
            if kept.is_empty() {
                map.remove("$defs");
            } else {
                map.insert("$defs".to_owned(), Value::Object(kept));
            }
        }
    }
    out
}

/// The `$defs` names `schema` refers to (`#/$defs/Name`).
fn refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(name) = v.as_str().and_then(|r| r.strip_prefix("#/$defs/"))
                {
                    out.push(name.replace("~1", "/").replace("~0", "~"));
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A copy of `v` whose objects list their keys in order, whatever the map's own order, and
/// whose `required` lists are sorted (a set: reordering fields changes nothing).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| {
                        let mut value = sorted(&map[k]);
                        if let (true, Value::Array(names)) = (k == "required", &mut value) {
                            names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                        }
                        (k.clone(), value)
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
