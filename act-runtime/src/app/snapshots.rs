//! The stored form of a snapshot: the state's JSON tagged with a fingerprint of the state's
//! schema, so a snapshot taken before the state's shape changed is recognised and skipped
//! (the state is then replayed from the events) instead of failing every load.
//!
//! A `__snapshot__` event's data is `{"schema": "<16 hex digits>", "state": <the state>}`.
//! The fingerprint is a 64-bit FNV-1a hash of the state's JSON schema (schemars) as JSON
//! text: any change to the state's fields, their types or their serde names changes it.
//! Snapshots from before fingerprints (the bare state) are read if they still decode.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::model::State;

/// What a snapshot's data holds.
pub(crate) enum Stored<S> {
    /// The state, of this state type's current shape.
    Current(S),
    /// A snapshot of another shape (or one that does not decode): skip it and replay.
    Stale(String),
}

#[derive(Deserialize)]
struct Tagged<'a> {
    schema: String,
    #[serde(borrow)]
    state: &'a RawValue,
}

/// The fingerprint of `S`'s schema, computed once per type and process.
pub(crate) fn fingerprint<S: State>() -> String {
    static CACHE: OnceLock<RwLock<HashMap<TypeId, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = TypeId::of::<S>();
    if let Some(f) = cache.read().ok().and_then(|c| c.get(&key).cloned()) {
        return f;
    }
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<S>();
    let text = serde_json::to_string(&schema).unwrap_or_default();
    let f = format!("{:016x}", fnv1a(text.as_bytes()));
    if let Ok(mut c) = cache.write() {
        c.insert(key, f.clone());
    }
    f
}

/// 64-bit FNV-1a: stable across builds and platforms (unlike std's `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The data of a snapshot of `state`.
pub(crate) fn encode<S: State>(state: &S) -> Result<Box<RawValue>, serde_json::Error> {
    let value = serde_json::json!({ "schema": fingerprint::<S>(), "state": state });
    serde_json::value::to_raw_value(&value)
}

/// Reads a snapshot's data as a state of type `S`.
pub(crate) fn decode<S: State>(data: &RawValue) -> Stored<S> {
    match serde_json::from_str::<Tagged<'_>>(data.get()) {
        Ok(tagged) if tagged.schema != fingerprint::<S>() => Stored::Stale(format!(
            "taken for schema {}, the state's schema is now {}",
            tagged.schema,
            fingerprint::<S>()
        )),
        Ok(tagged) => match serde_json::from_str(tagged.state.get()) {
            Ok(state) => Stored::Current(state),
            Err(e) => Stored::Stale(format!("does not decode: {e}")),
        },
        // Untagged: a snapshot from before fingerprints, read if it still decodes.
        Err(_) => match serde_json::from_str(data.get()) {
            Ok(state) => Stored::Current(state),
            Err(e) => Stored::Stale(format!("does not decode: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::Serialize;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    struct V1 {
        count: i64,
    }
    impl State for V1 {
        const NAME: &'static str = "V";
        fn init() -> Self {
            Self::default()
        }
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    struct V2 {
        count: i64,
        #[serde(default)]
        label: String,
    }
    impl State for V2 {
        const NAME: &'static str = "V";
        fn init() -> Self {
            Self::default()
        }
    }

    #[test]
    fn a_snapshot_reads_back_only_under_the_schema_it_was_taken_for() {
        let data = encode(&V1 { count: 3 }).unwrap();
        assert!(matches!(
            decode::<V1>(&data),
            Stored::Current(V1 { count: 3 })
        ));
        // V2 could even decode V1's JSON (a defaulted field): the fingerprint still says
        // the shape changed.
        assert!(matches!(decode::<V2>(&data), Stored::Stale(_)));
        assert_ne!(fingerprint::<V1>(), fingerprint::<V2>());
        assert_eq!(fingerprint::<V1>(), fingerprint::<V1>());
    }

    #[test]
    fn an_untagged_snapshot_is_read_if_it_decodes() {
        let old = serde_json::value::to_raw_value(&serde_json::json!({ "count": 5 })).unwrap();
        assert!(matches!(
            decode::<V1>(&old),
            Stored::Current(V1 { count: 5 })
        ));
        let other = serde_json::value::to_raw_value(&serde_json::json!([1, 2])).unwrap();
        assert!(matches!(decode::<V1>(&other), Stored::Stale(_)));
    }
}
