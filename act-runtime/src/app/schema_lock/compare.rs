//! Whether the payloads one JSON Schema accepts are still read under another: the comparison
//! behind [`SchemaLock::check`](super::SchemaLock::check).
//!
//! The question asked of each locked event is "can the new code still read every payload
//! the old code wrote, without losing a field?". It is answered over the shapes schemars
//! produces, walking both schemas side by side with the path into the payload:
//!
//! * `$ref`s are resolved against the event's own `$defs` (recursive types stop at the
//!   first repeated pair of references);
//! * `oneOf` / `anyOf` are alternatives: every old alternative must live on in a new one
//!   (enum variants are matched by their tag, the others by trying each new alternative);
//! * `type`, `format` (integer widths), `enum` / `const`, `properties` / `required`,
//!   `items` / `prefixItems` and `additionalProperties` are compared;
//! * annotations (`title`, `description`, `default`, `examples`) are not: changing them
//!   breaks no reader.

use std::collections::HashSet;

use serde_json::Value;

use super::Change;

/// One finding: the payload path (a JSON pointer, `*` for any array element or map value)
/// and what changed there.
pub(crate) type Finding = (String, Change);

/// The breaking changes from `old` to `new`, two standalone event schemas.
pub(crate) fn compare(old: &Value, new: &Value) -> Vec<Finding> {
    let mut walk = Walk {
        old_root: old,
        new_root: new,
        seen: HashSet::new(),
        found: Vec::new(),
    };
    walk.node(old, new, "");
    walk.found
}

struct Walk<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    /// `$ref` pairs already being compared (a recursive type compares once).
    seen: HashSet<(String, String)>,
    found: Vec<Finding>,
}

impl<'a> Walk<'a> {
    fn node(&mut self, old: &'a Value, new: &'a Value, path: &str) {
        let (old_ref, new_ref) = (ref_of(old), ref_of(new));
        if old_ref.is_some() || new_ref.is_some() {
            let key = (
                old_ref.unwrap_or_default().to_owned(),
                new_ref.unwrap_or_default().to_owned(),
            );
            if !self.seen.insert(key) {
                return;
            }
        }
        let old = resolve(self.old_root, old);
        let new = resolve(self.new_root, new);
        if accepts_anything(new) {
            return;
        }
        if accepts_anything(old) {
            self.change(path, type_change(old, new));
            return;
        }
        if alternatives(old).is_some() || alternatives(new).is_some() {
            self.alternatives(old, new, path);
            return;
        }
        if let Some(change) = self.scalar(old, new) {
            self.change(path, change);
            return;
        }
        self.object(old, new, path);
        self.array(old, new, path);
    }

    fn change(&mut self, path: &str, change: Change) {
        self.found
            .push((if path.is_empty() { "/" } else { path }.to_owned(), change));
    }

    /// `type`, `format`, `enum` and `const`: the first mismatch, if any.
    fn scalar(&self, old: &Value, new: &Value) -> Option<Change> {
        if let Some(allowed) = values(new) {
            match values(old) {
                None => return Some(type_change(old, new)),
                Some(was) => {
                    if let Some(gone) = was.iter().find(|v| !allowed.contains(v)) {
                        return Some(Change::VariantRemoved {
                            variant: show_value(gone),
                        });
                    }
                }
            }
        }
        let now = types(new)?;
        let Some(was) = types(old) else {
            // old values were constrained by `enum`/`const` only: accepted if each fits
            return values(old)
                .is_some_and(|vs| vs.iter().any(|v| !now.contains(&json_type(v))))
                .then(|| type_change(old, new));
        };
        let widened = |t: &str| now.contains(&t) || (t == "integer" && now.contains(&"number"));
        if !was.iter().all(|t| widened(t)) {
            return Some(type_change(old, new));
        }
        if !formats_fit(old, new) {
            return Some(type_change(old, new));
        }
        None
    }

