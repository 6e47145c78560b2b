//! Durability of the SQLite store: a process committing in a loop is killed with `SIGKILL`
//! mid-stream; after reopening the file every acknowledged commit is there, every batch is
//! whole, and every stream's versions are contiguous from 0.
//!
//! The test re-runs its own binary as the child (selected by an environment variable); the
//! child prints one `ACK` line per commit the store acknowledged.

#![cfg(unix)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use act_runtime::adapters::SqliteStore;
use act_runtime::model::{Actor, EventMeta, Message};
use act_runtime::ports::{Query, Store};

/// Set in the child: the database file to commit to.
const CHILD_ENV: &str = "ACT_SQLITE_DURABILITY_CHILD";
/// Acknowledged commits to wait for before killing the child.
const KILL_AFTER: usize = 400;
const STREAMS: usize = 5;
/// How long the child may take to acknowledge them.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

fn meta() -> EventMeta {
    EventMeta {
        correlation: "durability".into(),
        causation: Default::default(),
        actor: Actor::new("child", "Child"),
    }
}

/// The child: commits batches of 1..=3 events round-robin over the streams, forever (well,
/// for at most a minute), printing `ACK <batch> <stream> <first id> <first version> <len>`.
async fn child(path: &Path) {
    let store = SqliteStore::open(path).await.expect("open");
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let mut batch = 0usize;
    while started.elapsed() < Duration::from_secs(60) {
        let stream = format!("s{}", batch % STREAMS);
        let len = batch % 3 + 1;
        let msgs: Vec<Message> = (0..len)
            .map(|k| {
                let data = serde_json::json!({ "batch": batch, "k": k, "of": len });
                Message::new("Tick", serde_json::value::to_raw_value(&data).unwrap())
            })
            .collect();
        let committed = store
            .commit(&stream, &msgs, &meta(), None)
            .await
            .expect("commit");
        writeln!(
            out,
            "ACK {batch} {stream} {} {} {len}",
            committed[0].id, committed[0].version
        )
        .unwrap();
        out.flush().unwrap();
        batch += 1;
    }
}

struct Ack {
    batch: usize,
    stream: String,
    id: i64,
    version: i64,
    len: usize,
}

fn parse(line: &str) -> Option<Ack> {
    let mut f = line.strip_prefix("ACK ")?.split(' ');
    Some(Ack {
        batch: f.next()?.parse().ok()?,
        stream: f.next()?.to_owned(),
        id: f.next()?.parse().ok()?,
        version: f.next()?.parse().ok()?,
        len: f.next()?.parse().ok()?,
    })
}

fn temp_db() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!("act-durability-{}-{nanos}.db", std::process::id()))
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        runtime.block_on(child(Path::new(&path)));
        return;
    }

    let path = temp_db();
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_commits_survive_sigkill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    // The child's output is read on its own thread, so the wait below has a deadline: a
    // child that stops acknowledging fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = proc.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + CHILD_DEADLINE;
    let mut acks = Vec::new();
    while acks.len() < KILL_AFTER {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => acks.extend(parse(&line)),
            Err(_) => break,
        }
    }
    proc.kill().expect("SIGKILL"); // `Child::kill` sends SIGKILL on Unix
    assert_eq!(
        acks.len(),
        KILL_AFTER,
        "the child stopped acknowledging commits (or was too slow) before the deadline"
    );
    // Acks already written to the pipe before the kill count too (the reader thread ends
    // when the pipe closes).
    acks.extend(rx.iter().filter_map(|l| parse(&l)));
    let status = proc.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");

    let events = runtime.block_on(async {
        let store = SqliteStore::open(&path).await.expect("reopen");
        let mut events = Vec::new();
        store
            .query(&Query::all(), &mut |e| events.push(e.clone()))
            .await
            .unwrap();
        store.dispose().await.unwrap();
        events
    });
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }

    // Every acknowledged commit is there, with its ids and versions.
    let by_id: HashMap<i64, _> = events.iter().map(|e| (e.id, e)).collect();
    for ack in &acks {
        for k in 0..ack.len {
            let e = by_id
                .get(&(ack.id + k as i64))
                .unwrap_or_else(|| panic!("acknowledged batch {} lost", ack.batch));
            assert_eq!(e.stream, ack.stream);
            assert_eq!(e.version, ack.version + k as i64);
            let data: serde_json::Value = e.data_as().unwrap();
            assert_eq!(data["batch"], ack.batch);
        }
    }
    // Nothing half-written: every batch (acknowledged or not) is whole.
    let mut batches: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for e in &events {
        let data: serde_json::Value = e.data_as().unwrap();
        let slot = batches.entry(data["batch"].as_u64().unwrap()).or_default();
        slot.0 += 1;
        slot.1 = data["of"].as_u64().unwrap();
    }
    for (batch, (seen, of)) in &batches {
        assert_eq!(seen, of, "batch {batch} is partial");
    }
    // Versions contiguous from 0 in every stream, ids increasing.
    let mut streams: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for e in &events {
        streams.entry(&e.stream).or_default().push(e.version);
    }
    for (stream, versions) in &streams {
        let expected: Vec<i64> = (0..versions.len() as i64).collect();
        assert_eq!(versions, &expected, "stream {stream}");
    }
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert!(events.len() >= acks.iter().map(|a| a.len).sum::<usize>());
}
