//! The HTTP edge against a real server on 127.0.0.1: actions (validation paths, status
//! codes), state reads, the OpenAPI document, and the Server-Sent Events feed (replay,
//! live, resume with `Last-Event-ID`, other processes' commits).

use std::collections::BTreeSet;
use std::time::Duration;

use act_runtime::adapters::SqliteStore;
use act_runtime::http::axum::{self, Extension, Router};
use act_runtime::http::{HttpOptions, router, router_with};
use act_runtime::ports::Store;
use act_runtime::prelude::*;
use act_tests::cart::{AddItem, Cart};
use act_tests::{TempDb, actor};
use futures_util::StreamExt;
use serde_json::{Value, json};

#[path = "pg_support.rs"]
mod pg_support;

/// Orders with nested lines: their schema has `$defs`, and a bad nested field has a deep
/// path.
mod order {
    use act_runtime::prelude::*;

    #[state(name = "Order", actions(Place, Boom))]
    #[derive(Debug, Clone, Default)]
    pub struct Order {
        pub lines: Vec<Line>,
    }

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Line {
        pub sku: String,
        pub qty: u32,
    }

    #[emits(Order)]
    #[derive(Debug, Clone)]
    pub enum OrderEvent {
        Placed { lines: Vec<Line> },
    }

    impl Patch<OrderEvent> for Order {
        fn patch(&mut self, event: &OrderEvent) {
            match event {
                OrderEvent::Placed { lines } => self.lines.extend(lines.iter().cloned()),
            }
        }
    }

    #[action(Order, emit = OrderEvent::Placed)]
    pub struct Place {
        pub lines: Vec<Line>,
    }

    /// A handler with a bug: it panics.
    #[action(Order)]
    pub struct Boom;

    impl Handle for Boom {
        fn handle(&self, _: &Order, _: &Target) -> Emit<OrderEvent> {
            panic!("a bug in the handler")
        }
    }
}

/// A bound on every wait, so a broken feed fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

fn app() -> Act {
    act()
        .with_state::<Cart>()
        .with_state::<order::Order>()
        .build()
        .expect("build")
}

/// Serves `router` on 127.0.0.1, on a port the system picks; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    format!("http://{addr}")
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn new(router: Router) -> Self {
        Self {
            base: serve(router).await,
            http: reqwest::Client::new(),
        }
    }

    /// Posts `body` to `/actions/{action}`: the status, the content type and the body.
    async fn post(&self, action: &str, body: Value) -> (u16, String, Value) {
        let res = self
            .http
            .post(format!("{}/actions/{action}", self.base))
            .json(&body)
            .send()
            .await
            .expect("post");
        read(res).await
    }

    async fn get(&self, path: &str) -> (u16, String, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("get");
        read(res).await
    }

    async fn add(&self, stream: &str, sku: &str) -> Value {
        let (status, _, body) = self
            .post(
                "AddItem",
                json!({"stream": stream, "actor": {"id": "u-1", "name": "tester"},
                       "payload": {"sku": sku, "qty": 1}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Opens the event feed at `path` (`/events?...`), with `Last-Event-ID` if given.
    async fn events(&self, path: &str, last: Option<i64>) -> Sse {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(id) = last {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let res = req.send().await.expect("events");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            body: Box::pin(res.bytes_stream()),
            buffer: Vec::new(),
        }
    }
}

async fn read(res: reqwest::Response) -> (u16, String, Value) {
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, kind, body)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// A minimal reader of a `text/event-stream` body: events are separated by a blank line;
/// comment lines (keep-alives) are skipped.
struct Sse {
    body: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>,
    >,
    buffer: Vec<u8>,
}

impl Sse {
    async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(PATIENCE, self.next_inner())
            .await
            .expect("an event within the patience bound")
    }

    async fn next_inner(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("utf-8");
                let mut e = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "" => {} // a comment
                        "id" => (e.id, any) = (Some(value.to_owned()), true),
                        "event" => (e.event, any) = (Some(value.to_owned()), true),
                        "data" => {
                            if !e.data.is_empty() {
                                e.data.push('\n');
                            }
                            e.data.push_str(value);
                            any = true;
                        }
                        _ => {}
                    }
                }
                if any {
                    return e;
                }
                continue;
            }
            let chunk = self
                .body
                .next()
                .await
                .expect("the stream stays open")
                .expect("a chunk");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// The next event, as the committed event it carries.
    async fn committed(&mut self) -> Value {
        let e = self.next().await;
        let data: Value = serde_json::from_str(&e.data).expect("data is JSON");
        assert_eq!(e.id.as_deref(), Some(data["id"].to_string().as_str()));
        assert_eq!(e.event.as_deref(), data["name"].as_str());
        data
    }
}

