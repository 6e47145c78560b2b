//! `GET /openapi.json`: an OpenAPI 3.1 document built from the app's catalog.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use schemars::Schema;
use serde_json::{Map, Value, json};

use super::{Edge, HttpOptions};
use crate::app::Act;
use crate::app::registry::StateCatalog;
use crate::model::Actor;

pub(super) async fn serve(State(edge): State<Edge>) -> Response {
    let mut res = edge.0.openapi.clone().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The OpenAPI 3.1 document of the edge over `app`: what `GET /openapi.json` serves.
///
/// * one `POST /actions/{name}` path per action, its request body the envelope
///   `request.<Action>` whose `payload` is the action's JSON Schema (`action.<Action>`),
///   its `200` the state after it with the events committed (`executed.<State>`), and
///   its error responses as problem bodies (`act.Problem`);
/// * one `GET /streams/<State>/{stream}` path per state (`stream.<State>`);
/// * `GET /events` (`text/event-stream`) and `GET /openapi.json`;
/// * under `components/schemas`: every state (`state.<State>`), event (`event.<Event>`,
///   deprecated versions marked) and action, and the committed events of each state
///   (`committed.<State>`: the envelope with `name` and `data` paired per event).
///
/// The `$defs` of every schema are lifted into `components/schemas` and their `$ref`s
/// rewritten, so each reference resolves in the document (`#/$defs/...` would resolve
/// against the document's root, not the schema it came from). Two different definitions
/// of one name are kept apart: the later one is renamed `<owner>.<name>`.
///
/// ```
/// use act_runtime::prelude::*;
/// use act_runtime::http::{HttpOptions, openapi};
///
/// #[state(name = "Counter", actions(Increment))]
/// #[derive(Debug, Clone, Default)]
/// pub struct Counter { pub count: i64 }
///
/// #[emits(Counter)]
/// #[derive(Debug, Clone)]
/// pub enum CounterEvent { Incremented { by: i64 } }
///
/// impl Patch<CounterEvent> for Counter {
///     fn patch(&mut self, event: &CounterEvent) {
///         match event { CounterEvent::Incremented { by } => self.count += by }
///     }
/// }
///
/// #[action(Counter, emit = CounterEvent::Incremented)]
/// pub struct Increment { pub by: i64 }
///
/// let app = act().with_state::<Counter>().build()?;
/// let doc = openapi(&app, &HttpOptions::default());
/// assert_eq!(doc["openapi"], "3.1.0");
/// let body = &doc["paths"]["/actions/Increment"]["post"]["requestBody"];
/// assert_eq!(
///     body["content"]["application/json"]["schema"]["$ref"],
///     "#/components/schemas/request.Increment"
/// );
/// let payload = &doc["components"]["schemas"]["action.Increment"];
/// assert_eq!(payload["required"][0], "by");
/// # Ok::<(), BuildError>(())
/// ```
pub fn openapi(app: &Act, options: &HttpOptions) -> Value {
    let catalog = app.catalog();
    let mut c = Components::default();
    for s in &catalog.states {
        c.reserve(&format!("state.{}", s.name));
        c.reserve(&format!("stream.{}", s.name));
        c.reserve(&format!("executed.{}", s.name));
        c.reserve(&format!("committed.{}", s.name));
        for e in &s.events {
            c.reserve(&format!("event.{}", e.name));
        }
        for a in &s.actions {
            c.reserve(&format!("action.{}", a.name));
            c.reserve(&format!("request.{}", a.name));
        }
    }
    for name in FRAMEWORK {
        c.reserve(name);
    }
    framework_schemas(&mut c);

    let mut paths = Map::new();
    for s in &catalog.states {
        state_schemas(&mut c, s);
        for a in &s.actions {
            let payload = c.add_root(&format!("action.{}", a.name), &a.schema);
            c.insert(&format!("request.{}", a.name), request_schema(payload));
            let mut description = format!("Runs action `{}` on a stream of `{}`.", a.name, s.name);
            if !a.invariants.is_empty() {
                description.push_str(" Refused with `409` (`invariant`) when: ");
                description.push_str(&a.invariants.join("; "));
                description.push('.');
            }
            paths.insert(
                format!("/actions/{}", a.name),
                json!({"post": {
                    "operationId": a.name,
                    "tags": [s.name],
                    "summary": format!("{} ({})", a.name, s.name),
                    "description": description,
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {
                            "schema": reference(&format!("request.{}", a.name)),
                        }},
                    },
                    "responses": responses(
                        reference(&format!("executed.{}", s.name)),
                        "The action committed (or emitted nothing): the state after it and the events committed.",
                        &[
                            ("400", "The body is not JSON."),
                            ("404", "No such action."),
                            ("409", "An invariant does not hold, the handler refused, or the stream is not at `expected_version`."),
                            ("410", "The stream is closed."),
                            ("413", "The body is too large."),
                            ("415", "The body is not sent as `application/json`."),
                            ("422", "The body or the payload does not match its schema: `target`, `path` and `errors` say where."),
                            ("500", "The server failed."),
                            ("503", "The app is shut down or the store is unavailable."),
                        ],
                    ),
                }}),
            );
        }
        paths.insert(
            format!("/streams/{}/{{stream}}", s.name),
            json!({"get": {
                "operationId": format!("load{}", s.name),
                "tags": [s.name],
                "summary": format!("The state of a `{}` stream", s.name),
                "description": "A stream name may contain `/`: the rest of the path is the stream's name.",
                "parameters": [{
                    "name": "stream", "in": "path", "required": true,
                    "schema": {"type": "string", "minLength": 1},
                }],
                "responses": responses(
                    reference(&format!("stream.{}", s.name)),
                    "The state after the stream's last event (version `-1`: no events yet).",
                    &[
                        ("404", "No such state."),
                        ("422", "Not a valid stream name."),
                        ("500", "The server failed."),
                        ("503", "The app is shut down or the store is unavailable."),
                    ],
                ),
            }}),
        );
    }
    paths.insert("/events".to_owned(), events_path());
    paths.insert(
        "/openapi.json".to_owned(),
        json!({"get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": {
                "description": "The OpenAPI 3.1 document.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }},
        }}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": options.title, "version": options.version},
        "paths": paths,
        "components": {"schemas": c.schemas},
    })
}

