//! An entry's two hash fields: `e`, its event id in decimal, and `v`, the JSON of
//! `{state, version, patches, snaps}` with the state embedded as raw JSON.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::model::{EventId, Version};
use crate::ports::{CacheEntry, CachedState};

#[derive(Serialize)]
struct Out<'a> {
    state: &'a RawValue,
    version: Version,
    patches: u32,
    snaps: u32,
}

#[derive(Deserialize)]
struct In {
    state: Box<RawValue>,
    version: Version,
    patches: u32,
    snaps: u32,
}

/// The `v` field of `entry` (its state serialized, when typed).
pub(super) fn encode(entry: &CacheEntry) -> Result<String, serde_json::Error> {
    let state = RawValue::from_string(entry.state.to_json()?)?;
    serde_json::to_string(&Out {
        state: &state,
        version: entry.version,
        patches: entry.patches,
        snaps: entry.snaps,
    })
}

/// The entry of fields `e` and `v`, or why they do not make one.
pub(super) fn decode(e: &str, v: &str) -> Result<CacheEntry, String> {
    let event_id: EventId = e.parse().map_err(|err| format!("event id {e:?}: {err}"))?;
    let v: In = serde_json::from_str(v).map_err(|err| format!("entry: {err}"))?;
    Ok(CacheEntry {
        state: CachedState::json(v.state.get()),
        version: v.version,
        event_id,
        patches: v.patches,
        snaps: v.snaps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let entry = CacheEntry {
            state: CachedState::json(r#"{"a":[1,"ü"]}"#),
            version: 4,
            event_id: 41,
            patches: 2,
            snaps: 1,
        };
        let v = encode(&entry).unwrap();
        assert_eq!(
            v,
            r#"{"state":{"a":[1,"ü"]},"version":4,"patches":2,"snaps":1}"#
        );
        let back = decode("41", &v).unwrap();
        assert_eq!(back.state.to_json().unwrap(), r#"{"a":[1,"ü"]}"#);
        assert_eq!(
            (back.version, back.event_id, back.patches, back.snaps),
            (4, 41, 2, 1)
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode("x", r#"{"state":1,"version":0,"patches":0,"snaps":0}"#).is_err());
        assert!(decode("1", "{").is_err());
        assert!(decode("1", r#"{"state":1}"#).is_err());
        let bad = CacheEntry {
            state: CachedState::json("{not json"),
            version: 0,
            event_id: 0,
            patches: 0,
            snaps: 0,
        };
        assert!(encode(&bad).is_err());
    }
}
