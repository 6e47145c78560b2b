//! The lock over what schemars really emits: `Option`, `#[serde(default)]`, nested
//! structs (`$ref` / `$defs`), enums; and `verify`'s file handling.

use schemars::{JsonSchema, SchemaGenerator};
use serde::Deserialize;

use super::*;

fn event<T: JsonSchema>(state: &str, name: &str) -> LockedEvent {
    LockedEvent {
        state: state.to_owned(),
        name: name.to_owned(),
        version: version_of(name).1,
        deprecated: false,
        schema: normalize(SchemaGenerator::default().root_schema_for::<T>().as_value()),
    }
}

fn lock(events: Vec<LockedEvent>) -> SchemaLock {
    SchemaLock {
        format: FORMAT,
        events,
    }
}

fn breaks(old: &SchemaLock, new: &SchemaLock) -> Vec<String> {
    match old.check(new) {
        Ok(()) => Vec::new(),
        Err(b) => b.iter().map(ToString::to_string).collect(),
    }
}

#[allow(dead_code)]
mod before {
    use super::*;

    #[derive(Deserialize, JsonSchema)]
    pub struct Line {
        pub sku: String,
        pub qty: u32,
    }

    #[derive(Deserialize, JsonSchema)]
    pub enum Method {
        Cash,
        Card { last4: String },
    }

    #[derive(Deserialize, JsonSchema)]
    pub struct Ordered {
        pub lines: Vec<Line>,
        pub method: Method,
        pub note: Option<String>,
        #[serde(default)]
        pub rush: bool,
    }
}

#[allow(dead_code)]
mod compatible {
    use super::*;

    /// A line, documented now.
    #[derive(Deserialize, JsonSchema)]
    pub struct Line {
        pub sku: String,
        /// Widened.
        pub qty: u64,
        /// New, optional.
        pub discount: Option<u32>,
    }

    #[derive(Deserialize, JsonSchema)]
    pub enum Method {
        Cash,
        Card { last4: String },
        Wire { iban: String },
    }

    #[derive(Deserialize, JsonSchema)]
    pub struct Ordered {
        pub lines: Vec<Line>,
        pub method: Method,
        pub note: Option<String>,
        #[serde(default)]
        pub rush: bool,
        #[serde(default)]
        pub channel: String,
    }
}

#[allow(dead_code)]
mod breaking {
    use super::*;

    #[derive(Deserialize, JsonSchema)]
    pub struct Line {
        pub sku: String,
        pub qty: String,
    }

    #[derive(Deserialize, JsonSchema)]
    pub enum Method {
        Card { last4: u16 },
    }

    #[derive(Deserialize, JsonSchema)]
    pub struct Ordered {
        pub lines: Vec<Line>,
        pub method: Method,
        pub note: String,
        pub rush: bool,
        pub channel: String,
    }
}

#[test]
fn what_schemars_emits_for_options_defaults_and_nested_types() {
    let schema = &event::<before::Ordered>("Order", "Ordered").schema;
    let required: Vec<_> = schema["required"].as_array().unwrap().iter().collect();
    assert_eq!(
        required,
        ["lines", "method"],
        "Option and default fields are optional"
    );
    let line = &schema["$defs"]["Line"]["required"];
    assert_eq!(
        line,
        &serde_json::json!(["qty", "sku"]),
        "sorted by the lock"
    );
    assert_eq!(
        schema["properties"]["note"]["type"],
        serde_json::json!(["string", "null"])
    );
    assert_eq!(schema["properties"]["rush"]["default"], false);
    assert_eq!(
        schema["properties"]["lines"]["items"]["$ref"],
        "#/$defs/Line"
    );
    assert!(schema["$defs"]["Method"]["oneOf"].is_array());
}

#[test]
fn compatible_changes_pass() {
    let old = lock(vec![event::<before::Ordered>("Order", "Ordered")]);
    let new = lock(vec![
        event::<compatible::Ordered>("Order", "Ordered"),
        event::<breaking::Ordered>("Order", "Ordered_v2"),
        event::<before::Line>("Order", "LineAdded"),
    ]);
    assert_eq!(breaks(&old, &new), Vec::<String>::new());
}

#[test]
fn every_breaking_change_is_listed_with_its_path_and_fix() {
    let old = lock(vec![
        event::<before::Ordered>("Order", "Ordered"),
        event::<before::Line>("Order", "LineAdded"),
    ]);
    let new = lock(vec![event::<breaking::Ordered>("Order", "Ordered")]);
    assert_eq!(
        breaks(&old, &new),
        [
            "`Ordered` at /lines/*/qty: type changed from integer (uint32) to string; add `Ordered_v2` instead",
            "`Ordered` at /method: variant \"Cash\" removed; add `Ordered_v2` instead",
            "`Ordered` at /method/Card/last4: type changed from string to integer (uint16); add `Ordered_v2` instead",
            "`Ordered` at /note: type changed from string | null to string; add `Ordered_v2` instead",
            "`Ordered` at /channel: required field added; add `Ordered_v2` instead",
            "`Ordered` at /note: field made required; add `Ordered_v2` instead",
            "`Ordered` at /rush: field made required; add `Ordered_v2` instead",
            "`LineAdded`: event removed; keep it in `Order`'s events (a newer version makes it deprecated) so old streams still load",
        ]
    );
}

