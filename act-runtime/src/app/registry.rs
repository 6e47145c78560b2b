//! The registry: what `#[state]`, `#[emits]` and `#[action]` generated, gathered by
//! [`ActBuilder::with_state`](super::ActBuilder::with_state) and checked by `build()`.

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use schemars::{Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::Value;

use super::Act;
use super::execute::ExecutedJson;
use crate::error::{ActError, BuildError};
use crate::model::{Emits, Event, Handle, Snapshot, State, Target};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type ExecJson = for<'a> fn(&'a Act, Value, Target) -> BoxFuture<'a, Result<ExecutedJson, ActError>>;
type LoadJson = for<'a> fn(&'a Act, &'a str) -> BoxFuture<'a, Result<Snapshot<Value>, ActError>>;

/// The actions of a state, as registry entries. Implemented by `#[state(actions(...))]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no events",
    label = "no enum is marked `#[emits({Self})]`",
    note = "declare the events of `{Self}` with `#[emits({Self})] enum ...`"
)]
pub trait StateActions: Emits {
    /// One entry per action listed in `#[state(actions(...))]`.
    fn actions() -> Vec<ActionEntry>;
}

/// The registry entry of one action: its name, schema, invariants and typed entry point.
pub struct ActionEntry {
    name: &'static str,
    state: &'static str,
    invariants: &'static [&'static str],
    emits: &'static [&'static str],
    schema: fn() -> Schema,
    exec: ExecJson,
    unit: OnceLock<bool>,
    validator: OnceLock<Result<jsonschema::Validator, String>>,
}

impl std::fmt::Debug for ActionEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionEntry")
            .field("name", &self.name)
            .field("state", &self.state)
            .field("invariants", &self.invariants)
            .finish_non_exhaustive()
    }
}

impl ActionEntry {
    /// The entry of action `A`.
    pub fn of<A: Handle>() -> Self {
        fn exec<A: Handle>(
            app: &Act,
            payload: Value,
            target: Target,
        ) -> BoxFuture<'_, Result<ExecutedJson, ActError>> {
            Box::pin(async move {
                let action: A = super::json::decode(A::NAME, payload)?;
                let out = app.execute(action, target).await?;
                out.to_json()
            })
        }
        Self {
            name: A::NAME,
            state: <A::State as State>::NAME,
            invariants: A::INVARIANTS,
            emits: A::EMITS,
            schema: || SchemaGenerator::default().into_root_schema_for::<A>(),
            exec: exec::<A>,
            unit: OnceLock::new(),
            validator: OnceLock::new(),
        }
    }

    /// The action's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The name of the state it writes to.
    pub fn state(&self) -> &'static str {
        self.state
    }

    /// The descriptions of its invariants.
    pub fn invariants(&self) -> &'static [&'static str] {
        self.invariants
    }

    /// The events it is known to emit (its passthrough event; empty when its handler
    /// decides).
    pub fn emits(&self) -> &'static [&'static str] {
        self.emits
    }

    /// Its payload's JSON Schema. A unit-struct action (`pub struct CheckOut;`) takes an
    /// empty object: `{"type": "object", "properties": {}, "additionalProperties": false}`
    /// (`null` is accepted too).
    pub fn schema(&self) -> Schema {
        let mut schema = (self.schema)();
        if is_unit(&schema) {
            empty_object(&mut schema, Value::from("object"));
        }
        schema
    }

    /// Whether the action is a unit struct: serde decodes it from `null` only.
    fn is_unit(&self) -> bool {
        *self.unit.get_or_init(|| is_unit(&(self.schema)()))
    }

    pub(crate) fn validator(&self) -> Result<&jsonschema::Validator, String> {
        self.validator
            .get_or_init(|| {
                let mut schema = (self.schema)();
                if is_unit(&schema) {
                    empty_object(&mut schema, serde_json::json!(["object", "null"]));
                }
                jsonschema::validator_for(schema.as_value()).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub(crate) fn exec<'a>(
        &self,
        app: &'a Act,
        payload: Value,
        target: Target,
    ) -> BoxFuture<'a, Result<ExecutedJson, ActError>> {
        // a unit struct deserializes from `null` only; `{}` is what HTTP clients send
        let payload = match payload {
            Value::Object(map) if map.is_empty() && self.is_unit() => Value::Null,
            other => other,
        };
        (self.exec)(app, payload, target)
    }
}

/// Whether `schema` is a unit struct's: schemars describes it as `{"type": "null"}`.
fn is_unit(schema: &Schema) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// Makes a unit struct's schema an empty object's, of type `ty`.
fn empty_object(schema: &mut Schema, ty: Value) {
    schema.insert("type".to_owned(), ty);
    schema.insert(
        "properties".to_owned(),
        Value::Object(serde_json::Map::new()),
    );
    schema.insert("additionalProperties".to_owned(), Value::Bool(false));
}

/// The registry entry of one state.
pub(crate) struct StateEntry {
    pub(crate) name: &'static str,
    pub(crate) type_id: TypeId,
    pub(crate) schema: fn() -> Schema,
    pub(crate) events: fn() -> Vec<(&'static str, Schema)>,
    pub(crate) event_names: &'static [&'static str],
    pub(crate) deprecated: &'static [&'static str],
    pub(crate) actions: Vec<ActionEntry>,
    pub(crate) load_json: LoadJson,
}

