//! The event log: commit (one round trip, per-stream locking) and query (streamed, capped
//! at the read horizon when it spans several streams), plus `drop_all`.

use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};

use super::PostgresStore;
use super::codec::{self, Cond, backend, no_nul, no_nul_json, refused};
use super::group;
use super::subscriptions::validate_subs;
use crate::error::{ConcurrencyError, StoreError, StreamClosedError, ValidationError};
use crate::model::{Committed, EventMeta, Message, SNAPSHOT_EVENT, Version};
use crate::ports::{Query, StreamMatch, Subscription};

/// Validates a commit's input and serializes its meta: a non-empty stream name, and no NUL
/// characters anywhere PostgreSQL would refuse them.
pub(crate) fn validate_commit(
    stream: &str,
    msgs: &[Message],
    meta: &EventMeta,
) -> Result<String, StoreError> {
    if stream.is_empty() {
        return Err(ValidationError::new("commit", "/stream", "stream name is empty").into());
    }
    let target = format!("commit to stream `{}`", stream.escape_debug());
    no_nul(&target, "/stream", stream)?;
    for (i, m) in msgs.iter().enumerate() {
        no_nul(&target, &format!("/msgs/{i}/name"), &m.name)?;
        no_nul_json(&target, &format!("/msgs/{i}/data"), m.data.get())?;
    }
    let json = serde_json::to_string(meta).map_err(|e| StoreError::backend("commit", e))?;
    no_nul_json(&target, "/meta", &json)?;
    Ok(json)
}

