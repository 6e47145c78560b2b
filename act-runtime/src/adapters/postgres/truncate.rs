//! Truncate: replaces streams' events with one seed event at version 0, in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Connection, Row};

use super::PostgresStore;
use super::codec::{backend, no_nul_json, refused};
use crate::error::StoreError;
use crate::model::{Committed, SNAPSHOT_EVENT, TOMBSTONE_EVENT};
use crate::ports::{TruncateTarget, Truncated};

impl PostgresStore {
    pub(crate) async fn truncate_in(
        &self,
        targets: &[TruncateTarget],
    ) -> Result<HashMap<String, Truncated>, StoreError> {
        let mut metas = Vec::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            let meta =
                serde_json::to_string(&t.meta).map_err(|e| StoreError::backend("truncate", e))?;
            let target = format!("truncate of stream `{}`", t.stream.escape_debug());
            if let Some(s) = &t.snapshot {
                no_nul_json(&target, &format!("/{i}/snapshot"), s.get())?;
            }
            no_nul_json(&target, &format!("/{i}/meta"), &meta)?;
            metas.push(meta);
        }
        self.live()?;
        let mut out = HashMap::new();
        // A name with a NUL names no stored stream.
        let mut locks: Vec<&str> = targets
            .iter()
            .map(|t| t.stream.as_str())
            .filter(|s| !s.contains('\0'))
            .collect();
        if locks.is_empty() {
            return Ok(out);
        }
        // The streams' commit locks, in one sorted pass (no deadlock with other truncates);
        // then the targets in the order given, as the port says (a stream named twice is
        // cut twice).
        locks.sort_unstable();
        locks.dedup();
        let err = backend("truncate");
        let mut conn = self.pool.acquire().await.map_err(&err)?;
        let mut tx = conn.begin().await.map_err(&err)?;
        sqlx::query(AssertSqlSafe(self.sql.stream_lock.clone()))
            .bind(&locks)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        for (t, meta_json) in targets.iter().zip(&metas) {
            if t.stream.contains('\0') {
                continue;
            }
            if let Some(expected) = t.expected_head {
                // Under the stream's commit lock: the head cannot move before the delete.
                let head: Option<i64> = sqlx::query_scalar(AssertSqlSafe(self.sql.head_id.clone()))
                    .bind(&t.stream)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(&err)?;
                if head != Some(expected) {
                    continue;
                }
            }
            let deleted = sqlx::query(AssertSqlSafe(self.sql.delete_stream.clone()))
                .bind(&t.stream)
                .execute(&mut *tx)
                .await
                .map_err(&err)?
                .rows_affected();
            if deleted == 0 {
                continue;
            }
            let (name, data) = match &t.snapshot {
                Some(s) => (SNAPSHOT_EVENT, s.clone()),
                None => (
                    TOMBSTONE_EVENT,
                    serde_json::value::RawValue::from_string("{}".to_owned())
                        .map_err(|e| StoreError::backend("truncate", e))?,
                ),
            };
            let row = sqlx::query(AssertSqlSafe(self.sql.insert_seed.clone()))
                .bind(&t.stream)
                .bind(name)
                .bind(data.get())
                .bind(meta_json)
                .fetch_one(&mut *tx)
                .await
                .map_err(refused("truncate", &t.stream))?;
            let id: i64 = row.try_get(0).map_err(&err)?;
            let created: DateTime<Utc> = row.try_get(1).map_err(&err)?;
            let committed = Committed {
                id,
                name: name.to_owned(),
                data,
                stream: t.stream.clone(),
                version: 0,
                created,
                meta: Arc::new(t.meta.clone()),
            };
            out.insert(t.stream.clone(), Truncated { deleted, committed });
        }
        tx.commit().await.map_err(&err)?;
        Ok(out)
    }
}
