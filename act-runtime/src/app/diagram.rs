//! The app's event flow as a Mermaid flowchart, generated from the registry.

use std::fmt::Write as _;

use super::Act;
use crate::reactions::Resolver;

/// A Mermaid node id: letters, digits and `_` only, prefixed by its kind; any other
/// character is spelt by its code.
fn id(kind: &str, name: &str) -> String {
    let mut out = String::with_capacity(kind.len() + name.len() + 1);
    out.push_str(kind);
    out.push('_');
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            let _ = write!(out, "_{:x}_", c as u32);
        }
    }
    out
}

/// A quoted Mermaid label.
fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Act {
    /// The app's event flow as a Mermaid flowchart, from the registry: each state with its
    /// actions and events; the event a passthrough action emits (a hand-written handler
    /// links its action to the state, since its events are its code's choice); each
    /// reaction from its event to its target — a fixed target, the event's own stream, a
    /// target resolved per event (dashed), or inline (`void`); each projection fed by its
    /// events. Deprecated event versions are marked.
    ///
    /// ```
    /// # use act_runtime::prelude::*;
    /// #[state(name = "Counter", actions(Increment))]
    /// #[derive(Debug, Clone, Default)]
    /// pub struct Counter { pub count: i64 }
    ///
    /// #[emits(Counter)]
    /// #[derive(Debug, Clone)]
    /// pub enum CounterEvent { Incremented { by: i64 } }
    ///
    /// impl Patch<CounterEvent> for Counter {
    ///     fn patch(&mut self, e: &CounterEvent) {
    ///         match e { CounterEvent::Incremented { by } => self.count += by }
    ///     }
    /// }
    ///
    /// #[action(Counter, emit = CounterEvent::Incremented)]
    /// pub struct Increment { pub by: i64 }
    ///
    /// let app = act().with_state::<Counter>().build()?;
    /// let chart = app.diagram();
    /// assert!(chart.starts_with("flowchart LR"));
    /// assert!(chart.contains(r#"action_Increment --> event_Incremented"#));
    /// # Ok::<(), act_runtime::error::BuildError>(())
    /// ```
    pub fn diagram(&self) -> String {
        let registry = &self.inner.registry;
        let reactions = &self.inner.reactions;
        let mut out = String::from("flowchart LR\n");
        let mut edges = String::new();
        for state in &registry.states {
            let _ = writeln!(
                out,
                "  subgraph {}[{}]",
                id("state", state.name),
                label(state.name)
            );
            for action in &state.actions {
                let _ = writeln!(
                    out,
                    "    {}[/{}/]",
                    id("action", action.name()),
                    label(action.name())
                );
                if action.emits().is_empty() {
                    let _ = writeln!(
                        edges,
                        "  {} --> {}",
                        id("action", action.name()),
                        id("state", state.name)
                    );
                }
                for event in action.emits() {
                    let _ = writeln!(
                        edges,
                        "  {} --> {}",
                        id("action", action.name()),
                        id("event", event)
                    );
                }
            }
            for event in state.event_names {
                let deprecated = state.deprecated.contains(event);
                let text = if deprecated {
                    format!("{event} (deprecated)")
                } else {
                    (*event).to_owned()
                };
                let _ = writeln!(out, "    {}({})", id("event", event), label(&text));
                if deprecated {
                    let _ = writeln!(out, "    class {} deprecated", id("event", event));
                }
            }
            out.push_str("  end\n");
        }
        let mut targets: Vec<String> = Vec::new();
        let mut target = |node: String, shape: String, out: &mut String| {
            if !targets.contains(&node) {
                let _ = writeln!(out, "  {node}{shape}");
                targets.push(node);
            }
        };
        for p in reactions.projections() {
            let node = id("projection", p.name());
            let text = if p.is_batch() {
                format!("{} (projection, batch)", p.name())
            } else {
                format!("{} (projection)", p.name())
            };
            target(node.clone(), format!("[({})]", label(&text)), &mut out);
            for event in p.events() {
                let _ = writeln!(edges, "  {} --> {node}", id("event", event));
            }
        }
        for r in reactions.iter() {
            if reactions.projection(r.name()).is_some()
                && r.resolver() == Resolver::Static(r.name())
            {
                continue; // drawn as its projection
            }
            let from = id("event", r.event());
            match r.resolver() {
                Resolver::Static(t) => {
                    let node = id("target", t);
                    target(node.clone(), format!("[[{}]]", label(t)), &mut out);
                    let _ = writeln!(edges, "  {from} -->|{}| {node}", label(r.name()));
                }
                Resolver::SameStream => {
                    let node = id("same", r.event());
                    target(
                        node.clone(),
                        format!("[[{}]]", label("the event's own stream")),
                        &mut out,
                    );
                    let _ = writeln!(edges, "  {from} -->|{}| {node}", label(r.name()));
                }
                Resolver::Dynamic => {
                    let node = id("dynamic", r.name());
                    target(
                        node.clone(),
                        format!(
                            "{{{{{}}}}}",
                            label(&format!("{}: resolved per event", r.name()))
                        ),
                        &mut out,
                    );
                    let _ = writeln!(edges, "  {from} -.->|{}| {node}", label(r.name()));
                }
                Resolver::Void => {
                    let node = id("void", r.name());
                    target(
                        node.clone(),
                        format!(">{}]", label(&format!("{} (inline)", r.name()))),
                        &mut out,
                    );
                    let _ = writeln!(edges, "  {from} --> {node}");
                }
            }
        }
        out.push_str(&edges);
        out.push_str("  classDef deprecated stroke-dasharray: 4 2,color:#888\n");
        out
    }
}
