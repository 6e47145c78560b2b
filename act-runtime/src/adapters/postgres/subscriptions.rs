//! The subscription table: subscribe, claim, ack, block, reset, unblock, listing.
//!
//! Claims lease with `FOR UPDATE SKIP LOCKED`, so concurrent claimers never share a row and
//! never wait for one another. Every multi-row write sorts its rows by stream (no deadlocks
//! between overlapping writers); a deadlock or serialization failure is retried.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Row};

use super::PostgresStore;
use super::codec::{self, Cond, backend, is_transient, no_nul};
use crate::error::{Report, StoreError};
use crate::model::EventId;
use crate::ports::{Lease, StreamFilter, StreamPosition, Subscribed, Subscription};

/// How many times a statement that hit a deadlock or serialization failure is tried.
const ATTEMPTS: usize = 5;

/// Runs `f`, again when it fails with a deadlock or a serialization failure.
pub(crate) async fn retry<T, F, Fut>(operation: &'static str, mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                tracing::debug!(operation, attempt, error = %Report::new(&e), "postgres store: retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(2 * attempt as u64)).await;
            }
            Err(e) => return Err(backend(operation)(e)),
        }
    }
}

/// Validates subscriptions: NUL characters, and sources outside the portable grammar (which
/// the drain could never read exactly, so they are refused up front).
pub(crate) fn validate_subs<'a>(
    subs: impl IntoIterator<Item = &'a Subscription>,
) -> Result<(), StoreError> {
    for (i, s) in subs.into_iter().enumerate() {
        no_nul("subscription", &format!("/{i}/stream"), &s.stream)?;
        if let Some(source) = &s.source {
            no_nul("subscription", &format!("/{i}/source"), source)?;
            if s.source_is_pattern {
                codec::validate_pattern(source, "subscription", &format!("/{i}/source"))?;
            }
        }
    }
    Ok(())
}

/// Merges subscriptions naming one stream twice, as applying them one after the other
/// would: the highest priority and mark, the last source. Sorted by stream.
fn merge(subs: &[Subscription]) -> Vec<Subscription> {
    let mut by: HashMap<&str, Subscription> = HashMap::with_capacity(subs.len());
    for s in subs {
        match by.get_mut(s.stream.as_str()) {
            None => {
                by.insert(&s.stream, s.clone());
            }
            Some(m) => {
                m.priority = m.priority.max(s.priority);
                m.correlated_at = match (m.correlated_at, s.correlated_at) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                m.source.clone_from(&s.source);
                m.source_is_pattern = s.source_is_pattern;
            }
        }
    }
    let mut out: Vec<Subscription> = by.into_values().collect();
    out.sort_by(|a, b| a.stream.cmp(&b.stream));
    out
}

/// Whether `v` names some item twice.
fn has_duplicates<'a>(v: impl IntoIterator<Item = &'a str>) -> bool {
    let mut seen = HashSet::new();
    v.into_iter().any(|s| !seen.insert(s))
}

impl PostgresStore {
    /// Folds pending reaction marks into the subscription rows.
    pub(crate) async fn fold(&self, operation: &'static str) -> Result<(), StoreError> {
        retry(operation, || {
            self.spare
                .execute(sqlx::query(AssertSqlSafe(self.sql.fold.clone())))
        })
        .await
        .map(drop)
    }

    pub(crate) async fn subscribe_in(
        &self,
        subs: &[Subscription],
        checkpoint: Option<EventId>,
    ) -> Result<Subscribed, StoreError> {
        validate_subs(subs)?;
        self.live()?;
        let subs = merge(subs);
        let streams: Vec<&str> = subs.iter().map(|s| s.stream.as_str()).collect();
        let sources: Vec<Option<&str>> = subs.iter().map(|s| s.source.as_deref()).collect();
        let patterns: Vec<bool> = subs.iter().map(|s| s.source_is_pattern).collect();
        let priorities: Vec<i32> = subs.iter().map(|s| s.priority).collect();
        let marks: Vec<Option<i64>> = subs.iter().map(|s| s.correlated_at).collect();
        let row = retry("subscribe", || {
            self.spare.fetch_one(
                sqlx::query(AssertSqlSafe(self.sql.subscribe.clone()))
                    .bind(&streams)
                    .bind(&sources)
                    .bind(&patterns)
                    .bind(&priorities)
                    .bind(&marks)
                    .bind(checkpoint),
            )
        })
        .await?;
        let err = backend("subscribe");
        let subscribed: i64 = row.try_get(0).map_err(&err)?;
        Ok(Subscribed {
            subscribed: usize::try_from(subscribed).unwrap_or(0),
            watermark: row.try_get(1).map_err(&err)?,
            checkpoint: row.try_get(2).map_err(&err)?,
        })
    }

