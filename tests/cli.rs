//! The operator CLI (`act_runtime::cli`) on a SQLite file holding the bank: its listings,
//! its repairs and their effect on the store, a projection replayed, its typed errors, the
//! help text the docs show, and one listing on PostgreSQL.

extern crate act_runtime as act;

#[path = "../examples/bank_domain.rs"]
mod bank_domain;
#[path = "pg_support.rs"]
mod pg_support;
#[path = "../examples/sales_model.rs"]
mod sales_model;

use std::time::Duration;

use act_runtime::adapters::SqliteStore;
use act_runtime::cli::{self, CliError};
use act_runtime::error::ActError;
use act_runtime::ports::{StreamFilter, StreamMatch, StreamPosition};
use act_runtime::prelude::*;
use act_runtime::projections::RebuildError;
use act_tests::TempDb;
use bank_domain::*;
use sales_model::{Cart, CheckOut, SalesByDay};
use serde_json::Value;

/// Fails every time, with a minute's wait before the next attempt: the target stays
/// "retrying" (held until due) after a settle.
#[act::reaction(
    on = AccountEvent::Withdrawn,
    to = "pager",
    retries = 5,
    backoff(fixed, base_ms = 60_000)
)]
async fn page_on_call(_: &Committed<AccountEvent>, _: &Scope) -> Result<(), ReactionError> {
    Err(ReactionError::retry("the pager gateway is down"))
}

/// The bank on a SQLite file, with the sales projection in a SQLite file of its own.
struct Bank {
    db: TempDb,
    sales: SalesByDay,
    _sales_db: TempDb,
}

impl Bank {
    /// The app every command runs with: the bank, the failing pager, the carts and the
    /// sales projection (the CLI adds the store).
    fn builder(&self) -> ActBuilder {
        bank_app()
            .with_reaction(page_on_call)
            .with_state::<Cart>()
            .with_projection(self.sales.clone())
    }

    fn path(&self) -> String {
        self.db.0.display().to_string()
    }