/// The framework's own components.
const FRAMEWORK: [&str; 5] = [
    "act.Actor",
    "act.EventMeta",
    "act.Committed",
    "act.Problem",
    "act.FieldProblem",
];

fn framework_schemas(c: &mut Components) {
    c.add_root("act.Actor", &schemars::schema_for!(Actor));
    let id = json!({"type": "integer", "format": "int64"});
    let cause = |props: Value, required: Value| json!({"type": "object", "properties": props, "required": required});
    c.insert(
        "act.EventMeta",
        json!({
            "type": "object",
            "required": ["correlation", "actor"],
            "properties": {
                "correlation": {"type": "string", "description": "The request trace."},
                "causation": {
                    "type": "object",
                    "properties": {
                        "action": cause(
                            json!({"name": {"type": "string"}, "stream": {"type": "string"},
                                   "expected_version": id}),
                            json!(["name", "stream"]),
                        ),
                        "event": cause(
                            json!({"id": id, "name": {"type": "string"},
                                   "stream": {"type": "string"}}),
                            json!(["id", "name", "stream"]),
                        ),
                    },
                },
                "actor": reference("act.Actor"),
            },
        }),
    );
    c.insert(
        "act.Committed",
        json!({
            "type": "object",
            "required": ["id", "name", "data", "stream", "version", "created", "meta"],
            "properties": {
                "id": {"type": "integer", "format": "int64", "description": "Global, increasing."},
                "name": {"type": "string"},
                "data": {"description": "The event's payload."},
                "stream": {"type": "string"},
                "version": {"type": "integer", "format": "int64", "description": "In the stream, from 0."},
                "created": {"type": "string", "format": "date-time"},
                "meta": reference("act.EventMeta"),
            },
        }),
    );
    c.insert(
        "act.FieldProblem",
        json!({
            "type": "object",
            "required": ["path", "message"],
            "properties": {
                "path": {"type": "string", "description": "RFC 6901 pointer of the offending value."},
                "message": {"type": "string"},
            },
        }),
    );
    c.insert(
        "act.Problem",
        json!({
            "type": "object",
            "description": "Problem details (RFC 9457); kinds may add members (`stream`, `expected`, `actual`, ...).",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string", "format": "uri-reference"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string"},
                "target": {"type": "string", "description": "What was validated: an action's name, `stream`, `request`, `query`."},
                "path": {"type": "string", "description": "RFC 6901 pointer of the first offending field, relative to `target`."},
                "errors": {"type": "array", "items": reference("act.FieldProblem")},
            },
        }),
    );
}

