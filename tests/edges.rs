//! Edges of the core: what a store accepts must load back (JSON nesting depth), the size
//! limit covers the whole stored event (name + data + meta), and a result after a commit
//! always says it committed.

use std::collections::HashMap;

use act_runtime::adapters::SqliteStore;
use act_runtime::prelude::*;
use act_tests::actor;
use serde_json::{Value, json};

mod doc {
    //! A state whose events carry free-form JSON.

    use act_runtime::prelude::*;
    use serde_json::Value;

    /// A document store: keeps the last body.
    #[state(name = "Doc", actions(Put))]
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Doc {
        /// The last body put.
        pub last: Option<Value>,
        /// How many bodies were put.
        pub puts: u32,
    }

    /// The document's events.
    #[emits(Doc)]
    #[derive(Debug, Clone, PartialEq)]
    pub enum DocEvent {
        /// A body was put.
        BodyPut {
            /// The body.
            body: Value,
        },
    }

    impl Patch<DocEvent> for Doc {
        fn patch(&mut self, event: &DocEvent) {
            match event {
                DocEvent::BodyPut { body } => {
                    self.last = Some(body.clone());
                    self.puts += 1;
                }
            }
        }
    }

    /// Puts a body.
    #[action(Doc, emit = DocEvent::BodyPut)]
    pub struct Put {
        /// The body.
        pub body: Value,
    }
}

mod grid {
    //! A state that cannot be rendered as JSON: a map keyed by tuples.

    use std::collections::HashMap;

    use act_runtime::prelude::*;

    /// Marks on a grid.
    #[state(name = "Grid", actions(Mark))]
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Grid {
        /// How many times each cell was marked.
        pub cells: HashMap<(i32, i32), u32>,
    }

    /// The grid's events.
    #[emits(Grid)]
    #[derive(Debug, Clone, PartialEq)]
    pub enum GridEvent {
        /// A cell was marked.
        Marked {
            /// Column.
            x: i32,
            /// Row.
            y: i32,
        },
    }

    impl Patch<GridEvent> for Grid {
        fn patch(&mut self, event: &GridEvent) {
            match event {
                GridEvent::Marked { x, y } => *self.cells.entry((*x, *y)).or_default() += 1,
            }
        }
    }

    /// Marks a cell.
    #[action(Grid, emit = GridEvent::Marked)]
    pub struct Mark {
        /// Column.
        pub x: i32,
        /// Row.
        pub y: i32,
    }
}

use doc::{Doc, Put};
use grid::{Grid, Mark};

async fn doc_app(sqlite: bool) -> Act {
    let b = act().with_state::<Doc>();
    let b = if sqlite {
        b.with_store(SqliteStore::open_in_memory().await.expect("sqlite"))
    } else {
        b
    };
    b.build().unwrap()
}

/// `levels` nested arrays around `0`.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(0), |v, _| Value::Array(vec![v]))
}

async fn events(app: &Act) -> usize {
    app.query(&Query::all().with_snaps()).await.unwrap().len()
}

// ---- 5. nesting depth ------------------------------------------------------------------