    pub(crate) async fn claim_in(
        &self,
        lagging: usize,
        leading: usize,
        by: &str,
        lease: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        no_nul("claim", "/by", by)?;
        self.live()?;
        if lagging == 0 && leading == 0 {
            return Ok(Vec::new());
        }
        let fair = if lagging >= 2 {
            (lagging / 4).max(1)
        } else {
            0
        };
        let lease_us = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 2);
        let rows = retry("claim", || {
            self.spare.fetch_all(
                sqlx::query(AssertSqlSafe(self.sql.claim.clone()))
                    .bind(codec::count(lagging - fair))
                    .bind(codec::count(fair))
                    .bind(codec::count(leading))
                    .bind(by)
                    .bind(lease_us),
            )
        })
        .await?;
        let err = backend("claim");
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let arm: i32 = row.try_get(11).map_err(&err)?;
            claimed.push((arm, codec::position(row, "claim")?));
        }
        // Each arm's own order (the rows come back in no particular order): priority first,
        // then the fairness reserve by lowest watermark, then the leading frontier.
        claimed.sort_by(|(a, x), (b, y)| {
            a.cmp(b).then_with(|| match a {
                0 => y
                    .priority
                    .cmp(&x.priority)
                    .then(x.at.cmp(&y.at))
                    .then_with(|| x.stream.cmp(&y.stream)),
                1 => x.at.cmp(&y.at).then_with(|| x.stream.cmp(&y.stream)),
                _ => y.at.cmp(&x.at).then_with(|| x.stream.cmp(&y.stream)),
            })
        });
        Ok(claimed
            .into_iter()
            .map(|(arm, p)| codec::lease(p, arm < 2))
            .collect())
    }

    pub(crate) async fn ack_in(&self, leases: &[Lease]) -> Result<Vec<Lease>, StoreError> {
        self.live()?;
        // A name or holder with a NUL matches no stored row.
        let leases: Vec<&Lease> = leases
            .iter()
            .filter(|l| !l.stream.contains('\0') && !l.by.contains('\0'))
            .collect();
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let due = |l: &Lease| l.due.map(codec::micros_until);
        if has_duplicates(leases.iter().map(|l| l.stream.as_str())) {
            // One stream acked twice in a call: apply the acks one after the other.
            return self.ack_each(&leases).await;
        }
        let acked: HashSet<String> = {
            let streams: Vec<&str> = leases.iter().map(|l| l.stream.as_str()).collect();
            let ats: Vec<i64> = leases.iter().map(|l| l.at).collect();
            let bys: Vec<&str> = leases.iter().map(|l| l.by.as_str()).collect();
            let dues: Vec<Option<i64>> = leases.iter().map(|l| due(l)).collect();
            let retries: Vec<i32> = leases.iter().map(|l| l.retry).collect();
            let rows = retry("ack", || {
                self.spare.fetch_all(
                    sqlx::query(AssertSqlSafe(self.sql.ack.clone()))
                        .bind(&streams)
                        .bind(&ats)
                        .bind(&bys)
                        .bind(&dues)
                        .bind(&retries),
                )
            })
            .await?;
            rows.iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()
                .map_err(backend("ack"))?
        };
        let mut out = Vec::with_capacity(acked.len());
        for l in leases {
            if acked.contains(&l.stream) {
                out.push(l.clone());
            } else {
                tracing::warn!(
                    stream = %l.stream,
                    by = %l.by,
                    "ack dropped: the lease is not held by its holder any more"
                );
            }
        }
        Ok(out)
    }

    /// Acks `leases` one after the other in one transaction.
    async fn ack_each(&self, leases: &[&Lease]) -> Result<Vec<Lease>, StoreError> {
        let err = backend("ack");
        let mut tx = self.pool.begin().await.map_err(&err)?;
        let mut out = Vec::new();
        for l in leases {
            let n = sqlx::query(AssertSqlSafe(self.sql.ack_one.clone()))
                .bind(&l.stream)
                .bind(l.at)
                .bind(&l.by)
                .bind(l.due.map(codec::micros_until))
                .bind(l.retry)
                .execute(&mut *tx)
                .await
                .map_err(&err)?
                .rows_affected();
            if n > 0 {
                out.push((*l).clone());
            } else {
                tracing::warn!(
                    stream = %l.stream,
                    by = %l.by,
                    "ack dropped: the lease is not held by its holder any more"
                );
            }
        }
        tx.commit().await.map_err(&err)?;
        Ok(out)
    }

    pub(crate) async fn block_in(
        &self,
        leases: &[(Lease, String)],
    ) -> Result<Vec<StreamPosition>, StoreError> {
        self.live()?;
        // Names or holders with a NUL match no stored row; an error text keeps everything
        // but its NULs.
        let leases: Vec<(&Lease, String)> = leases
            .iter()
            .filter(|(l, _)| !l.stream.contains('\0') && !l.by.contains('\0'))
            .map(|(l, e)| (l, codec::lossless_enough(e)))
            .collect();
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        // The rows returned show every mark committed so far.
        self.fold("block").await?;
        if has_duplicates(leases.iter().map(|(l, _)| l.stream.as_str())) {
            // One stream blocked twice in a call: apply the blocks one after the other.
            return self.block_each(&leases).await;
        }
        let streams: Vec<&str> = leases.iter().map(|(l, _)| l.stream.as_str()).collect();
        let bys: Vec<&str> = leases.iter().map(|(l, _)| l.by.as_str()).collect();
        let errors: Vec<&str> = leases.iter().map(|(_, e)| e.as_str()).collect();
        let ats: Vec<i64> = leases.iter().map(|(l, _)| l.at).collect();
        let rows = retry("block", || {
            self.spare.fetch_all(
                sqlx::query(AssertSqlSafe(self.sql.block.clone()))
                    .bind(&streams)
                    .bind(&bys)
                    .bind(&errors)
                    .bind(&ats),
            )
        })
        .await?;
        let mut blocked: HashMap<String, StreamPosition> = rows
            .iter()
            .map(|r| codec::position(r, "block").map(|p| (p.stream.clone(), p)))
            .collect::<Result<_, _>>()?;
        // In input order.
        Ok(streams.iter().filter_map(|s| blocked.remove(*s)).collect())
    }

    /// Blocks `leases` one after the other in one transaction.
    async fn block_each(
        &self,
        leases: &[(&Lease, String)],
    ) -> Result<Vec<StreamPosition>, StoreError> {
        let err = backend("block");
        let mut tx = self.pool.begin().await.map_err(&err)?;
        let mut out = Vec::new();
        for (l, error) in leases {
            let rows = sqlx::query(AssertSqlSafe(self.sql.block.clone()))
                .bind([l.stream.as_str()].as_slice())
                .bind([l.by.as_str()].as_slice())
                .bind([error.as_str()].as_slice())
                .bind([l.at].as_slice())
                .fetch_all(&mut *tx)
                .await
                .map_err(&err)?;
            for r in &rows {
                out.push(codec::position(r, "block")?);
            }
        }
        tx.commit().await.map_err(&err)?;
        Ok(out)
    }

    /// Runs `sql` over the named rows; returns how many it changed.
    async fn update_named(
        &self,
        operation: &'static str,
        sql: &std::sync::Arc<str>,
        streams: &[String],
    ) -> Result<usize, StoreError> {
        self.live()?;
        let mut names: Vec<&str> = streams
            .iter()
            .map(String::as_str)
            .filter(|s| !s.contains('\0'))
            .collect();
        if names.is_empty() {
            return Ok(0);
        }
        names.sort_unstable();
        names.dedup();
        // Rows only marked so far count too.
        self.fold(operation).await?;
        let n = retry(operation, || {
            self.spare
                .execute(sqlx::query(AssertSqlSafe(sql.clone())).bind(&names))
        })
        .await?
        .rows_affected();
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(crate) async fn reset_in(&self, streams: &[String]) -> Result<usize, StoreError> {
        self.update_named("reset", &self.sql.reset, streams).await
    }

    pub(crate) async fn unblock_in(&self, streams: &[String]) -> Result<usize, StoreError> {
        self.update_named("unblock", &self.sql.unblock, streams)
            .await
    }

    pub(crate) async fn query_streams_in(
        &self,
        filter: &StreamFilter,
    ) -> Result<Vec<StreamPosition>, StoreError> {
        let cond = match &filter.stream {
            Some(m) => Some(codec::stream_match(m, "stream filter", "/stream")?),
            None => None,
        };
        self.live()?;
        // Pending marks first, so a commit's marks show at once.
        self.fold("query_streams").await?;
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {} FROM {} WHERE true",
            codec::STREAM_COLUMNS,
            self.sql.streams
        ));
        match cond {
            Some(Cond::Nothing) => return Ok(Vec::new()),
            Some(Cond::Eq(s)) => {
                qb.push(" AND stream = ").push_bind(s);
            }
            Some(Cond::Like(p)) => {
                qb.push(" AND stream LIKE ").push_bind(p);
            }
            None => {}
        }
        if let Some(blocked) = filter.blocked {
            qb.push(" AND blocked = ").push_bind(blocked);
        }
        if let Some(after) = &filter.after {
            if after.contains('\0') {
                // Compare with the part before the NUL: every name above it is above the
                // whole (no stored name holds a NUL).
                let cut = after.split('\0').next().unwrap_or_default().to_owned();
                qb.push(" AND stream > ").push_bind(cut);
            } else {
                qb.push(" AND stream > ").push_bind(after.clone());
            }
        }
        qb.push(" ORDER BY stream ASC LIMIT ")
            .push_bind(codec::count(filter.limit.unwrap_or(100)));
        let rows = self
            .spare
            .fetch_all(qb.build())
            .await
            .map_err(backend("query_streams"))?;
        rows.iter()
            .map(|r| codec::position(r, "query_streams"))
            .collect()
    }
}