/// A state's schema, its events', its committed events' and its bodies.
fn state_schemas(c: &mut Components, s: &StateCatalog) {
    let state = c.add_root(&format!("state.{}", s.name), &s.schema);
    let mut pairs = Vec::new();
    for e in &s.events {
        let data = c.add_root(&format!("event.{}", e.name), &e.schema);
        if let (true, Some(Value::Object(m))) = (
            e.deprecated,
            c.schemas.get_mut(&format!("event.{}", e.name)),
        ) {
            m.insert("deprecated".to_owned(), Value::Bool(true));
        }
        pairs.push(json!({
            "type": "object",
            "properties": {"name": {"const": e.name}, "data": data},
        }));
    }
    c.insert(
        &format!("committed.{}", s.name),
        json!({"allOf": [reference("act.Committed"), {"oneOf": pairs}]}),
    );
    c.insert(
        &format!("executed.{}", s.name),
        json!({
            "type": "object",
            "required": ["state", "version", "events"],
            "properties": {
                "state": {
                    "description": "The state after the action; `null` when it cannot be rendered as JSON (see `state_error`).",
                    "anyOf": [state.clone(), {"type": "null"}],
                },
                "state_error": {"type": "string"},
                "version": {"type": "integer", "format": "int64"},
                "events": {"type": "array", "items": reference(&format!("committed.{}", s.name))},
            },
        }),
    );
    c.insert(
        &format!("stream.{}", s.name),
        json!({
            "type": "object",
            "required": ["stream", "state", "version"],
            "properties": {
                "stream": {"type": "string"},
                "state": state,
                "version": {"type": "integer", "format": "int64"},
            },
        }),
    );
}

/// The body of `POST /actions/{name}` around the action's payload.
fn request_schema(payload: Value) -> Value {
    json!({
        "type": "object",
        "required": ["stream"],
        "additionalProperties": false,
        "properties": {
            "stream": {"type": "string", "minLength": 1, "maxLength": crate::app::MAX_STREAM_LEN},
            "actor": {
                "description": "Who runs the action; required unless the server sets it (authentication).",
                "allOf": [reference("act.Actor")],
            },
            "payload": {"description": "The action's payload; `{}` when left out.", "allOf": [payload]},
            "expected_version": {
                "type": "integer", "format": "int64",
                "description": "Commit only at this stream version (`-1`: empty); never retried.",
            },
            "correlation": {"type": "string", "description": "The request's trace id."},
        },
    })
}

