// Every resolver form and every option of `#[reaction]`, checked through the generated
// `Reaction` consts and `Reaction::resolve`.
use std::sync::Arc;
use std::time::Duration;

use act_runtime::model::{Actor, Causation, EventMeta};
use act_runtime::prelude::*;
use act_runtime::reactions::{Backoff, BackoffStrategy, ReactionOptions, Resolver};

#[state]
#[derive(Debug, Clone, Default)]
pub struct Counter {
    pub count: i64,
}

#[emits(Counter, passthrough)]
#[derive(Debug, Clone)]
pub enum CounterEvent {
    Incremented { count: i64 },
}

#[reaction(on = CounterEvent::Incremented, to = "ledger")]
async fn to_ledger(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = _this_)]
async fn same_stream(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, void)]
async fn inline(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

fn audit_stream(e: &Committed<CounterEvent>) -> Option<Resolved> {
    (!e.stream.starts_with("quiet"))
        .then(|| Resolved::to(format!("audit-{}", e.stream)).from_stream(&e.stream))
}

/// A dynamic resolver given as a function.
#[reaction(on = CounterEvent::Incremented, to = audit_stream)]
pub async fn by_function(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

// A dynamic resolver given as a closure: its parameter's type is inferred.
#[reaction(on = CounterEvent::Incremented, to = |e| format!("mirror-{}", e.stream))]
async fn by_closure(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

// A closure may skip an event.
#[reaction(
    on = CounterEvent::Incremented,
    to = |e| (e.version > 0).then(|| Resolved::to("later").priority(2))
)]
async fn skipping(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

// Every option, with a renamed reaction and the runtime named explicitly.
#[reaction(
    on = CounterEvent::Incremented,
    to = "tuned",
    name = "tuned_reaction",
    retries = 7,
    block_on_error = false,
    backoff(exponential, base_ms = 50, max_ms = 2000u64, jitter),
    timeout_ms = 2500,
    crate = ::act_runtime
)]
pub(crate) async fn r#tuned(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "fixed", backoff(strategy = "fixed", base_ms = 20))]
async fn fixed(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

#[reaction(on = CounterEvent::Incremented, to = "linear", retries = 0, backoff(linear))]
async fn linear(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

// One option alone: the others keep their defaults.
#[reaction(on = CounterEvent::Incremented, to = "slow", timeout_ms = 60_000)]
async fn slow(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
    Ok(())
}

mod nested {
    use super::*;

    // A reaction of the same name in another module is another reaction.
    #[reaction(on = CounterEvent::Incremented, to = "ledger")]
    pub async fn to_ledger(_: &Committed<CounterEvent>, _: &Scope) -> Result<(), ReactionError> {
        Ok(())
    }
}

fn committed(stream: &str, version: i64) -> Committed<CounterEvent> {
    Committed {
        id: 1,
        name: "Incremented".into(),
        data: CounterEvent::Incremented { count: 1 },
        stream: stream.into(),
        version,
        created: Default::default(),
        meta: Arc::new(EventMeta {
            correlation: "c-1".into(),
            causation: Causation::default(),
            actor: Actor::new("u-1", "tester"),
        }),
    }
}

fn consts<R: Reaction>(_: R) -> (&'static str, &'static str, Resolver, ReactionOptions) {
    (R::NAME, R::EVENT, R::RESOLVER, R::OPTIONS)
}

fn main() {
    let e = committed("counter-1", 1);

    assert_eq!(
        consts(to_ledger),
        ("to_ledger", "Incremented", Resolver::Static("ledger"), ReactionOptions::DEFAULT)
    );
    assert_eq!(<to_ledger as Reaction>::resolve(&e), Some(Resolved::to("ledger")));

    assert_eq!(consts(same_stream).2, Resolver::SameStream);
    assert_eq!(
        <same_stream as Reaction>::resolve(&e),
        Some(Resolved::to("counter-1").from_stream("counter-1"))
    );

    assert_eq!(consts(inline).2, Resolver::Void);
    assert_eq!(<inline as Reaction>::resolve(&e), None);

    assert_eq!(consts(by_function).2, Resolver::Dynamic);
    assert!(!Resolver::Dynamic.is_static());
    assert_eq!(
        <by_function as Reaction>::resolve(&e),
        Some(Resolved::to("audit-counter-1").from_stream("counter-1"))
    );
    assert_eq!(<by_function as Reaction>::resolve(&committed("quiet-1", 0)), None);

    assert_eq!(consts(by_closure).2, Resolver::Dynamic);
    assert_eq!(
        <by_closure as Reaction>::resolve(&e),
        Some(Resolved::to("mirror-counter-1"))
    );

    assert_eq!(
        <skipping as Reaction>::resolve(&e),
        Some(Resolved::to("later").priority(2))
    );
    assert_eq!(<skipping as Reaction>::resolve(&committed("counter-1", 0)), None);

    assert_eq!(
        consts(tuned),
        (
            "tuned_reaction",
            "Incremented",
            Resolver::Static("tuned"),
            ReactionOptions {
                max_retries: 7,
                block_on_error: false,
                backoff: Some(Backoff {
                    strategy: BackoffStrategy::Exponential,
                    base_ms: 50,
                    max_ms: Some(2000),
                    jitter: true,
                }),
                timeout: Duration::from_millis(2500),
            }
        )
    );
    assert_eq!(
        consts(fixed).3,
        ReactionOptions {
            backoff: Some(Backoff {
                strategy: BackoffStrategy::Fixed,
                base_ms: 20,
                max_ms: None,
                jitter: false,
            }),
            ..ReactionOptions::DEFAULT
        }
    );
    assert_eq!(
        consts(linear).3,
        ReactionOptions {
            max_retries: 0,
            backoff: Some(Backoff {
                strategy: BackoffStrategy::Linear,
                base_ms: 100,
                max_ms: None,
                jitter: false,
            }),
            ..ReactionOptions::DEFAULT
        }
    );
    assert_eq!(
        consts(slow).3,
        ReactionOptions { timeout: Duration::from_secs(60), ..ReactionOptions::DEFAULT }
    );
    assert_eq!(consts(nested::to_ledger).0, "to_ledger");

    // Every form registers.
    let app = act()
        .with_state::<Counter>()
        .with_reaction(to_ledger)
        .with_reaction(same_stream)
        .with_reaction(inline)
        .with_reaction(by_function)
        .with_reaction(by_closure)
        .with_reaction(skipping)
        .with_reaction(tuned)
        .with_reaction(fixed)
        .with_reaction(linear)
        .with_reaction(slow)
        .build();
    assert!(app.is_ok());
}