    fn object(&mut self, old: &'a Value, new: &'a Value, path: &str) {
        let old_props = old.get("properties").and_then(Value::as_object);
        let new_props = new.get("properties").and_then(Value::as_object);
        if old_props.is_some() || new_props.is_some() {
            let (old_req, new_req) = (required(old), required(new));
            // sorted, whatever the map's order, so findings come in one order
            let mut fields: Vec<_> = old_props.into_iter().flatten().collect();
            fields.sort_by_key(|(k, _)| *k);
            for (field, was) in fields {
                let at = format!("{path}/{}", escape(field));
                match new_props.and_then(|p| p.get(field)) {
                    None => self.change(&at, Change::FieldRemoved),
                    Some(now) => self.node(was, now, &at),
                }
            }
            for field in &new_req {
                if old_req.contains(field) {
                    continue;
                }
                let at = format!("{path}/{}", escape(field));
                if old_props.is_some_and(|p| p.contains_key(*field)) {
                    self.change(&at, Change::FieldMadeRequired);
                } else {
                    self.change(&at, Change::RequiredFieldAdded);
                }
            }
        }
        if let (Some(was), Some(now)) = (
            old.get("additionalProperties").filter(|v| v.is_object()),
            new.get("additionalProperties").filter(|v| v.is_object()),
        ) {
            self.node(was, now, &format!("{path}/*"));
        }
    }

    fn array(&mut self, old: &'a Value, new: &'a Value, path: &str) {
        if let (Some(was), Some(now)) = (old.get("items"), new.get("items")) {
            self.node(was, now, &format!("{path}/*"));
        }
        let tuple = |s: &'a Value| s.get("prefixItems").and_then(Value::as_array);
        if let (Some(was), Some(now)) = (tuple(old), tuple(new)) {
            if was.len() != now.len() {
                self.change(path, type_change(old, new));
                return;
            }
            for (i, (w, n)) in was.iter().zip(now).enumerate() {
                self.node(w, n, &format!("{path}/{i}"));
            }
        }
    }

    /// Every old alternative must be read by a new one.
    fn alternatives(&mut self, old: &'a Value, new: &'a Value, path: &str) {
        let olds = self.flatten(old, true);
        let news = self.flatten(new, false);
        for was in olds {
            // a unit variant (`{"enum": ["Cash", "Card"]}`) is one alternative per value
            if let (Some(vals), None) = (values(was), was.get("properties")) {
                for v in vals {
                    let read = news.iter().any(|now| match values(now) {
                        Some(allowed) => allowed.contains(&v),
                        None => types(now).is_none_or(|ts| ts.contains(&json_type(v))),
                    });
                    if !read {
                        self.change(
                            path,
                            Change::VariantRemoved {
                                variant: show_value(v),
                            },
                        );
                    }
                }
                continue;
            }
            if let Some((tag, external)) = tag_of(was) {
                match news
                    .iter()
                    .find(|now| tag_of(now).is_some_and(|(t, _)| t == tag))
                {
                    Some(now) if external => {
                        let at = format!("{path}/{}", escape(tag));
                        let (w, n) = (&was["properties"][tag], &now["properties"][tag]);
                        self.node(w, n, &at);
                    }
                    Some(now) => self.node(was, now, path),
                    None => self.change(
                        path,
                        Change::VariantRemoved {
                            variant: tag.to_owned(),
                        },
                    ),
                }
                continue;
            }
            // untagged: the new alternative that reads it with the fewest breaks
            let mut best: Option<Vec<Finding>> = None;
            for now in &news {
                let mut trial = Walk {
                    old_root: self.old_root,
                    new_root: self.new_root,
                    seen: self.seen.clone(),
                    found: Vec::new(),
                };
                trial.node(was, now, path);
                if best.as_ref().is_none_or(|b| trial.found.len() < b.len()) {
                    best = Some(trial.found);
                }
            }
            match best {
                Some(found) => self.found.extend(found),
                None => self.change(path, type_change(was, new)),
            }
        }
    }

    /// The alternatives of `schema` (itself if it has none), nested ones flattened and
    /// references resolved.
    fn flatten(&self, schema: &'a Value, old: bool) -> Vec<&'a Value> {
        let root = if old { self.old_root } else { self.new_root };
        let mut out = Vec::new();
        let mut stack = vec![resolve(root, schema)];
        while let Some(s) = stack.pop() {
            match alternatives(s) {
                Some(alts) => stack.extend(alts.iter().rev().map(|a| resolve(root, a))),
                None => out.push(s),
            }
            if out.len() > 256 {
                break;
            }
        }
        out
    }
}

fn ref_of(schema: &Value) -> Option<&str> {
    schema.get("$ref").and_then(Value::as_str)
}

/// Follows `$ref`s (`#/...` pointers into `root`); an unresolvable one stays as it is.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(target) = ref_of(schema)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| root.pointer(p))
        else {
            break;
        };
        schema = target;
    }
    schema
}