fn events_path() -> Value {
    let query = |name: &str, schema: Value, description: &str| {
        json!({"name": name, "in": "query", "required": false, "schema": schema,
               "description": description})
    };
    json!({"get": {
        "operationId": "events",
        "summary": "Committed events, as Server-Sent Events",
        "description": "Each event: `id:` its id, `event:` its name, `data:` the committed event (`act.Committed`) as JSON. Replays from the store after `Last-Event-ID` (else `after`), then follows new commits. A `problem` event (an `act.Problem`) ends the stream when the store fails.",
        "parameters": [
            {"name": "Last-Event-ID", "in": "header", "required": false,
             "schema": {"type": "string"},
             "description": "Resume after this event id (a reconnecting EventSource sends it); wins over `after`."},
            query("after", json!({"type": "integer", "format": "int64"}), "Start after this event id."),
            query("stream", json!({"type": "string"}), "Only this stream (exact name)."),
            query("pattern", json!({"type": "string"}), "Only streams matching this pattern (`.`, `.*`, `^`, `$`)."),
            query("names", json!({"type": "string"}), "Only these event names, comma-separated."),
        ],
        "responses": responses_with(
            json!({"text/event-stream": {"schema": {"type": "string"}}}),
            "The stream of events.",
            &[
                ("400", "A bad `Last-Event-ID` or query string."),
                ("422", "A filter the store cannot run (both `stream` and `pattern`, a pattern outside the grammar)."),
                ("503", "The app is shut down or the store is unavailable."),
            ],
        ),
    }})
}

/// `200` with a JSON body of `schema`, and problem bodies for `errors`.
fn responses(schema: Value, ok: &str, errors: &[(&str, &str)]) -> Value {
    responses_with(json!({"application/json": {"schema": schema}}), ok, errors)
}

fn responses_with(content: Value, ok: &str, errors: &[(&str, &str)]) -> Value {
    let mut out = Map::new();
    out.insert(
        "200".to_owned(),
        json!({"description": ok, "content": content}),
    );
    for (status, description) in errors {
        out.insert(
            (*status).to_owned(),
            json!({
                "description": description,
                "content": {super::PROBLEM_JSON: {"schema": reference("act.Problem")}},
            }),
        );
    }
    Value::Object(out)
}

fn reference(key: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{key}")})
}

/// `components/schemas` under construction.
#[derive(Default)]
struct Components {
    schemas: Map<String, Value>,
    /// Names kept for the roots (states, events, actions, the framework's).
    reserved: HashSet<String>,
}

impl Components {
    fn reserve(&mut self, name: &str) {
        self.reserved.insert(key(name));
    }

    fn insert(&mut self, name: &str, schema: Value) {
        self.schemas.insert(key(name), schema);
    }

    /// Adds `schema` under `name` with its `$defs` lifted beside it; returns a reference
    /// to it.
    fn add_root(&mut self, name: &str, schema: &Schema) -> Value {
        let root_key = key(name);
        let mut root = schema.as_value().clone();
        let defs = match &mut root {
            Value::Object(m) => {
                m.remove("$schema");
                match m.remove("$defs") {
                    Some(Value::Object(defs)) => defs,
                    _ => Map::new(),
                }
            }
            _ => Map::new(),
        };
        // each definition takes its own name unless another schema holds it with other
        // content; then `<root>.<name>`, made unique
        let mut names: HashMap<String, String> = defs.keys().map(|d| (d.clone(), key(d))).collect();
        loop {
            let mut changed = false;
            for (d, def) in &defs {
                let candidate = &names[d];
                let clash = self.reserved.contains(candidate)
                    || names.iter().any(|(o, k)| o != d && k == candidate)
                    || self
                        .schemas
                        .get(candidate)
                        .is_some_and(|held| *held != rewrite(def, &names, &root_key));
                if clash {
                    let fresh = self.unique(&format!("{root_key}.{d}"), &names);
                    names.insert(d.clone(), fresh);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for (d, def) in &defs {
            let lifted = rewrite(def, &names, &root_key);
            self.schemas.insert(names[d].clone(), lifted);
        }
        let root = rewrite(&root, &names, &root_key);
        self.schemas.insert(root_key.clone(), root);
        reference(&root_key)
    }

    /// `base`, or `base.2`, `base.3`, ...: the first name nothing holds.
    fn unique(&self, base: &str, names: &HashMap<String, String>) -> String {
        let base = key(base);
        let free = |k: &str| {
            !self.reserved.contains(k)
                && !self.schemas.contains_key(k)
                && !names.values().any(|v| v == k)
        };
        if free(&base) {
            return base;
        }
        (2..)
            .map(|n| format!("{base}.{n}"))
            .find(|k| free(k))
            .unwrap_or(base)
    }
}

/// A component name: OpenAPI allows `[A-Za-z0-9._-]`; anything else becomes `_`.
fn key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `value` with its local references pointed into `components/schemas`: `#/$defs/<d>...`
/// to the lifted definition, `#` (a recursive root) to the root.
fn rewrite(value: &Value, names: &HashMap<String, String>, root: &str) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => Value::String(target(r, names, root)),
                        _ => rewrite(v, names, root),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rewrite(v, names, root)).collect()),
        other => other.clone(),
    }
}