/// The stored payload is `{"body": <value>}`: one level more than the body.
async fn too_deep_is_refused_and_the_limit_loads_back(sqlite: bool) {
    let max = act_runtime::model::MAX_EVENT_DEPTH;
    let app = doc_app(sqlite).await;
    let t = || Target::new("doc-1", actor());

    // over the limit: 127 levels (what serde_json still writes but cannot read back) and
    // one past the limit, typed and by JSON
    for levels in [127, max] {
        let err = app
            .execute(
                Put {
                    body: nested(levels),
                },
                t(),
            )
            .await
            .expect_err("too deep must be refused");
        match &err {
            ActError::Validation(v) => {
                assert_eq!(v.target, "BodyPut", "{v}");
                let path = v.paths().next().unwrap();
                assert!(path.starts_with("/body/0/0"), "{path}");
                assert_eq!(path.matches('/').count(), max, "{path}");
                assert!(v.to_string().contains(&format!("at most {max}")), "{v}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = app
            .execute_json("Put", t(), json!({ "body": nested(levels) }))
            .await
            .expect_err("too deep must be refused");
        assert!(matches!(err, ActError::Validation(_)), "{err}");
    }
    assert_eq!(events(&app).await, 0, "nothing committed");

    // at the limit: commits and loads back, warm and cold
    let body = nested(max - 1);
    app.execute(Put { body: body.clone() }, t()).await.unwrap();
    let out = app
        .execute_json("Put", t(), json!({ "body": body.clone() }))
        .await
        .unwrap();
    assert_eq!(out.version, 1);
    assert_eq!(events(&app).await, 2);
    app.cache().clear().await.unwrap();
    let cold = app.load::<Doc>("doc-1").await.unwrap();
    assert!(!cold.cache_hit);
    assert_eq!(
        (cold.state.puts, cold.state.last.as_ref()),
        (2, Some(&body))
    );
    assert_eq!(app.load_json("Doc", "doc-1").await.unwrap()["puts"], 2);
    let stored = app.query(&Query::stream("doc-1")).await.unwrap();
    assert_eq!(
        stored[0].data_as::<Value>().unwrap(),
        json!({ "body": body })
    );
}

#[tokio::test]
async fn too_deep_an_event_is_refused_and_one_at_the_limit_loads_back_in_memory() {
    too_deep_is_refused_and_the_limit_loads_back(false).await
}

#[tokio::test]
async fn too_deep_an_event_is_refused_and_one_at_the_limit_loads_back_on_sqlite() {
    too_deep_is_refused_and_the_limit_loads_back(true).await
}

#[tokio::test]
async fn the_depth_pointer_names_object_keys_escaped() {
    let max = act_runtime::model::MAX_EVENT_DEPTH;
    let app = doc_app(false).await;
    // {"body": {"a/b": {"~": [[...]]}}}
    let body = json!({ "x": 1, "a/b": { "~": nested(max) } });
    let err = app
        .execute(Put { body }, Target::new("doc-2", actor()))
        .await
        .unwrap_err();
    let ActError::Validation(v) = &err else {
        panic!("unexpected {err:?}")
    };
    let path = v.paths().next().unwrap();
    assert!(path.starts_with("/body/a~1b/~0/0/0"), "{path}");
    assert_eq!(events(&app).await, 0);
}

// ---- 6. the size limit covers name + data + meta ---------------------------------------

fn assert_too_large(err: &ActError, limit: usize) {
    match err {
        ActError::Validation(v) => {
            assert_eq!(v.target, "BodyPut", "{v}");
            let text = v.to_string();
            assert!(text.contains(&format!("at most {limit}")), "{text}");
            assert!(text.contains("meta"), "{text}");
            // the size is reported, and it is over the limit
            let size: usize = text
                .split("is ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no size in {text}"));
            assert!(size > 8 << 20, "{text}");
            assert_eq!(v.paths().next(), Some("/meta"), "{text}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_huge_actor_name_is_refused_by_execute_and_execute_json() {
    let limit = act_runtime::app::DEFAULT_MAX_EVENT_BYTES;
    for sqlite in [false, true] {
        let app = doc_app(sqlite).await;
        let huge = Target::new("doc-1", Actor::new("u-1", "n".repeat(8 << 20)));
        let err = app
            .execute(Put { body: json!(1) }, huge.clone())
            .await
            .unwrap_err();
        assert_too_large(&err, limit);
        let err = app
            .execute_json("Put", huge, json!({ "body": 1 }))
            .await
            .unwrap_err();
        assert_too_large(&err, limit);
        assert_eq!(events(&app).await, 0, "nothing committed");
        // an ordinary actor still commits
        app.execute(Put { body: json!(1) }, Target::new("doc-1", actor()))
            .await
            .unwrap();
        assert_eq!(events(&app).await, 1);
    }
}

#[tokio::test]
async fn the_size_limit_counts_name_data_and_meta() {
    let app = act()
        .with_state::<Doc>()
        .with_max_event_bytes(400)
        .build()
        .unwrap();
    let t = |name: &str| Target::new("d", Actor::new("u", name)).correlated("c");
    // small enough with a short actor name
    app.execute(
        Put {
            body: json!("x".repeat(100)),
        },
        t("a"),
    )
    .await
    .unwrap();
    // the same payload with a 300-byte actor name is over
    let err = app
        .execute(
            Put {
                body: json!("x".repeat(100)),
            },
            t(&"a".repeat(300)),
        )
        .await
        .unwrap_err();
    let ActError::Validation(v) = &err else {
        panic!("unexpected {err:?}")
    };
    let text = v.to_string();
    assert!(text.contains("at most 400"), "{text}");
    assert!(text.contains("name 7 + data "), "{text}");
    // a payload over the limit on its own points at the data
    let err = app
        .execute(
            Put {
                body: json!("x".repeat(500)),
            },
            t("a"),
        )
        .await
        .unwrap_err();
    let ActError::Validation(v) = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(v.paths().next(), Some("/data"), "{v}");
    assert_eq!(events(&app).await, 1);
}

// ---- 7. a state that does not render as JSON after a commit ----------------------------

#[tokio::test]
async fn execute_json_reports_the_commit_when_the_state_does_not_render() {
    let app = act().with_state::<Grid>().build().unwrap();
    let out = app
        .execute_json("Mark", Target::new("g", actor()), json!({"x": 1, "y": 2}))
        .await
        .expect("the events were committed, so the result is Ok");
    assert_eq!(out.version, 0);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].name, "Marked");
    assert_eq!(
        out.events[0].data_as::<Value>().unwrap(),
        json!({"x": 1, "y": 2})
    );
    assert_eq!(out.state, None);
    let why = out.state_error.as_deref().expect("the rendering error");
    assert!(why.contains("key must be a string"), "{why}");
    // serialized for an HTTP edge: the events and the error, state null
    let wire = serde_json::to_value(&out).unwrap();
    assert_eq!(wire["state"], Value::Null);
    assert_eq!(wire["events"][0]["name"], "Marked");
    assert!(wire["state_error"].is_string(), "{wire}");
    // committed exactly once
    assert_eq!(events(&app).await, 1);
    let typed = app.load::<Grid>("g").await.unwrap();
    assert_eq!(typed.state.cells, HashMap::from([((1, 2), 1)]));

    // the typed result renders the same way
    let out = app
        .execute(Mark { x: 1, y: 2 }, Target::new("g", actor()))
        .await
        .unwrap();
    let json = out.to_json().unwrap();
    assert_eq!((json.version, json.events.len()), (1, 1));
    assert!(json.state.is_none() && json.state_error.is_some());
    assert_eq!(events(&app).await, 2);
}

#[tokio::test]
async fn a_rendered_state_has_no_error() {
    let app = doc_app(false).await;
    let out = app
        .execute_json("Put", Target::new("d", actor()), json!({"body": [1]}))
        .await
        .unwrap();
    assert_eq!(out.state, Some(json!({"last": [1], "puts": 1})));
    assert_eq!(out.state_error, None);
    let wire = serde_json::to_value(&out).unwrap();
    assert!(wire.get("state_error").is_none(), "{wire}");
}

/// A probe, not a check: 32 writers racing for one stream, 20 actions each, on a SQLite
/// file; prints how many actions ran out of retries for several backoffs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a probe, not a check: prints how many racing actions run out of retries"]
async fn racing_writers_probe() {
    use act_runtime::app::RaceBackoff;
    use act_tests::counter::{Counter, Increment};
    use std::time::Duration;
    for (label, backoff) in [
        ("none", RaceBackoff::NONE),
        ("default", RaceBackoff::default()),
        (
            "5ms..100ms",
            RaceBackoff {
                base: Duration::from_millis(5),
                max: Duration::from_millis(100),
            },
        ),
    ] {
        let db = act_tests::TempDb::new(&format!("race-{label}"));
        let store = SqliteStore::open(&db.0).await.unwrap();
        let app = act()
            .with_store(store)
            .with_state::<Counter>()
            .with_race_backoff(backoff)
            .build()
            .unwrap();
        let writers: Vec<_> = (0..32)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    let mut failed = 0;
                    for _ in 0..20 {
                        let r = app.execute(Increment { by: 1 }, Target::new("one", actor()));
                        if matches!(r.await, Err(ActError::Concurrency(_))) {
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        let mut failed = 0;
        for w in writers {
            failed += w.await.unwrap();
        }
        println!("{label}: {failed} of 640 actions ran out of retries");
        app.shutdown().await.unwrap();
    }
}

/// In one process actions on a stream take turns: 32 writers on one stream of a SQLite
/// file never lose a race, so none runs out of retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_one_process_never_race_on_a_stream() {
    use act_tests::counter::{Counter, Increment};
    let db = act_tests::TempDb::new("turns");
    let app = act()
        .with_store(SqliteStore::open(&db.0).await.unwrap())
        .with_state::<Counter>()
        .build()
        .unwrap();
    let writers: Vec<_> = (0..32)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    app.execute(Increment { by: 1 }, Target::new("one", actor()))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(app.load::<Counter>("one").await.unwrap().state.count, 160);
    app.shutdown().await.unwrap();
}

/// A hand-written handler that emits a deprecated event version (`#[action(emit = ...)]`
/// refuses it at compile time; `tests/ui/fail/emit_deprecated_version.rs`).
mod versions {
    use act_runtime::prelude::*;

    #[state(actions(Deposit, DepositOld))]
    #[derive(Debug, Clone, Default)]
    pub struct Account {
        pub balance: u64,
    }

    #[emits(Account)]
    #[derive(Debug, Clone)]
    #[allow(non_camel_case_types)]
    pub enum AccountEvent {
        Deposited { amount: u64 },
        Deposited_v2 { amount: u64, memo: String },
    }

    impl Patch<AccountEvent> for Account {
        fn patch(&mut self, event: &AccountEvent) {
            match event {
                AccountEvent::Deposited { amount } | AccountEvent::Deposited_v2 { amount, .. } => {
                    self.balance += amount
                }
            }
        }
    }

    #[action(Account)]
    pub struct Deposit {
        pub amount: u64,
    }

    impl Handle for Deposit {
        fn handle(&self, _: &Account, _: &Target) -> Emit<AccountEvent> {
            Ok(vec![AccountEvent::Deposited_v2 {
                amount: self.amount,
                memo: String::new(),
            }])
        }
    }

    #[action(Account)]
    pub struct DepositOld {
        pub amount: u64,
    }

    impl Handle for DepositOld {
        fn handle(&self, _: &Account, _: &Target) -> Emit<AccountEvent> {
            Ok(vec![
                AccountEvent::Deposited_v2 {
                    amount: 1,
                    memo: String::new(),
                },
                AccountEvent::Deposited {
                    amount: self.amount,
                },
            ])
        }
    }
}

#[tokio::test]
async fn a_deprecated_event_version_from_a_handler_is_refused_before_commit() {
    use versions::{Account, Deposit, DepositOld};
    let app = act().with_state::<Account>().build().unwrap();
    let err = app
        .execute(DepositOld { amount: 5 }, Target::new("acct", actor()))
        .await
        .unwrap_err();
    match &err {
        ActError::Validation(v) => {
            assert_eq!(v.target, "Deposited");
            assert!(v.to_string().contains("deprecated event version"), "{v}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(
        app.query(&Query::all()).await.unwrap().is_empty(),
        "nothing committed"
    );
    app.execute(Deposit { amount: 5 }, Target::new("acct", actor()))
        .await
        .unwrap();
    assert_eq!(app.load::<Account>("acct").await.unwrap().state.balance, 5);
}

/// `execute` trusts a cached state and lets the commit's version check catch staleness:
/// when another process wrote since, the commit conflicts, the cache is dropped and the
/// retry runs on the fresh state. Two stores on one SQLite file stand for two processes.
#[tokio::test]
async fn a_cached_state_made_stale_by_another_process_is_caught_at_commit() {
    use act_tests::counter::{Counter, Increment};
    let db = act_tests::TempDb::new("stale-cache");
    let app = |store| {
        act()
            .with_store(store)
            .with_state::<Counter>()
            .build()
            .unwrap()
    };
    let a = app(SqliteStore::open(&db.0).await.unwrap());
    let b = app(SqliteStore::open(&db.0).await.unwrap());
    let inc = |by| Increment { by };
    for _ in 0..2 {
        a.execute(inc(1), Target::new("n", actor())).await.unwrap(); // cached in a
    }
    b.execute(inc(10), Target::new("n", actor())).await.unwrap(); // a's cache is stale
    let out = a
        .execute(inc(100), Target::new("n", actor()))
        .await
        .unwrap();
    assert_eq!(out.snapshot.state.count, 112, "decided on the fresh state");
    assert_eq!(out.snapshot.version, 3);
    let events = a.query(&Query::stream("n")).await.unwrap();
    assert_eq!(events.len(), 4, "nothing committed from the stale state");
    assert_eq!(a.load::<Counter>("n").await.unwrap().state.count, 112);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