fn alternatives(schema: &Value) -> Option<&Vec<Value>> {
    schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
}

/// `true`, `{}` or a schema of annotations only.
fn accepts_anything(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(map) => map.keys().all(|k| {
            matches!(
                k.as_str(),
                "title" | "description" | "default" | "examples" | "$schema" | "$defs"
            )
        }),
        _ => false,
    }
}

fn types(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// The values an `enum` or `const` allows.
fn values(schema: &Value) -> Option<Vec<&Value>> {
    if let Some(c) = schema.get("const") {
        return Some(vec![c]);
    }
    schema
        .get("enum")
        .and_then(Value::as_array)
        .map(|vs| vs.iter().collect())
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The tag of an enum variant's alternative: `("Card", true)` for serde's external tagging
/// (`{"Card": {...}}`: one property, required), `("Card", false)` for an internal tag (a
/// property whose schema is a string `const`).
fn tag_of(schema: &Value) -> Option<(&str, bool)> {
    let props = schema.get("properties")?.as_object()?;
    let req = required(schema);
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    if closed && props.len() == 1 && req.len() == 1 && props.contains_key(req[0]) {
        return Some((req[0], true));
    }
    props
        .values()
        .find_map(|p| p.get("const").and_then(Value::as_str))
        .map(|t| (t, false))
}

/// Whether `new`'s `format` reads every value `old`'s allowed: integer widths may only
/// grow (`uint32` → `int64`), and a string format may be dropped but not added or changed.
fn formats_fit(old: &Value, new: &Value) -> bool {
    let format = |s: &Value| s.get("format").and_then(Value::as_str).map(str::to_owned);
    match (format(old), format(new)) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) if a == b => true,
        (Some(a), Some(b)) => match (int_range(&a), int_range(&b)) {
            (Some((lo_a, hi_a)), Some((lo_b, hi_b))) => lo_b <= lo_a && hi_a <= hi_b,
            // an integer read as a float (`integer` → `number`), or `float` → `double`
            (int, _) => matches!(
                (int.is_some(), a.as_str(), b.as_str()),
                (true, _, "float" | "double") | (_, "float", "double")
            ),
        },
    }
}