impl StateEntry {
    pub(crate) fn of<S: StateActions>() -> Self {
        fn load_json<'a, S: Emits>(
            app: &'a Act,
            stream: &'a str,
        ) -> BoxFuture<'a, Result<Snapshot<Value>, ActError>> {
            Box::pin(async move {
                let snap = app.load::<S>(stream).await?;
                let state = serde_json::to_value(&snap.state)
                    .map_err(|e| ActError::Store(crate::error::StoreError::backend("load", e)))?;
                Ok(Snapshot {
                    state,
                    version: snap.version,
                    event_id: snap.event_id,
                    patches: snap.patches,
                    snaps: snap.snaps,
                    cache_hit: snap.cache_hit,
                    replayed: snap.replayed,
                })
            })
        }
        Self {
            name: S::NAME,
            type_id: TypeId::of::<S>(),
            schema: || SchemaGenerator::default().into_root_schema_for::<S>(),
            events: || <S::Event as Event>::schemas(&mut SchemaGenerator::default()),
            event_names: <S::Event as Event>::NAMES,
            deprecated: <S::Event as Event>::DEPRECATED,
            actions: S::actions(),
            load_json: load_json::<S>,
        }
    }
}

/// The checked registry of an app: states, their events and actions, by name.
pub struct Registry {
    pub(crate) states: Vec<StateEntry>,
    by_type: HashMap<TypeId, usize, foldhash::fast::RandomState>,
    actions: HashMap<&'static str, (usize, usize)>,
    events: HashMap<&'static str, usize>,
}

impl Registry {
    pub(crate) fn build(entries: Vec<StateEntry>) -> Result<Self, BuildError> {
        let mut reg = Registry {
            states: Vec::with_capacity(entries.len()),
            by_type: HashMap::default(),
            actions: HashMap::new(),
            events: HashMap::new(),
        };
        for entry in entries {
            if reg.by_type.contains_key(&entry.type_id) {
                continue; // registering a state twice is idempotent
            }
            if reg.states.iter().any(|s| s.name == entry.name) {
                return Err(BuildError::DuplicateState {
                    name: entry.name.to_owned(),
                });
            }
            let idx = reg.states.len();
            for name in entry.event_names {
                if let Some(&other) = reg.events.get(name) {
                    return Err(BuildError::DuplicateEvent {
                        name: (*name).to_owned(),
                        first: reg.states[other].name.to_owned(),
                        second: entry.name.to_owned(),
                    });
                }
                reg.events.insert(name, idx);
            }
            for (a, action) in entry.actions.iter().enumerate() {
                if let Some(&(other, _)) = reg.actions.get(action.name) {
                    return Err(BuildError::DuplicateAction {
                        name: action.name.to_owned(),
                        first: reg.states[other].name.to_owned(),
                        second: entry.name.to_owned(),
                    });
                }
                reg.actions.insert(action.name, (idx, a));
            }
            reg.by_type.insert(entry.type_id, idx);
            reg.states.push(entry);
        }
        Ok(reg)
    }

    /// Whether state type `S` is registered.
    pub fn has_state<S: State>(&self) -> bool {
        self.by_type.contains_key(&TypeId::of::<S>())
    }

    /// The action registered under `name`.
    pub fn action(&self, name: &str) -> Option<&ActionEntry> {
        let &(s, a) = self.actions.get(name)?;
        Some(&self.states[s].actions[a])
    }

    /// The name of the state that emits event `name`.
    pub fn event_state(&self, name: &str) -> Option<&'static str> {
        self.events.get(name).map(|&s| self.states[s].name)
    }

    pub(crate) fn state_entry(&self, name: &str) -> Option<&StateEntry> {
        self.states.iter().find(|s| s.name == name)
    }

    /// The names of the registered states, in registration order.
    pub fn state_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.states.iter().map(|s| s.name)
    }

    /// The names of every registered action.
    pub fn action_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.states
            .iter()
            .flat_map(|s| s.actions.iter().map(|a| a.name))
    }

    /// The catalog: every state, event and action with its JSON Schema.
    pub fn catalog(&self) -> Catalog {
        Catalog {
            states: self
                .states
                .iter()
                .map(|s| StateCatalog {
                    name: s.name,
                    schema: (s.schema)(),
                    events: (s.events)()
                        .into_iter()
                        .map(|(name, schema)| EventCatalog {
                            name,
                            version: crate::model::event_version(name).1,
                            deprecated: s.deprecated.contains(&name),
                            schema,
                        })
                        .collect(),
                    actions: s
                        .actions
                        .iter()
                        .map(|a| ActionCatalog {
                            name: a.name,
                            invariants: a.invariants,
                            schema: a.schema(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The names and schemas of everything an app knows; serializes to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    /// The states.
    pub states: Vec<StateCatalog>,
}

/// A state in the [`Catalog`].
#[derive(Debug, Clone, Serialize)]
pub struct StateCatalog {
    /// The state's name.
    pub name: &'static str,
    /// The state's schema.
    pub schema: Schema,
    /// Its events.
    pub events: Vec<EventCatalog>,
    /// Its actions.
    pub actions: Vec<ActionCatalog>,
}

/// An event in the [`Catalog`].
#[derive(Debug, Clone, Serialize)]
pub struct EventCatalog {
    /// The event's name.
    pub name: &'static str,
    /// Its version: 1 for a name without a suffix, `N` for `_vN`.
    pub version: u32,
    /// Whether a later `_vN` version supersedes it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    /// The payload schema.
    pub schema: Schema,
}

/// An action in the [`Catalog`].
#[derive(Debug, Clone, Serialize)]
pub struct ActionCatalog {
    /// The action's name.
    pub name: &'static str,
    /// Its invariants' descriptions.
    pub invariants: &'static [&'static str],
    /// The payload schema.
    pub schema: Schema,
}