#[test]
fn a_removed_field_and_a_moved_event_are_breaking() {
    let old = lock(vec![event::<before::Line>("Order", "LineAdded")]);
    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Line {
        sku: String,
    }
    let new = lock(vec![event::<Line>("Cart", "LineAdded")]);
    assert_eq!(
        breaks(&old, &new),
        [
            "`LineAdded`: moved from state `Order` to `Cart`; keep it in `Order`'s events",
            "`LineAdded` at /qty: field removed; add `LineAdded_v2` instead",
        ]
    );
}

#[test]
fn the_fix_names_a_version_above_every_known_one() {
    let old = lock(vec![
        event::<before::Line>("Order", "LineAdded"),
        event::<before::Line>("Order", "LineAdded_v3"),
    ]);
    let mut new = old.clone();
    new.events[1].schema = event::<breaking::Line>("Order", "LineAdded_v3").schema;
    assert_eq!(
        breaks(&old, &new),
        [
            "`LineAdded_v3` at /qty: type changed from integer (uint32) to string; add `LineAdded_v4` instead"
        ]
    );
}

#[test]
fn versions_parse_from_names() {
    assert_eq!(version_of("Deposited"), ("Deposited", 1));
    assert_eq!(version_of("Deposited_v2"), ("Deposited", 2));
    assert_eq!(version_of("Deposited_v12"), ("Deposited", 12));
    assert_eq!(version_of("Moved_vertically"), ("Moved_vertically", 1));
    assert_eq!(version_of("_v2"), ("_v2", 1));
}

#[test]
fn the_json_is_sorted_stable_and_keeps_only_reachable_definitions() {
    // one generator for both, as `#[emits]` does: the second sees the first's `$defs` too
    let mut generator = SchemaGenerator::default();
    let _ = generator.root_schema_for::<before::Ordered>();
    let raw = generator.root_schema_for::<before::Line>();
    assert!(
        raw.as_value()["$defs"]["Method"].is_object(),
        "schemars leaks definitions"
    );
    let line = normalize(raw.as_value());
    assert!(line.get("$defs").is_none(), "{line}");

    let a = lock(vec![
        event::<before::Line>("Order", "LineAdded_v2"),
        event::<before::Ordered>("Order", "Ordered"),
    ]);
    let text = a.to_json();
    assert!(text.ends_with("}\n"));
    assert_eq!(SchemaLock::from_json(&text).unwrap(), a);
    assert_eq!(
        SchemaLock::from_json(&text).unwrap().to_json(),
        text,
        "stable"
    );
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let schema = &a.events[1].schema;
    let mut sorted_keys = keys(schema);
    sorted_keys.sort();
    assert_eq!(keys(schema), sorted_keys);
    let field = text.find("\"state\"").unwrap();
    assert!(
        field < text.find("\"name\"").unwrap(),
        "fields in declaration order"
    );
}

#[test]
fn a_lock_of_another_format_is_refused() {
    let err = SchemaLock::from_json(r#"{ "format": 2, "events": [] }"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema lock format 2 is not supported (expected 1)"
    );
    assert!(matches!(
        SchemaLock::from_json("[]").unwrap_err(),
        SchemaLockError::Parse { path: None, .. }
    ));
}

#[test]
fn verify_writes_checks_and_reports() {
    let dir = std::env::temp_dir().join(format!(
        "act-schema-lock-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("schema.lock.json");
    let _ = std::fs::remove_file(&path);
    let v1 = lock(vec![event::<before::Ordered>("Order", "Ordered")]);

    assert_eq!(
        SchemaLock::verify_with(&v1, &path, false).unwrap(),
        Verified::Written
    );
    assert_eq!(SchemaLock::read(&path).unwrap(), v1);
    assert_eq!(
        SchemaLock::verify_with(&v1, &path, false).unwrap(),
        Verified::Unchanged
    );

    let more = lock(vec![
        event::<before::Ordered>("Order", "Ordered"),
        event::<before::Line>("Order", "LineAdded"),
    ]);
    let err = SchemaLock::verify_with(&more, &path, false).unwrap_err();
    assert!(matches!(&err, SchemaLockError::Outdated { events, .. } if events == &["LineAdded"]));
    assert!(
        err.to_string()
            .contains("rerun with ACT_UPDATE_SCHEMA_LOCK=1"),
        "{err}"
    );

    let bad = lock(vec![event::<breaking::Ordered>("Order", "Ordered")]);
    let err = SchemaLock::verify_with(&bad, &path, false).unwrap_err();
    let text = err.to_string();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("schema lock `{}`: 7 breaking changes:", path.display())
    );
    assert_eq!(lines.len(), 8, "{text}");
    assert!(
        lines[1].starts_with("  - `Ordered` at /lines/*/qty"),
        "{text}"
    );
    assert_eq!(
        SchemaLock::read(&path).unwrap(),
        v1,
        "a failed check writes nothing"
    );

    assert_eq!(
        SchemaLock::verify_with(&bad, &path, true).unwrap(),
        Verified::Written
    );
    assert_eq!(
        SchemaLock::read(&path).unwrap(),
        bad,
        "an update rewrites the lock"
    );

    std::fs::write(&path, "not json").unwrap();
    let err = SchemaLock::read(&path).unwrap_err();
    assert!(matches!(&err, SchemaLockError::Parse { path: Some(p), .. } if p == &path));
    let err = SchemaLock::read(dir.join("missing.json")).unwrap_err();
    assert!(matches!(err, SchemaLockError::Io { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}