/// The feed delivered every stored event once, in id order.
async fn assert_is_the_log(got: &[Value], app: &Act) {
    let got = ids(got);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "not in id order: {got:?}"
    );
    let stored: Vec<i64> = app
        .query(&Query::all())
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(got, stored);
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_payload_names_its_field_and_a_good_one_commits_and_reads_back() {
    let app = app();
    let c = Client::new(router(app.clone())).await;
    let who = json!({"id": "u-1", "name": "tester"});

    let (status, kind, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-1", "actor": who, "payload": {"sku": "A1", "qty": -1}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(kind, "application/problem+json");
    assert_eq!(body["code"], "validation");
    assert_eq!(body["target"], "AddItem");
    assert_eq!(body["path"], "/qty");
    assert_eq!(body["errors"][0]["path"], "/qty");

    // a nested field: the pointer goes through the array index
    let (status, _, body) = c
        .post(
            "Place",
            json!({"stream": "order-1", "actor": who, "payload": {"lines": [
                {"sku": "A1", "qty": 1}, {"sku": "B2", "qty": "two"}]}}),
        )
        .await;
    assert_eq!(
        (status, &body["path"]),
        (422, &json!("/lines/1/qty")),
        "{body}"
    );

    // a bad envelope: the path is inside the body
    let (status, _, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-1", "actor": {"id": 7, "name": "x"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        (&body["target"], &body["path"]),
        (&json!("request"), &json!("/actor/id"))
    );
    let (status, _, body) = c
        .post(
            "AddItem",
            json!({"stream": "", "actor": who, "payload": {"sku": "A", "qty": 1}}),
        )
        .await;
    assert_eq!(
        (status, &body["target"], &body["path"]),
        (422, &json!("stream"), &json!("/stream"))
    );

    // not JSON at all, and not sent as JSON
    let res = c
        .http
        .post(format!("{}/actions/AddItem", c.base))
        .header("content-type", "application/json")
        .body(r#"{"stream": "cart-1", "#)
        .send()
        .await
        .unwrap();
    let (status, kind, body) = read(res).await;
    assert_eq!((status, kind.as_str()), (400, "application/problem+json"));
    assert_eq!(body["code"], "malformed-json");
    let res = c
        .http
        .post(format!("{}/actions/AddItem", c.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("stream=cart-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);

    // nothing was committed by any of the above
    assert!(app.query(&Query::all()).await.unwrap().is_empty());

    let (status, kind, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-1", "actor": who, "payload": {"sku": "A1", "qty": 2}}),
        )
        .await;
    assert_eq!((status, kind.as_str()), (200, "application/json"), "{body}");
    assert_eq!(body["version"], 0);
    assert_eq!(body["state"]["items"], json!([["A1", 2]]));
    assert_eq!(body["events"][0]["name"], "ItemAdded");
    assert_eq!(body["events"][0]["data"], json!({"sku": "A1", "qty": 2}));
    assert_eq!(body["events"][0]["meta"]["actor"]["id"], "u-1");

    let (status, _, body) = c.get("/streams/Cart/cart-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"stream": "cart-1", "state": {"items": [["A1", 2]], "checked_out": false}, "version": 0})
    );

    // a unit-struct action takes no payload; a stream name may contain `/`
    c.add("tenant-1/cart-9", "B2").await;
    let (status, _, body) = c
        .post(
            "CheckOut",
            json!({"stream": "tenant-1/cart-9", "actor": who}),
        )
        .await;
    assert_eq!((status, &body["version"]), (200, &json!(1)), "{body}");
    let (status, _, body) = c.get("/streams/Cart/tenant-1/cart-9").await;
    assert_eq!((status, &body["version"]), (200, &json!(1)), "{body}");
    assert_eq!(body["state"]["checked_out"], true);
    let (_, _, body) = c.get("/streams/Cart/tenant-1%2Fcart-9").await;
    assert_eq!(body["stream"], "tenant-1/cart-9");

    // a stream with no events: the initial state at version -1
    let (status, _, body) = c.get("/streams/Cart/never").await;
    assert_eq!((status, &body["version"]), (200, &json!(-1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_their_status_codes() {
    let app = app();
    let c = Client::new(router(app.clone())).await;
    let who = json!({"id": "u-1", "name": "tester"});

    let (status, kind, body) = c.post("Fly", json!({"stream": "s", "actor": who})).await;
    assert_eq!((status, kind.as_str()), (404, "application/problem+json"));
    assert_eq!(body["code"], "unknown-action");
    let (status, _, body) = c.get("/streams/Plane/s").await;
    assert_eq!((status, &body["code"]), (404, &json!("unknown-state")));
    let (status, _, body) = c.get("/nowhere").await;
    assert_eq!((status, &body["code"]), (404, &json!("not-found")));

    // an invariant
    let (status, _, body) = c
        .post("CheckOut", json!({"stream": "cart-e", "actor": who}))
        .await;
    assert_eq!(
        (status, &body["code"]),
        (409, &json!("invariant")),
        "{body}"
    );
    assert_eq!(body["invariant"], "cart is empty");
    // the handler's refusal
    let (status, _, body) = c
        .post(
            "RemoveItem",
            json!({"stream": "cart-e", "actor": who, "payload": {"sku": "Z"}}),
        )
        .await;
    assert_eq!((status, &body["code"]), (409, &json!("rejected")), "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Z is not in the cart"),
        "{body}"
    );
    // a pinned version that is not the stream's
    c.add("cart-v", "A").await;
    let (status, _, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-v", "actor": who, "payload": {"sku": "B", "qty": 1},
                   "expected_version": 5}),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (409, &json!("concurrency")),
        "{body}"
    );
    assert_eq!((&body["expected"], &body["actual"]), (&json!(5), &json!(0)));
    // a handler that panics: a 500 whose body says nothing of the panic
    let (status, kind, body) = c
        .post("Boom", json!({"stream": "order-b", "actor": who}))
        .await;
    assert_eq!((status, kind.as_str()), (500, "application/problem+json"));
    assert_eq!(body["code"], "internal");
    assert!(!body.to_string().contains("bug"), "{body}");
    // a method the route does not take
    let res = c
        .http
        .get(format!("{}/actions/AddItem", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    app.shutdown().await.unwrap();
    let (status, _, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-v", "actor": who, "payload": {"sku": "B", "qty": 1}}),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("shut-down")),
        "{body}"
    );
    let (status, _, _) = c.get("/streams/Cart/cart-v").await;
    assert_eq!(status, 503);
    let (status, _, _) = c.get("/events").await;
    assert_eq!(status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_set_by_a_middleware_wins_over_the_body() {
    let app = app();
    let edge = router(app.clone()).layer(Extension(Actor::new("auth-7", "Authenticated")));
    let c = Client::new(edge).await;
    let (status, _, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-a", "payload": {"sku": "A", "qty": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["meta"]["actor"]["id"], "auth-7");
    let (_, _, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-a", "actor": {"id": "mallory", "name": "M"},
                   "payload": {"sku": "B", "qty": 1}}),
        )
        .await;
    assert_eq!(body["events"][0]["meta"]["actor"]["id"], "auth-7");

    // without the middleware the body must name the actor
    let c = Client::new(router(app)).await;
    let (status, _, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-a", "payload": {"sku": "C", "qty": 1}}),
        )
        .await;
    assert_eq!((status, &body["path"]), (422, &json!("/actor")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_replays_follows_and_resumes_with_exactly_the_missing_events() {
    let app = app();
    let c = Client::new(router(app.clone())).await;
    for sku in ["A", "B", "C"] {
        c.add("cart-1", sku).await;
    }

    // replay
    let mut feed = c.events("/events", None).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(feed.committed().await);
    }
    assert_eq!(
        seen.iter()
            .map(|e| e["data"]["sku"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
    // live
    c.add("cart-2", "D").await;
    c.add("cart-1", "E").await;
    seen.push(feed.committed().await);
    seen.push(feed.committed().await);
    assert_eq!(seen[3]["stream"], "cart-2");
    assert_eq!(seen[4]["data"]["sku"], "E");

    // disconnect, commit more, resume after the last id received
    drop(feed);
    let last = *ids(&seen).last().unwrap();
    let mut missed = Vec::new();
    for sku in ["F", "G", "H"] {
        missed.push(
            c.add("cart-3", sku).await["events"][0]["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut feed = c.events("/events", Some(last)).await;
    let resumed = [
        feed.committed().await,
        feed.committed().await,
        feed.committed().await,
    ];
    assert_eq!(ids(&resumed), missed);
    // and nothing else comes before the next commit
    let next = c.add("cart-4", "I").await["events"][0]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(feed.committed().await["id"], next);

    // `Last-Event-ID` wins over `after`; filters
    let mut feed = c.events("/events?after=0", Some(missed[1])).await;
    assert_eq!(feed.committed().await["id"], missed[2]);
    let mut feed = c
        .events("/events?stream=cart-1&names=ItemAdded,Nope", None)
        .await;
    let only = [
        feed.committed().await,
        feed.committed().await,
        feed.committed().await,
        feed.committed().await,
    ];
    let cart_1: Vec<Value> = seen
        .into_iter()
        .filter(|e| e["stream"] == "cart-1")
        .collect();
    assert_eq!(ids(&only), ids(&cart_1));
    let mut feed = c.events("/events?pattern=%5Ecart-3", None).await;
    assert_eq!(feed.committed().await["id"], missed[0]);
    let res = c
        .http
        .get(format!("{}/events?stream=cart-1&pattern=cart", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let (status, _, body) = c.get("/events?pattern=cart-%5B34%5D").await;
    assert_eq!((status, &body["target"]), (422, &json!("query")), "{body}");
    let res = c
        .http
        .get(format!("{}/events", c.base))
        .header("Last-Event-ID", "seven")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // an empty `Last-Event-ID` is no id: `after` applies
    let res = c
        .http
        .get(format!("{}/events?after={}", c.base, missed[1]))
        .header("Last-Event-ID", "")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut feed = Sse {
        body: Box::pin(res.bytes_stream()),
        buffer: Vec::new(),
    };
    assert_eq!(feed.committed().await["id"], missed[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_across_the_handoff_arrive_once_each_in_id_order() {
    let app = app();
    let options = HttpOptions {
        page: 7, // many pages while replaying
        ..HttpOptions::default()
    };
    let c = Client::new(router_with(app.clone(), options)).await;
    let write = |n: usize| {
        let app = app.clone();
        tokio::spawn(async move {
            for i in 0..n {
                let target = Target::new(format!("cart-{}", i % 5), actor());
                let item = AddItem {
                    sku: format!("s{i}"),
                    qty: 1,
                };
                app.execute(item, target).await.expect("commit");
            }
        })
    };
    write(30).await.unwrap();
    // the feed opens while four writers commit: some events are replayed, some live
    let writers: Vec<_> = (0..4).map(|_| write(25)).collect();
    let mut feed = c.events("/events", None).await;
    let mut got = Vec::new();
    while got.len() < 130 {
        got.push(feed.committed().await);
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_is_the_log(&got, &app).await;
    // nothing more than the 130
    let next = c.add("cart-x", "last").await["events"][0]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(feed.committed().await["id"], next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_by_another_process_arrive_by_polling_the_store() {
    let db = TempDb::new("http-feed");
    let open = || async {
        act()
            .with_state::<Cart>()
            .with_store(SqliteStore::open(&db.0).await.expect("sqlite"))
            .build()
            .expect("build")
    };
    let served = open().await;
    let other = open().await; // another process, as far as `served` can tell
    let options = HttpOptions {
        poll: Duration::from_millis(20),
        ..HttpOptions::default()
    };
    let c = Client::new(router_with(served, options)).await;
    let mut feed = c.events("/events", None).await;
    let mut committed = BTreeSet::new();
    for sku in ["A", "B"] {
        let item = AddItem {
            sku: sku.into(),
            qty: 1,
        };
        let out = other
            .execute(item, Target::new("cart-o", actor()))
            .await
            .unwrap();
        committed.insert(out.events[0].id);
    }
    let got: BTreeSet<i64> = [feed.committed().await, feed.committed().await]
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, committed);
}

/// Another process commits on PostgreSQL with four concurrent writers, whose ids become
/// visible out of id order: the feed (polling, nothing wakes it) still sends every event
/// once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_on_postgres_gets_another_process_concurrent_commits_once_in_id_order() {
    let schemas = pg_support::Schemas::default();
    let schema = schemas.fresh();
    let store = pg_support::store_on(&schema).await;
    store.seed().await.expect("seed");
    let on_pg = |store| {
        act()
            .with_state::<Cart>()
            .with_store(store)
            .build()
            .expect("build")
    };
    let served = on_pg(store);
    let other = on_pg(pg_support::store_on(&schema).await);
    let options = HttpOptions {
        poll: Duration::from_millis(10),
        page: 16,
        ..HttpOptions::default()
    };
    let c = Client::new(router_with(served.clone(), options)).await;
    let mut feed = c.events("/events", None).await;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let other = other.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let item = AddItem {
                        sku: format!("w{w}-{i}"),
                        qty: 1,
                    };
                    let target = Target::new(format!("cart-{w}-{}", i % 3), actor());
                    other.execute(item, target).await.expect("commit");
                }
            })
        })
        .collect();
    let mut got = Vec::new();
    while got.len() < 100 {
        got.push(feed.committed().await);
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_is_the_log(&got, &served).await;
    drop(feed);
    served.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_open_feeds_with_a_problem_event() {
    let app = app();
    let options = HttpOptions {
        poll: Duration::from_millis(20),
        ..HttpOptions::default()
    };
    let c = Client::new(router_with(app.clone(), options)).await;
    c.add("cart-1", "A").await;
    let mut feed = c.events("/events", None).await;
    assert_eq!(feed.committed().await["data"]["sku"], "A");
    app.shutdown().await.unwrap();
    let end = feed.next().await;
    assert_eq!(end.event.as_deref(), Some("problem"));
    let problem: Value = serde_json::from_str(&end.data).unwrap();
    assert_eq!(
        (&problem["status"], &problem["code"]),
        (&json!(503), &json!("shut-down"))
    );
    // and the body ends there
    let rest = tokio::time::timeout(PATIENCE, feed.body.next())
        .await
        .expect("the body ends");
    assert!(rest.is_none(), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_feed_gets_keep_alive_comments() {
    let options = HttpOptions {
        keep_alive: Duration::from_millis(10),
        ..HttpOptions::default()
    };
    let c = Client::new(router_with(app(), options)).await;
    let mut feed = c.events("/events", None).await;
    let mut text = Vec::new();
    while !text.windows(2).any(|w| w == b"\n:") && !text.starts_with(b":") {
        let chunk = tokio::time::timeout(PATIENCE, feed.body.next())
            .await
            .expect("a keep-alive within the patience bound")
            .expect("the stream stays open")
            .expect("a chunk");
        text.extend_from_slice(&chunk);
    }
    assert!(
        !String::from_utf8_lossy(&text).contains("data:"),
        "no event was committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let options = HttpOptions {
        body_limit: 1024,
        ..HttpOptions::default()
    };
    let c = Client::new(router_with(app(), options)).await;
    let sku = "x".repeat(2048);
    let (status, kind, body) = c
        .post(
            "AddItem",
            json!({"stream": "cart-1", "actor": {"id": "u", "name": "n"},
                   "payload": {"sku": sku, "qty": 1}}),
        )
        .await;
    assert_eq!((status, kind.as_str()), (413, "application/problem+json"));
    assert_eq!(body["code"], "body-too-large");
}

/// Every `$ref` of the document, with where it was found.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push((at.to_owned(), v.as_str().unwrap_or_default().to_owned()));
                } else {
                    refs(v, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_has_every_action_with_its_schemas() {
    let c = Client::new(router(app())).await;
    let (status, kind, doc) = c.get("/openapi.json").await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/actions/AddItem",
        "/actions/RemoveItem",
        "/actions/CheckOut",
        "/actions/Place",
        "/streams/Cart/{stream}",
        "/streams/Order/{stream}",
        "/events",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys());
    }
    let post = &doc["paths"]["/actions/AddItem"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/request.AddItem"
    );
    for code in ["200", "400", "409", "410", "415", "422", "503"] {
        assert!(post["responses"][code]["description"].is_string(), "{code}");
    }
    assert_eq!(
        post["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/act.Problem"
    );
    assert!(
        post["description"]
            .as_str()
            .unwrap()
            .contains("cart is checked out")
    );

    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let add = &schemas["action.AddItem"];
    assert_eq!(add["properties"]["qty"]["minimum"], 0, "{add}");
    for name in [
        "state.Cart",
        "event.ItemAdded",
        "event.CheckedOut",
        "event.Placed",
        "committed.Cart",
        "executed.Order",
        "act.Committed",
        "Line",
    ] {
        assert!(
            schemas.contains_key(name),
            "{name} missing from {:?}",
            schemas.keys()
        );
    }
    // every reference resolves inside the document; none is left pointing at `$defs`
    let mut all = Vec::new();
    refs(&doc, "", &mut all);
    assert!(all.len() > 20);
    for (at, r) in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{at}: {r} is not a component"));
        assert!(schemas.contains_key(name), "{at}: {r} does not resolve");
    }
    assert_eq!(
        schemas["action.Place"]["properties"]["lines"]["items"]["$ref"],
        "#/components/schemas/Line"
    );

    // the schemas work as JSON Schemas: a request body validates against its component
    let root = json!({
        "$ref": "#/components/schemas/request.Place",
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&root).expect("the schemas compile");
    let good = json!({"stream": "o", "actor": {"id": "u", "name": "n"},
                      "payload": {"lines": [{"sku": "A", "qty": 1}]}});
    assert!(validator.is_valid(&good));
    let bad = json!({"stream": "o", "payload": {"lines": [{"sku": "A", "qty": -1}]}});
    assert!(!validator.is_valid(&bad));
    let stray = json!({"stream": "o", "colour": "red"});
    assert!(!validator.is_valid(&stray));

    // and the answers match their documented schemas
    let schema_of = |name: &str| {
        let root = json!({
            "$ref": format!("#/components/schemas/{name}"),
            "components": doc["components"],
        });
        jsonschema::validator_for(&root).expect("the schemas compile")
    };
    let executed = schema_of("executed.Cart");
    let added = c.add("cart-s", "A").await;
    let (_, _, checked_out) = c
        .post(
            "CheckOut",
            json!({"stream": "cart-s", "actor": {"id": "u", "name": "n"}}),
        )
        .await;
    for body in [&added, &checked_out] {
        let problems: Vec<String> = executed.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(problems.is_empty(), "{body}: {problems:?}");
    }
    let mut wrong = added.clone();
    wrong["events"][0]["data"]["qty"] = json!("one");
    assert!(
        !executed.is_valid(&wrong),
        "the event's payload schema is checked"
    );
    let (_, _, state) = c.get("/streams/Cart/cart-s").await;
    assert!(schema_of("stream.Cart").is_valid(&state), "{state}");
    let (_, _, problem) = c.post("Fly", json!({})).await;
    assert!(schema_of("act.Problem").is_valid(&problem), "{problem}");
}