/// The range of a schemars integer format (`int8` … `uint128`).
fn int_range(format: &str) -> Option<(i128, u128)> {
    let (signed, bits) = match format.strip_prefix('u') {
        Some(rest) => (false, rest.strip_prefix("int")?),
        None => (true, format.strip_prefix("int")?),
    };
    let bits: u32 = bits.parse().ok().filter(|b| (8..=128).contains(b))?;
    Some(if signed {
        (i128::MIN >> (128 - bits), u128::MAX >> (129 - bits))
    } else {
        (0, u128::MAX >> (128 - bits))
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_change(old: &Value, new: &Value) -> Change {
    Change::TypeChanged {
        from: describe(old),
        to: describe(new),
    }
}

/// A short description of what a schema accepts: `integer (uint32)`, `string | null`,
/// `one of "Cash", "Card"`, `any`.
pub(crate) fn describe(schema: &Value) -> String {
    if accepts_anything(schema) {
        return "any".to_owned();
    }
    if let Some(vs) = values(schema) {
        let shown: Vec<_> = vs.iter().map(|v| show_value(v)).collect();
        return format!("one of {}", shown.join(", "));
    }
    if let Some(alts) = alternatives(schema) {
        return format!("{} alternatives", alts.len());
    }
    if let Some(r) = ref_of(schema) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    let mut out = types(schema).map_or_else(|| "any".to_owned(), |ts| ts.join(" | "));
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        out.push_str(&format!(" ({f})"));
    }
    if let Some(n) = schema.get("prefixItems").and_then(Value::as_array) {
        out.push_str(&format!(" of {}", n.len()));
    }
    out
}

fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// A JSON pointer token (RFC 6901): `~` → `~0`, `/` → `~1`.
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(old: Value, new: Value) -> Vec<(String, String)> {
        compare(&old, &new)
            .into_iter()
            .map(|(p, c)| (p, c.to_string()))
            .collect()
    }

    fn object(props: Value, required: &[&str]) -> Value {
        json!({ "type": "object", "properties": props, "required": required })
    }

    #[test]
    fn an_identical_schema_has_no_changes() {
        let s = object(
            json!({ "amount": { "type": "integer", "format": "uint64" } }),
            &["amount"],
        );
        assert_eq!(changes(s.clone(), s), []);
    }

    #[test]
    fn a_removed_field_and_a_changed_type_are_found_with_their_paths() {
        let old = object(
            json!({
                "amount": { "type": "integer", "format": "uint64", "minimum": 0 },
                "memo": { "type": "string" },
                "a/b": { "type": "string" }
            }),
            &["amount", "memo", "a/b"],
        );
        let new = object(
            json!({ "amount": { "type": "string" }, "a/b": { "type": "boolean" } }),
            &["amount", "a/b"],
        );
        assert_eq!(
            changes(old, new),
            [
                ("/a~1b".into(), "type changed from string to boolean".into()),
                (
                    "/amount".into(),
                    "type changed from integer (uint64) to string".into()
                ),
                ("/memo".into(), "field removed".into()),
            ]
        );
    }

    #[test]
    fn a_new_field_is_breaking_only_when_required() {
        let old = object(json!({ "a": { "type": "string" } }), &["a"]);
        let optional = object(
            json!({ "a": { "type": "string" }, "b": { "type": ["string", "null"] } }),
            &["a"],
        );
        assert_eq!(changes(old.clone(), optional), []);
        let required = object(
            json!({ "a": { "type": "string" }, "b": { "type": "string" } }),
            &["a", "b"],
        );
        assert_eq!(
            changes(old, required),
            [("/b".into(), "required field added".into())]
        );
    }

    #[test]
    fn an_optional_field_made_required_is_breaking_and_the_reverse_is_not() {
        let optional = object(json!({ "a": { "type": "string", "default": "" } }), &[]);
        let required = object(json!({ "a": { "type": "string" } }), &["a"]);
        assert_eq!(
            changes(optional.clone(), required.clone()),
            [("/a".into(), "field made required".into())]
        );
        assert_eq!(changes(required, optional), []);
    }

    #[test]
    fn nullability_and_integer_widths() {
        let t = |t: Value| object(json!({ "a": t }), &["a"]);
        // null no longer accepted
        assert_eq!(
            changes(
                t(json!({ "type": ["string", "null"] })),
                t(json!({ "type": "string" }))
            ),
            [(
                "/a".into(),
                "type changed from string | null to string".into()
            )]
        );
        assert_eq!(
            changes(
                t(json!({ "type": "string" })),
                t(json!({ "type": ["string", "null"] }))
            ),
            []
        );
        let int = |f: &str| t(json!({ "type": "integer", "format": f }));
        assert_eq!(changes(int("uint32"), int("int64")), []);
        assert_eq!(changes(int("int32"), int("uint64")).len(), 1);
        assert_eq!(changes(int("uint64"), int("uint32")).len(), 1);
        assert_eq!(
            changes(
                int("int8"),
                t(json!({ "type": "number", "format": "double" }))
            ),
            [],
            "integer → number widens"
        );
        // a format added to a plain string narrows it
        assert_eq!(
            changes(
                t(json!({ "type": "string" })),
                t(json!({ "type": "string", "format": "date-time" }))
            ),
            [(
                "/a".into(),
                "type changed from string to string (date-time)".into()
            )]
        );
        assert_eq!(
            changes(
                t(json!({ "type": "string", "format": "uuid" })),
                t(json!({ "type": "string" }))
            ),
            []
        );
    }

    #[test]
    fn references_are_resolved_in_each_schema_and_descriptions_ignored() {
        let old = json!({
            "type": "object",
            "properties": { "line": { "$ref": "#/$defs/Line" } },
            "required": ["line"],
            "$defs": { "Line": object(json!({ "qty": { "type": "integer", "format": "uint32" } }), &["qty"]) }
        });
        let mut renamed = old.clone();
        renamed["properties"]["line"]["$ref"] = json!("#/$defs/Item");
        renamed["$defs"] = json!({ "Item": old["$defs"]["Line"].clone() });
        renamed["$defs"]["Item"]["description"] = json!("A line of the order.");
        assert_eq!(
            changes(old.clone(), renamed),
            [],
            "the name of a definition is no change"
        );
        let mut new = old.clone();
        new["$defs"]["Line"]["properties"]["qty"] = json!({ "type": "string" });
        assert_eq!(
            changes(old, new),
            [(
                "/line/qty".into(),
                "type changed from integer (uint32) to string".into()
            )]
        );
    }

    #[test]
    fn arrays_maps_and_tuples_compare_their_elements() {
        let old = object(
            json!({
                "lines": { "type": "array", "items": { "type": "integer", "format": "uint32" } },
                "tags": { "type": "object", "additionalProperties": { "type": "string" } },
                "pair": { "type": "array", "prefixItems": [{ "type": "string" }, { "type": "integer" }] }
            }),
            &["lines", "tags", "pair"],
        );
        let new = object(
            json!({
                "lines": { "type": "array", "items": { "type": "string" } },
                "tags": { "type": "object", "additionalProperties": { "type": "integer" } },
                "pair": { "type": "array", "prefixItems": [{ "type": "string" }, { "type": "boolean" }] }
            }),
            &["lines", "tags", "pair"],
        );
        let paths: Vec<_> = changes(old, new).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["/lines/*", "/pair/1", "/tags/*"]);
    }

    #[test]
    fn enum_variants_may_be_added_not_removed() {
        let unit = |vs: &[&str]| object(json!({ "m": { "type": "string", "enum": vs } }), &["m"]);
        assert_eq!(
            changes(unit(&["Cash", "Card"]), unit(&["Cash", "Card", "Wire"])),
            []
        );
        assert_eq!(
            changes(unit(&["Cash", "Card"]), unit(&["Cash"])),
            [("/m".into(), "variant \"Card\" removed".into())]
        );
        // externally tagged variants with data: `oneOf`, matched by tag, compared inside
        let card = |last4: Value| {
            json!({ "type": "object", "properties": { "Card": object(json!({ "last4": last4 }), &["last4"]) },
                    "required": ["Card"], "additionalProperties": false })
        };
        let cash = json!({ "type": "string", "const": "Cash" });
        let old = object(
            json!({ "m": { "oneOf": [cash.clone(), card(json!({ "type": "string" }))] } }),
            &["m"],
        );
        let new = object(
            json!({ "m": { "oneOf": [card(json!({ "type": "integer" }))] } }),
            &["m"],
        );
        assert_eq!(
            changes(old, new),
            [
                ("/m".into(), "variant \"Cash\" removed".into()),
                (
                    "/m/Card/last4".into(),
                    "type changed from string to integer".into()
                ),
            ]
        );
    }

    #[test]
    fn an_optional_struct_is_an_alternative_with_null() {
        let line = object(json!({ "qty": { "type": "integer" } }), &["qty"]);
        let opt = json!({
            "type": "object",
            "properties": { "line": { "anyOf": [{ "$ref": "#/$defs/Line" }, { "type": "null" }] } },
            "$defs": { "Line": line.clone() }
        });
        let plain = json!({
            "type": "object",
            "properties": { "line": { "$ref": "#/$defs/Line" } },
            "required": ["line"],
            "$defs": { "Line": line }
        });
        assert_eq!(changes(plain.clone(), opt.clone()), [], "made optional");
        assert_eq!(
            changes(opt, plain),
            [
                ("/line".into(), "type changed from null to object".into()),
                ("/line".into(), "field made required".into()),
            ]
        );
    }

    #[test]
    fn a_recursive_type_compares_once() {
        let tree = json!({
            "$ref": "#/$defs/Node",
            "$defs": { "Node": object(json!({ "kids": { "type": "array", "items": { "$ref": "#/$defs/Node" } } }), &["kids"]) }
        });
        assert_eq!(changes(tree.clone(), tree), []);
    }

    #[test]
    fn a_field_of_any_value_reads_everything() {
        let t = |t: Value| object(json!({ "a": t }), &["a"]);
        assert_eq!(changes(t(json!({ "type": "string" })), t(json!(true))), []);
        assert_eq!(
            changes(t(json!(true)), t(json!({ "type": "string" }))).len(),
            1
        );
    }
}