fn target(r: &str, names: &HashMap<String, String>, root: &str) -> String {
    if r == "#" {
        return format!("#/components/schemas/{root}");
    }
    let Some(rest) = r.strip_prefix("#/$defs/") else {
        return r.to_owned();
    };
    let (token, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let def = token.replace("~1", "/").replace("~0", "~");
    match names.get(&def) {
        Some(k) => format!("#/components/schemas/{k}{tail}"),
        None => r.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(v: Value) -> Schema {
        Schema::try_from(v).unwrap()
    }

    #[test]
    fn defs_are_lifted_and_references_rewritten() {
        let mut c = Components::default();
        c.reserve("action.A");
        let r = c.add_root(
            "action.A",
            &schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"line": {"$ref": "#/$defs/Line"}, "me": {"$ref": "#"}},
                "$defs": {"Line": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Line"}}}},
            })),
        );
        assert_eq!(r, reference("action.A"));
        let a = &c.schemas["action.A"];
        assert!(a.get("$schema").is_none() && a.get("$defs").is_none());
        assert_eq!(a["properties"]["line"]["$ref"], "#/components/schemas/Line");
        assert_eq!(
            a["properties"]["me"]["$ref"],
            "#/components/schemas/action.A"
        );
        assert_eq!(
            c.schemas["Line"]["properties"]["next"]["$ref"],
            "#/components/schemas/Line"
        );
    }

    #[test]
    fn equal_definitions_are_shared_and_different_ones_kept_apart() {
        let mut c = Components::default();
        let line = json!({"type": "object", "properties": {"at": {"type": "string"}}});
        let other = json!({"type": "integer"});
        let with = |def: &Value| {
            schema(json!({"properties": {"l": {"$ref": "#/$defs/Line"}}, "$defs": {"Line": def}}))
        };
        c.add_root("action.A", &with(&line));
        c.add_root("action.B", &with(&line));
        c.add_root("action.C", &with(&other));
        assert_eq!(c.schemas["Line"], line);
        assert_eq!(c.schemas["action.C.Line"], other);
        assert_eq!(
            c.schemas["action.B"]["properties"]["l"]["$ref"],
            "#/components/schemas/Line"
        );
        assert_eq!(
            c.schemas["action.C"]["properties"]["l"]["$ref"],
            "#/components/schemas/action.C.Line"
        );
    }

    #[test]
    fn a_definition_never_takes_a_reserved_name() {
        let mut c = Components::default();
        c.reserve("event.X");
        c.add_root(
            "action.A",
            &schema(json!({"$ref": "#/$defs/event.X", "$defs": {"event.X": {"type": "string"}}})),
        );
        assert_eq!(
            c.schemas["action.A"]["$ref"],
            "#/components/schemas/action.A.event.X"
        );
        assert!(!c.schemas.contains_key("event.X"));
    }

    #[test]
    fn names_outside_the_component_alphabet_are_replaced() {
        assert_eq!(key("My State/v2"), "My_State_v2");
        assert_eq!(key("Deposited_v2"), "Deposited_v2");
    }
}