    /// Runs one command line on the bank's file: the output, or the error.
    async fn run(&self, args: &[&str]) -> Result<String, CliError> {
        let mut argv = vec!["ops".to_owned(), "--sqlite".to_owned(), self.path()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let mut out = Vec::new();
        cli::run(argv, &mut out, || self.builder()).await?;
        Ok(String::from_utf8(out).expect("the output is UTF-8"))
    }

    /// Runs a command that must succeed.
    async fn ok(&self, args: &[&str]) -> String {
        match self.run(args).await {
            Ok(out) => out,
            Err(e) => panic!("{args:?} failed: {}", e.report()),
        }
    }

    /// Runs a `--json` command that must succeed: its one JSON document.
    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// The subscription row of `stream`, read from the store directly.
    async fn row(&self, stream: &str) -> Option<StreamPosition> {
        let store = SqliteStore::open(&self.db.0).await.unwrap();
        let rows = store
            .query_streams(&StreamFilter {
                stream: Some(StreamMatch::Exact(stream.to_owned())),
                ..StreamFilter::default()
            })
            .await
            .unwrap();
        store.dispose().await.unwrap();
        rows.into_iter().find(|r| r.stream == stream)
    }
}

/// Opens three accounts, deposits on each (one on the frozen account, whose audit blocks),
/// withdraws from Ada (the ledger, and the pager that keeps failing), checks out two
/// carts, and settles.
async fn bank() -> Bank {
    let db = TempDb::new("cli");
    let sales_db = TempDb::new("cli-sales");
    let sales = SalesByDay::connect(&format!("sqlite:{}?mode=rwc", sales_db.0.display()))
        .await
        .unwrap();
    let bank = Bank {
        db,
        sales,
        _sales_db: sales_db,
    };
    let app = bank
        .builder()
        .with_store(SqliteStore::open(&bank.db.0).await.unwrap())
        .build()
        .unwrap();
    let to = |stream: &str| Target::new(stream, teller());
    for (stream, owner) in [("acct-ada", "Ada"), ("acct-bob", "Bob"), (FROZEN, "Frank")] {
        app.execute(
            Open {
                owner: owner.into(),
            },
            to(stream),
        )
        .await
        .unwrap();
    }
    app.execute(Deposit { amount: 100 }, to("acct-ada"))
        .await
        .unwrap();
    app.execute(Deposit { amount: 40 }, to("acct-bob"))
        .await
        .unwrap();
    app.execute(Deposit { amount: 7 }, to(FROZEN))
        .await
        .unwrap();
    app.execute(Withdraw { amount: 30 }, to("acct-ada"))
        .await
        .unwrap();
    for (cart, day, total) in [
        ("cart-1", "2024-06-01", 12.5),
        ("cart-2", "2024-06-02", 8.0),
    ] {
        app.execute(
            CheckOut {
                total,
                timestamp: format!("{day}T10:00:00Z"),
            },
            to(cart),
        )
        .await
        .unwrap();
    }
    let summary = app
        .settle_now(SettleOptions {
            debounce: Duration::ZERO,
            ..SettleOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(
        summary.blocked.len(),
        1,
        "the frozen account's audit blocks"
    );
    app.shutdown().await.unwrap();
    bank
}

const FROZEN_AUDIT: &str = "audit-acct-frozen";

fn rows(v: &Value) -> &Vec<Value> {
    v["rows"].as_array().expect("`rows` is an array")
}

fn by_stream<'a>(rows: &'a [Value], stream: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["stream"] == stream)
        .unwrap_or_else(|| panic!("no row `{stream}` in {rows:?}"))
}

#[tokio::test]
async fn streams_lists_every_subscription_row() {
    let bank = bank().await;

    let v = bank.json(&["streams"]).await;
    let rows = rows(&v);
    let names: Vec<&str> = rows.iter().map(|r| r["stream"].as_str().unwrap()).collect();
    for stream in [
        "audit-acct-ada",
        "audit-acct-bob",
        FROZEN_AUDIT,
        "ledger",
        "pager",
        "sales-by-day",
    ] {
        assert!(names.contains(&stream), "{stream} in {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "ordered by name");

    let frozen = by_stream(rows, FROZEN_AUDIT);
    assert_eq!(frozen["blocked"], true);
    assert!(
        frozen["error"]
            .as_str()
            .unwrap()
            .contains("is frozen: compliance holds its audit trail"),
        "{frozen}"
    );
    assert_eq!(frozen["source"], FROZEN);
    // the deposit that blocked it is still to be handled: the one event of its source
    // after the watermark, up to the work mark
    assert_eq!(frozen["lag"], 1, "{frozen}");
    assert_eq!(frozen["lag_capped"], false);

    let ada = by_stream(rows, "audit-acct-ada");
    assert_eq!(ada["blocked"], false);
    assert_eq!(ada["lag"], 0, "handled: {ada}");
    assert!(ada["watermark"].as_i64() >= ada["mark"].as_i64(), "{ada}");

    let pager = by_stream(rows, "pager");
    assert_eq!(pager["blocked"], false);
    assert!(pager["leased_by"].is_string(), "held until due: {pager}");
    assert!(pager["lag"].as_u64().unwrap() >= 1, "{pager}");

    // a cap of 0 counts nothing and says there is more
    let capped = bank.json(&["streams", "--lag-cap", "0"]).await;
    let frozen = by_stream(self::rows(&capped), FROZEN_AUDIT);
    assert_eq!(
        (&frozen["lag"], &frozen["lag_capped"]),
        (&0.into(), &true.into())
    );

    // filters
    let blocked = bank.json(&["streams", "--blocked"]).await;
    let names: Vec<&Value> = self::rows(&blocked).iter().map(|r| &r["stream"]).collect();
    assert_eq!(names, [FROZEN_AUDIT]);
    let audits = bank.json(&["streams", "--pattern", "^audit-"]).await;
    assert_eq!(self::rows(&audits).len(), 3);
    let page = bank.json(&["streams", "--limit", "2"]).await;
    assert_eq!(self::rows(&page).len(), 2);
    let next = bank
        .json(&[
            "streams",
            "--after",
            self::rows(&page)[1]["stream"].as_str().unwrap(),
        ])
        .await;
    assert_eq!(
        self::rows(&next)[0]["stream"],
        rows[2]["stream"],
        "the next page starts after the last row shown"
    );

    // the table: a header, a line per row, what lag means
    let table = bank.ok(&["streams"]).await;
    assert!(table.contains("| STREAM"), "{table}");
    assert!(table.contains("| LAG"), "{table}");
    let line = table
        .lines()
        .find(|l| l.contains(FROZEN_AUDIT))
        .expect("a line for the frozen audit");
    assert!(line.contains("yes"), "blocked: {line}");
    assert!(
        line.contains("audit_deposit on event") && line.contains('…'),
        "the error, cut: {line}"
    );
    assert!(
        table.contains("lag: events of the row's source after its watermark"),
        "{table}"
    );
}

#[tokio::test]
async fn blocked_unblock_and_reset_repair_the_frozen_audit() {
    let bank = bank().await;

    let blocked = bank.json(&["blocked"]).await;
    let list = blocked.as_array().expect("an array");
    assert_eq!(list.len(), 1, "{blocked}");
    assert_eq!(list[0]["stream"], FROZEN_AUDIT);
    assert!(
        list[0]["error"]
            .as_str()
            .unwrap()
            .contains("acct-frozen is frozen: compliance holds its audit trail")
    );
    let table = bank.ok(&["blocked"]).await;
    assert!(
        table.contains(FROZEN_AUDIT) && table.contains("compliance holds"),
        "{table}"
    );

    let watermark = bank.row(FROZEN_AUDIT).await.unwrap().at;
    assert_eq!(bank.ok(&["unblock", FROZEN_AUDIT]).await, "unblocked: 1\n");
    assert_eq!(bank.json(&["blocked"]).await, serde_json::json!([]));
    assert_eq!(bank.ok(&["blocked"]).await, "no blocked targets\n");
    let row = bank.row(FROZEN_AUDIT).await.unwrap();
    assert!(!row.blocked);
    assert_eq!(row.at, watermark, "unblocking keeps the progress");
    // a second unblock finds nothing blocked
    assert_eq!(
        bank.json(&["unblock", FROZEN_AUDIT]).await,
        serde_json::json!({"unblocked": 0})
    );

    // reset rewinds the handled audit of Ada
    assert!(bank.row("audit-acct-ada").await.unwrap().at >= 0);
    assert_eq!(
        bank.json(&["reset", "audit-acct-ada", "no-such-row"]).await,
        serde_json::json!({"reset": 1})
    );
    assert_eq!(bank.row("audit-acct-ada").await.unwrap().at, -1);
}

#[tokio::test]
async fn retry_makes_a_waiting_target_claimable_now() {
    let bank = bank().await;
    let before = bank.row("pager").await.unwrap();
    let until = before
        .leased_until
        .expect("the pager waits for its next attempt");
    assert!(until > chrono::Utc::now() + chrono::TimeDelta::seconds(30));
    assert!(!before.blocked);

    let v = bank
        .json(&["retry", "pager", FROZEN_AUDIT, "acct-nope", "ledger"])
        .await;
    assert_eq!(v["retried"], 2, "{v}");
    let outcome = |stream: &str| {
        v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["stream"] == stream)
            .map(|r| r["outcome"].as_str().unwrap().to_owned())
    };
    assert_eq!(outcome("pager").as_deref(), Some("released"));
    assert_eq!(outcome(FROZEN_AUDIT).as_deref(), Some("unblocked"));
    assert_eq!(outcome("acct-nope").as_deref(), Some("not_found"));
    assert_eq!(outcome("ledger").as_deref(), Some("not_held"));

    let after = bank.row("pager").await.unwrap();
    assert!(
        after.leased_until.is_some_and(|t| t <= chrono::Utc::now()),
        "due now: {after:?}"
    );
    assert_eq!(
        (after.at, after.retry),
        (before.at, before.retry),
        "watermark and retry count kept"
    );
    assert!(!bank.row(FROZEN_AUDIT).await.unwrap().blocked);

    // claimable at once: a drainer claims it now, a minute before it was due
    let store = SqliteStore::open(&bank.db.0).await.unwrap();
    let leases = store
        .claim(10, 10, "w", Duration::from_secs(10))
        .await
        .unwrap();
    let streams: Vec<&str> = leases.iter().map(|l| l.stream.as_str()).collect();
    assert!(streams.contains(&"pager"), "{streams:?}");
    assert!(streams.contains(&FROZEN_AUDIT), "{streams:?}");
    store.dispose().await.unwrap();

    // the table says what happened to each
    let table = bank.ok(&["retry", "pager"]).await;
    assert!(table.contains("released: was held by w until"), "{table}");
    assert!(table.ends_with("retried: 1\n"), "{table}");
}

#[tokio::test]
async fn events_lists_the_log_with_filters() {
    let bank = bank().await;

    let v = bank.json(&["events", "--stream", "acct-ada"]).await;
    let events = v.as_array().expect("an array");
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Opened", "Deposited", "Withdrawn"]);
    let versions: Vec<i64> = events
        .iter()
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [0, 1, 2]);
    assert_eq!(events[1]["data"], serde_json::json!({"amount": 100}));
    assert_eq!(events[0]["meta"]["actor"]["name"], "teller");
    assert!(events.iter().all(|e| e["stream"] == "acct-ada"));

    let backward = bank
        .json(&[
            "events",
            "--stream",
            "acct-ada",
            "--backward",
            "--limit",
            "1",
        ])
        .await;
    assert_eq!(backward[0]["name"], "Withdrawn");

    let deposits = bank
        .json(&[
            "events",
            "--pattern",
            "^acct-",
            "--names",
            "Deposited,Withdrawn",
        ])
        .await;
    let deposits = deposits.as_array().unwrap();
    assert_eq!(deposits.len(), 4);
    let first = deposits[0]["id"].as_i64().unwrap();
    let after = bank
        .json(&[
            "events",
            "--names",
            "Deposited",
            "--after",
            &first.to_string(),
            "--before",
            &deposits[2]["id"].to_string(),
        ])
        .await;
    assert_eq!(after.as_array().unwrap().len(), 1, "{after}");

    let correlation = events[1]["meta"]["correlation"].as_str().unwrap();
    let same = bank.json(&["events", "--correlation", correlation]).await;
    assert!(
        same.as_array()
            .unwrap()
            .iter()
            .all(|e| e["meta"]["correlation"] == correlation)
    );
    assert!(
        same.as_array().unwrap().len() >= 2,
        "the deposit and its audit note: {same}"
    );

    assert_eq!(
        bank.json(&["events", "--limit", "2"])
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let table = bank.ok(&["events", "--stream", "acct-ada"]).await;
    assert!(table.contains("| NAME"), "{table}");
    assert!(table.contains(r#"{"amount":100}"#), "{table}");
    assert_eq!(
        bank.ok(&["events", "--stream", "nobody"]).await,
        "no events\n"
    );
}

#[tokio::test]
async fn events_cuts_long_data_in_tables_only() {
    let bank = bank().await;
    let app = bank
        .builder()
        .with_store(SqliteStore::open(&bank.db.0).await.unwrap())
        .build()
        .unwrap();
    let entry = "x".repeat(200);
    app.execute(
        Note {
            entry: entry.clone(),
        },
        Target::new("journal-long", teller()),
    )
    .await
    .unwrap();
    app.shutdown().await.unwrap();
    let v = bank.json(&["events", "--stream", "journal-long"]).await;
    assert_eq!(v[0]["data"]["entry"], entry.as_str(), "whole in JSON");
    let table = bank.ok(&["events", "--stream", "journal-long"]).await;
    assert!(!table.contains(&entry), "cut in the table");
    assert!(table.contains('…'), "{table}");
}

#[tokio::test]
async fn projections_and_replay_rebuild_the_sales_model() {
    let bank = bank().await;
    let expected = bank.sales.rows(sales_model::LIVE).await.unwrap();
    assert_eq!(expected.len(), 2, "two days of sales");

    let v = bank.json(&["projections"]).await;
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "sales-by-day");
    assert_eq!(list[0]["behind"], 0);
    let head = list[0]["head"].as_i64().unwrap();
    assert_eq!(list[0]["position"], head);

    // the live table loses its rows: only a replay from the log brings them back
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {}",
        sales_model::LIVE
    )))
    .execute(&bank.sales.db)
    .await
    .unwrap();
    assert!(bank.sales.rows(sales_model::LIVE).await.unwrap().is_empty());

