//! Correlation ids: one per request, inherited by every event its reactions commit.

use std::sync::Arc;

/// What a correlator sees when it makes an id.
#[derive(Debug, Clone, Copy)]
pub struct CorrelationContext<'a> {
    /// The action's name.
    pub action: &'a str,
    /// The state's name.
    pub state: &'a str,
    /// The target stream.
    pub stream: &'a str,
    /// The actor's id.
    pub actor: &'a str,
}

type CorrelatorFn = dyn Fn(&CorrelationContext<'_>) -> String + Send + Sync;

/// Makes correlation ids. The default makes readable ids that are unique across a fleet:
/// `{state[..4]}-{action[..4]}-{UUID v7}`, lowercase.
#[derive(Clone, Default)]
pub struct Correlator(Option<Arc<CorrelatorFn>>);

impl std::fmt::Debug for Correlator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Correlator(custom)"
        } else {
            "Correlator(default)"
        })
    }
}

impl Correlator {
    /// A correlator from a function.
    pub fn custom(f: impl Fn(&CorrelationContext<'_>) -> String + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    /// A new correlation id.
    pub fn make(&self, ctx: &CorrelationContext<'_>) -> String {
        match &self.0 {
            Some(f) => f(ctx),
            None => default_id(ctx),
        }
    }
}

/// `{state[..4]}-{action[..4]}-{UUID v7}`: unique across every process sharing a store,
/// and ordered by creation time to the millisecond.
fn default_id(ctx: &CorrelationContext<'_>) -> String {
    let mut id = String::with_capacity(42);
    push_prefix(&mut id, ctx.state);
    id.push('-');
    push_prefix(&mut id, ctx.action);
    id.push('-');
    let mut buf = uuid::Uuid::encode_buffer();
    id.push_str(super::ids::uuid_v7().simple().encode_lower(&mut buf));
    id
}

fn push_prefix(out: &mut String, s: &str) {
    // Bytes, not chars: the bytes of a multi-byte character are never ASCII alphanumeric.
    out.extend(
        s.bytes()
            .filter(u8::is_ascii_alphanumeric)
            .take(4)
            .map(|b| char::from(b.to_ascii_lowercase())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CorrelationContext<'static> {
        CorrelationContext {
            action: "AddItem",
            state: "Cart",
            stream: "cart-1",
            actor: "u1",
        }
    }

    #[test]
    fn default_ids_are_unique_and_readable() {
        let c = Correlator::default();
        let a = c.make(&ctx());
        let b = c.make(&ctx());
        assert_ne!(a, b);
        assert!(a.starts_with("cart-addi-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[test]
    fn custom_correlator_is_used() {
        let c = Correlator::custom(|ctx| format!("req-{}", ctx.stream));
        assert_eq!(c.make(&ctx()), "req-cart-1");
    }
}