impl PostgresStore {
    /// The version of `stream` (`-1` when empty).
    async fn head(&self, stream: &str) -> Result<Version, StoreError> {
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(self.sql.head.clone()))
            .bind(stream)
            .fetch_one(&self.pool)
            .await
            .map_err(refused("commit", stream))
    }

    /// Commits `msgs` and records `marks` in one call of the tenant's commit function.
    pub(crate) async fn commit_in(
        &self,
        stream: &str,
        msgs: &[Message],
        meta: &EventMeta,
        expected: Option<Version>,
        marks: &[(usize, Subscription)],
    ) -> Result<Vec<Committed>, StoreError> {
        let meta_json = validate_commit(stream, msgs, meta)?;
        validate_subs(marks.iter().map(|(_, s)| s))?;
        self.live()?;
        if msgs.is_empty() {
            // Nothing to write, but the expected version is still checked.
            if let Some(expected) = expected {
                let actual = self.head(stream).await?;
                if actual != expected {
                    return Err(conflict(stream, expected, actual));
                }
            }
            return Ok(Vec::new());
        }
        // Out-of-range indexes mark nothing: leave them out.
        let args = group::Args {
            stream,
            names: msgs.iter().map(|m| m.name.as_str()).collect(),
            datas: msgs.iter().map(|m| m.data.get()).collect(),
            meta: &meta_json,
            expected,
            marks: marks
                .iter()
                .filter(|(i, _)| *i < msgs.len())
                .map(|(i, s)| {
                    (
                        i32::try_from(*i).unwrap_or(i32::MAX),
                        s.stream.as_str(),
                        s.source.as_deref(),
                        s.source_is_pattern,
                        s.priority,
                    )
                })
                .collect(),
        };
        let stored = match self.group.commit(args).await? {
            group::Outcome::Stored(stored) => stored,
            group::Outcome::Conflict { expected, actual } => {
                return Err(conflict(stream, expected, actual));
            }
            group::Outcome::Closed => {
                return Err(StreamClosedError {
                    stream: stream.to_owned(),
                }
                .into());
            }
        };
        let shared = Arc::new(meta.clone());
        let mut committed = Vec::with_capacity(msgs.len());
        for ((version, id, created), m) in stored.into_iter().zip(msgs) {
            committed.push(Committed {
                id,
                name: m.name.clone(),
                data: m.data.clone(),
                stream: stream.to_owned(),
                version,
                created,
                meta: Arc::clone(&shared),
            });
        }
        if committed.len() != msgs.len() {
            return Err(StoreError::backend(
                "commit",
                format!(
                    "the commit function returned {} rows for {} events",
                    committed.len(),
                    msgs.len()
                ),
            ));
        }
        Ok(committed)
    }

    /// Streams the events `q` selects to `sink`.
    pub(crate) async fn query_in(
        &self,
        q: &Query,
        sink: &mut (dyn for<'e> FnMut(&'e Committed) + Send),
    ) -> Result<usize, StoreError> {
        // The pattern is checked first, even when the query selects nothing.
        let cond = match &q.stream {
            Some(m) => Some(codec::stream_match(m, "query", "/stream")?),
            None => None,
        };
        self.live()?;
        let names: Option<Vec<String>> = q.names.as_ref().map(|n| {
            // No stored name holds a NUL: such a name matches nothing.
            n.iter().filter(|s| !s.contains('\0')).cloned().collect()
        });
        if matches!(&names, Some(n) if n.is_empty())
            || q.limit == Some(0)
            || matches!(cond, Some(Cond::Nothing))
            || q.correlation.as_ref().is_some_and(|c| c.contains('\0'))
        {
            return Ok(0);
        }
        // Reads of one exact stream are safe by construction (its commits serialize on the
        // stream's lock and take their ids under it); every other read stops at the horizon.
        let horizon = match &cond {
            Some(Cond::Eq(_)) => None,
            _ => Some(self.horizon().await?),
        };
        // One exact stream: its name is not read back from every row.
        let one_stream = match &cond {
            Some(Cond::Eq(s)) => Some(s.clone()),
            _ => None,
        };
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {} FROM {} WHERE true",
            codec::event_columns(q.skip_meta, one_stream.is_some()),
            self.sql.events
        ));
        let mut order = "id";
        match cond {
            Some(Cond::Eq(s)) => {
                order = "version";
                qb.push(" AND stream = ").push_bind(s);
            }
            Some(Cond::Like(p)) => {
                qb.push(" AND stream LIKE ").push_bind(p);
            }
            Some(Cond::Nothing) | None => {}
        }
        if let Some(h) = horizon {
            qb.push(" AND id <= ").push_bind(h);
        }
        if let Some(names) = names {
            qb.push(" AND name = ANY(").push_bind(names).push(")");
        }
        // In one stream, versions increase with ids: a bound on the id becomes a bound on
        // the version too, so the read seeks in `(stream, version)` and costs what it
        // returns, whatever the stream's length (the events since a cached state, or a
        // snapshot).
        let exact = match &q.stream {
            Some(StreamMatch::Exact(stream)) => Some(stream),
            _ => None,
        };
        if let Some(after) = q.after {
            qb.push(" AND id > ").push_bind(after);
            if let Some(stream) = exact {
                qb.push(format!(
                    " AND version > coalesce((SELECT b.version FROM {} b WHERE b.id = ",
                    self.sql.events
                ))
                .push_bind(after)
                .push(" AND b.stream = ")
                .push_bind(stream.clone())
                .push("), -1)");
            }
        } else if let (true, Some(stream)) = (q.with_snaps, exact) {
            qb.push(format!(
                " AND version >= coalesce((SELECT b.version FROM {} b WHERE b.stream = ",
                self.sql.events
            ))
            .push_bind(stream.clone())
            .push(format!(
                " AND b.name = '{SNAPSHOT_EVENT}' ORDER BY b.id DESC LIMIT 1), 0)"
            ));
        }
        if let Some(before) = q.before {
            qb.push(" AND id < ").push_bind(before);
        }
        if let Some(t) = q.created_after {
            qb.push(" AND created > ").push_bind(codec::floor_micros(t));
        }
        if let Some(t) = q.created_before {
            qb.push(" AND created < ").push_bind(codec::ceil_micros(t));
        }
        if let Some(c) = &q.correlation {
            qb.push(" AND (meta->>'correlation') = ")
                .push_bind(c.clone());
        }
        if !q.with_snaps {
            qb.push(format!(" AND name <> '{SNAPSHOT_EVENT}'"));
        }
        qb.push(" ORDER BY ")
            .push(order)
            .push(if q.backward { " DESC" } else { " ASC" });
        if let Some(limit) = q.limit {
            qb.push(" LIMIT ").push_bind(codec::count(limit));
        }
        let err = backend("query");
        let mut conn = self.spare.take().await.map_err(&err)?;
        let mut rows = qb.build().fetch(&mut *conn);
        let mut metas = codec::MetaCache::for_query(q);
        let mut n = 0;
        while let Some(row) = next(&mut rows).await {
            let row = row.map_err(&err)?;
            sink(&codec::event(&row, &mut metas, one_stream.as_deref())?);
            n += 1;
        }
        drop(rows);
        conn.keep();
        Ok(n)
    }

    /// Deletes every event, subscription, mark and the checkpoint, and restarts ids at 1.
    pub(crate) async fn drop_all_in(&self) -> Result<(), StoreError> {
        self.live()?;
        sqlx::query(AssertSqlSafe(self.sql.drop_all.clone()))
            .execute(&self.pool)
            .await
            .map_err(backend("drop"))?;
        Ok(())
    }
}

/// The next item of a stream.
async fn next<S: Stream + Unpin + ?Sized>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

fn conflict(stream: &str, expected: Version, actual: Version) -> StoreError {
    ConcurrencyError {
        stream: stream.to_owned(),
        expected,
        actual,
    }
    .into()
}