    let r = bank.json(&["replay", "sales-by-day"]).await;
    assert_eq!(r["projection"], "sales-by-day");
    assert_eq!(r["filled"], 2, "{r}");
    assert_eq!(r["caught_up"], 0);
    assert_eq!(r["position"], head);
    assert_eq!(r["status"]["behind"], 0);
    assert_eq!(r["status"]["blocked"], Value::Null);
    assert_eq!(bank.sales.rows(sales_model::LIVE).await.unwrap(), expected);
    assert_eq!(
        bank.sales.checkpoint(sales_model::LIVE).await.unwrap(),
        Some(head)
    );

    let text = bank.ok(&["replay", "sales-by-day"]).await;
    assert!(
        text.starts_with(&format!(
            "replayed sales-by-day: 2 event(s) filled, 0 caught up, at event {head}\n"
        )),
        "{text}"
    );
    let table = bank.ok(&["projections"]).await;
    assert!(table.contains("| sales-by-day"), "{table}");
}

#[tokio::test]
async fn errors_are_typed_and_reported() {
    let bank = bank().await;

    match bank.run(&["replay", "nope"]).await {
        Err(CliError::UnknownProjection { name, known }) => {
            assert_eq!(name, "nope");
            assert_eq!(known, ["sales-by-day"]);
        }
        other => panic!("expected an unknown projection, got {other:?}"),
    }

    let missing = std::env::temp_dir()
        .join(format!("act-cli-missing-{}", std::process::id()))
        .join("bank.db");
    let mut out = Vec::new();
    let err = cli::run(
        ["ops", "--sqlite", missing.to_str().unwrap(), "streams"],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, CliError::NoDatabase { path } if *path == missing),
        "{err:?}"
    );
    assert!(!missing.exists(), "no database was created");
    assert!(err.report().starts_with("error: no SQLite database at"));
    assert_eq!(err.exit_code(), std::process::ExitCode::from(1));
    assert!(out.is_empty());

    // a file that is not a database
    let junk = TempDb::new("cli-junk");
    std::fs::write(
        &junk.0,
        b"this is not an SQLite database, not even close ......",
    )
    .unwrap();
    let err = cli::run(
        ["ops", "--sqlite", junk.0.to_str().unwrap(), "blocked"],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CliError::Connect { .. }), "{err:?}");
    assert!(err.report().contains("caused by"), "{}", err.report());

    // a pattern outside the portable grammar: the store's validation, named
    let err = bank
        .run(&["events", "--pattern", "acct-[ab]"])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CliError::Command {
                command: "events",
                source: ActError::Validation(_)
            }
        ),
        "{err:?}"
    );

    // no store, or two
    let err = cli::run(["ops", "blocked"], &mut out, bank_app)
        .await
        .unwrap_err();
    assert!(matches!(err, CliError::NoStore), "{err:?}");
    let err = cli::run(
        [
            "ops",
            "--sqlite",
            "a.db",
            "--pg",
            "postgres://x/y",
            "blocked",
        ],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, CliError::Usage(_)), "{err:?}");
    assert_eq!(err.exit_code(), std::process::ExitCode::from(2));
    // a PostgreSQL option without PostgreSQL
    let err = cli::run(
        ["ops", "--sqlite", "a.db", "--schema", "tenant", "blocked"],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, CliError::Usage(_)), "{err:?}");
    assert!(err.report().contains("--pg <URL>"), "{}", err.report());

    // a bad URL, and a server that is not there
    let err = cli::run(
        ["ops", "--pg", "mysql//nope", "blocked"],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CliError::Connect { .. }), "{err:?}");
    let err = cli::run(
        [
            "ops",
            "--pg",
            "postgres://ops:hunter2@127.0.0.1:1/bank",
            "blocked",
        ],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, CliError::Connect { .. }), "{err:?}");
    let report = err.report();
    assert!(
        report.starts_with("error: cannot open the store at postgres://ops:***@127.0.0.1:1/bank"),
        "{report}"
    );
    assert!(!report.contains("hunter2"), "{report}");

    // a schema name the store refuses
    let err = cli::run(
        [
            "ops",
            "--pg",
            &pg_support::url(),
            "--schema",
            "Bad-Name",
            "blocked",
        ],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CliError::Connect { .. }), "{err:?}");

    // unknown commands and options
    for args in [
        &["ops", "nope"][..],
        &["ops", "events", "--limit", "many"],
        &["ops", "unblock"],
        &["ops"],
    ] {
        let err = cli::run(args.iter().copied(), &mut out, bank_app)
            .await
            .unwrap_err();
        assert!(matches!(err, CliError::Usage(_)), "{args:?}: {err:?}");
    }
    assert!(out.is_empty(), "errors write no output");
}

