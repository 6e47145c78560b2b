//! How far behind the log each projection is.

use crate::app::Act;
use crate::error::ActError;
use crate::model::EventId;
use crate::ports::{Query, StreamFilter, StreamMatch};

/// The catch-up status of one projection (see [`Act::projections`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: &'static str,
    /// The id of the last event its live model was fed (`-1`: none yet).
    pub position: EventId,
    /// The id of the last of its events in the log (`None`: the log has none).
    pub head: Option<EventId>,
    /// How many of its events the log holds after `position`: how far behind it is.
    pub behind: u64,
    /// Whether its subscription is blocked, and why.
    pub blocked: Option<String>,
    /// Failed attempts since the last progress.
    pub retry: i32,
}

impl ProjectionStatus {
    /// Whether the live model has every event of the log.
    pub fn caught_up(&self) -> bool {
        self.behind == 0
    }
}

impl Act {
    /// The catch-up status of every projection: where its live model is, the log's head of
    /// its events, and how many it has yet to apply. Counting reads the events it is behind
    /// by (without their metadata).
    ///
    /// ```
    /// # use act_runtime::prelude::*;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let app = act().build()?;
    /// assert!(app.projections().await?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn projections(&self) -> Result<Vec<ProjectionStatus>, ActError> {
        self.check_live()?;
        let store = self.store();
        let mut out = Vec::new();
        for p in self.reactions().projections() {
            let rows = store
                .query_streams(&StreamFilter {
                    stream: Some(StreamMatch::Exact(p.name().to_owned())),
                    ..StreamFilter::default()
                })
                .await?;
            let row = rows.into_iter().find(|r| r.stream == p.name());
            let position = row.as_ref().map_or(-1, |r| r.at);
            let names = || p.events().iter().copied();
            let mut head = None;
            store
                .query(&Query::all().names(names()).backward().limit(1), &mut |e| {
                    head = Some(e.id)
                })
                .await?;
            let mut after = Query::all().names(names()).after(position);
            after.skip_meta = true;
            let behind = store.query(&after, &mut |_| {}).await? as u64;
            out.push(ProjectionStatus {
                name: p.name(),
                position,
                head,
                behind,
                blocked: row
                    .as_ref()
                    .filter(|r| r.blocked)
                    .map(|r| r.error.clone().unwrap_or_default()),
                retry: row.map_or(0, |r| r.retry),
            });
        }
        Ok(out)
    }
}
