// A reaction's handler may take the fields of its event's variant, each borrowed and named
// after its field (`_0` for a tuple variant's payload), before the optional committed event
// and the scope; checked by running the reactions.
use std::sync::Mutex;

use act_runtime::prelude::*;

#[state(actions(Deposit, Tag, Note, Close))]
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub balance: u64,
}

#[emits(Account)]
#[derive(Debug, Clone)]
pub enum AccountEvent {
    Deposited { amount: u64, by: String },
    Tagged { scope: String, event: String },
    Noted(String),
    Closed,
}

impl Patch<AccountEvent> for Account {
    fn patch(&mut self, event: &AccountEvent) {
        if let AccountEvent::Deposited { amount, .. } = event {
            self.balance += amount;
        }
    }
}

#[action(Account, emit = AccountEvent::Deposited)]
pub struct Deposit {
    pub amount: u64,
    pub by: String,
}

#[action(Account, emit = AccountEvent::Tagged)]
pub struct Tag {
    pub scope: String,
    pub event: String,
}

#[action(Account)]
pub struct Note {
    pub text: String,
}

impl Handle for Note {
    fn handle(&self, _: &Account, _: &Target) -> Emit<AccountEvent> {
        Ok(vec![AccountEvent::Noted(self.text.clone())])
    }
}

#[action(Account)]
pub struct Close;

impl Handle for Close {
    fn handle(&self, _: &Account, _: &Target) -> Emit<AccountEvent> {
        Ok(vec![AccountEvent::Closed])
    }
}

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn seen(line: String) {
    SEEN.lock().unwrap().push(line);
}

// Fields of a struct variant, by name, in any order; a deref coercion applies (`&str` for a
// `String` field).
#[reaction(on = AccountEvent::Deposited, to = "audit")]
async fn deposited(by: &str, amount: &u64, _: &Scope) -> Result<(), ReactionError> {
    seen(format!("deposited {amount} by {by}"));
    Ok(())
}

// Fields, then the committed event, then the scope; `mut` bindings are fine.
#[reaction(on = AccountEvent::Deposited, to = "audit", retries = 1)]
async fn deposited_on(mut amount: &u64, e: &Committed<AccountEvent>, app: &Scope) -> Result<(), ReactionError> {
    let _ = app;
    let doubled = amount * 2;
    amount = &doubled;
    seen(format!("deposited on {}#{} (x2: {amount})", e.stream, e.version));
    Ok(())
}

// Fields named like the generated code's own parameters (`event`, `scope`) are the user's.
#[reaction(on = AccountEvent::Tagged, to = "audit")]
async fn tagged(scope: &String, event: &str, _: &Scope) -> Result<(), ReactionError> {
    seen(format!("tagged {scope}/{event}"));
    Ok(())
}

// A tuple variant's payload is `_0`.
#[reaction(on = AccountEvent::Noted, to = "audit")]
async fn noted(_0: &String, _: &Scope) -> Result<(), ReactionError> {
    seen(format!("noted {_0}"));
    Ok(())
}

// A unit variant has no field: the handler may take the scope only.
#[reaction(on = AccountEvent::Closed, to = "audit")]
async fn closed(_: &Scope) -> Result<(), ReactionError> {
    seen("closed".to_owned());
    Ok(())
}

// The committed event and the scope, as before.
#[reaction(on = AccountEvent::Closed, to = "audit")]
async fn closed_on(e: &Committed<AccountEvent>, _: &Scope) -> Result<(), ReactionError> {
    seen(format!("closed on {}", e.stream));
    Ok(())
}

#[tokio::main]
async fn main() {
    let app = act()
        .with_state::<Account>()
        .with_reaction(deposited)
        .with_reaction(deposited_on)
        .with_reaction(tagged)
        .with_reaction(noted)
        .with_reaction(closed)
        .with_reaction(closed_on)
        .build()
        .unwrap();
    let target = || Target::new("acct-1", Actor::new("u-1", "ada"));
    app.execute(Deposit { amount: 5, by: "ada".into() }, target()).await.unwrap();
    app.execute(Tag { scope: "vip".into(), event: "gala".into() }, target()).await.unwrap();
    app.execute(Note { text: "hello".into() }, target()).await.unwrap();
    app.execute(Close, target()).await.unwrap();
    app.settle_now(SettleOptions::default()).await.unwrap();

    let mut lines = SEEN.lock().unwrap().clone();
    lines.sort();
    assert_eq!(
        lines,
        [
            "closed",
            "closed on acct-1",
            "deposited 5 by ada",
            "deposited on acct-1#0 (x2: 10)",
            "noted hello",
            "tagged vip/gala",
        ]
    );
}