#[tokio::test]
async fn a_replay_that_fails_is_a_replay_error() {
    // a projection without `clear_next` and `promote_next` cannot be rebuilt: its rebuild
    // fails in `clear_next`, and the CLI says so
    #[derive(Clone)]
    struct Plain;
    impl act_runtime::projections::Projection for Plain {
        type Event = AccountEvent;
        const NAME: &'static str = "plain";
        async fn apply(
            &self,
            _: act_runtime::projections::Batch<'_, AccountEvent>,
        ) -> Result<(), ReactionError> {
            Ok(())
        }
    }
    let db = TempDb::new("cli-plain");
    let store = SqliteStore::open(&db.0).await.unwrap();
    store.dispose().await.unwrap();
    let mut out = Vec::new();
    let err = cli::run(
        ["ops", "--sqlite", db.0.to_str().unwrap(), "replay", "plain"],
        &mut out,
        || bank_app().with_projection(Plain),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            CliError::Replay { projection, source: RebuildError::Projection { phase: "clear_next", .. } }
                if projection == "plain"
        ),
        "{err:?}"
    );
    assert!(
        err.report().contains("cannot be rebuilt"),
        "{}",
        err.report()
    );
}

#[tokio::test]
async fn diagram_needs_no_store() {
    let mut out = Vec::new();
    cli::run(["ops", "diagram"], &mut out, bank_app)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        bank_app().build().unwrap().diagram()
    );
    let mut out = Vec::new();
    cli::run(["ops", "diagram", "--json"], &mut out, bank_app)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(v["mermaid"].as_str().unwrap().starts_with("flowchart LR"));
}

/// The help texts in `docs/cli.md`, each under a `<!-- help: ARGS -->` line, are what the
/// CLI prints for `ops ARGS` now.
#[tokio::test]
async fn the_docs_show_the_current_help() {
    let doc = include_str!("../docs/cli.md");
    let mut checked = 0;
    for (i, _) in doc.match_indices("<!-- help: ") {
        let rest = &doc[i + "<!-- help: ".len()..];
        let (args, rest) = rest.split_once(" -->\n```text\n").expect("a text block");
        let (shown, _) = rest.split_once("```\n").expect("a closed block");
        let mut argv = vec!["ops"];
        argv.extend(args.split_whitespace());
        let mut out = Vec::new();
        cli::run(argv.iter().copied(), &mut out, bank_app)
            .await
            .unwrap_or_else(|e| panic!("{argv:?}: {}", e.report()));
        assert_eq!(
            shown,
            String::from_utf8(out).unwrap(),
            "docs/cli.md shows the help of `ops {args}` as the CLI prints it"
        );
        checked += 1;
    }
    assert!(checked >= 2, "the top level's and `events`' help are shown");
}

#[tokio::test]
async fn streams_on_a_fresh_postgres_schema() {
    let schemas = pg_support::Schemas::default();
    let schema = schemas.fresh();
    let mut out = Vec::new();
    cli::run(
        [
            "ops",
            "--pg",
            &pg_support::url(),
            "--schema",
            &schema,
            "streams",
            "--json",
        ],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.report()));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["rows"], serde_json::json!([]));

    // the app commits a blocked deposit there: the next listing shows it
    let store = pg_support::store_on(&schema).await;
    let app = bank_app().with_store(store).build().unwrap();
    let to = |s: &str| Target::new(s, teller());
    app.execute(
        Open {
            owner: "Frank".into(),
        },
        to(FROZEN),
    )
    .await
    .unwrap();
    app.execute(Deposit { amount: 1 }, to(FROZEN))
        .await
        .unwrap();
    app.settle_now(SettleOptions {
        debounce: Duration::ZERO,
        ..SettleOptions::default()
    })
    .await
    .unwrap();
    app.shutdown().await.unwrap();
    let mut out = Vec::new();
    cli::run(
        [
            "ops",
            "--pg",
            &pg_support::url(),
            "--schema",
            &schema,
            "blocked",
        ],
        &mut out,
        bank_app,
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.report()));
    let table = String::from_utf8(out).unwrap();
    assert!(table.contains(FROZEN_AUDIT), "{table}");
    schemas.drop_all().await;
}
