//! Projections: read models kept up to date from events, drained like reactions.
//!
//! ```text
//! commit ──► mark `NAME` (a static target) ──► drain: claim `NAME` → fetch its events
//!                                               → apply (one by one, or one batch)
//!                                               → ack / retry / block, like a reaction
//! rebuild: clear_next → apply every event to Model::Next (progress) → promote_next
//!          → catch the promoted copy up; the live copy is served throughout
//! ```
//!
//! * `projection.rs`: the contract — [`Projection`], the [`Batch`] it receives, the
//!   [`Model`] copy a batch is for, and the [`ProjectionGap`] a model reports when it missed
//!   events.
//! * `entry.rs`: the type-erased registry entry.
//! * `rebuild.rs`: [`Act::rebuild`](crate::app::Act::rebuild) without downtime.
//! * `status.rs`: [`Act::projections`](crate::app::Act::projections), how far behind each
//!   projection is.
//! * `progress.rs` (feature `progress`): a terminal progress bar for rebuilds.

mod entry;
#[cfg(feature = "progress")]
mod progress;
mod projection;
mod rebuild;
mod status;

pub(crate) use entry::is_gap;
pub use entry::{ProjectionEntry, Undecodable};
#[cfg(feature = "progress")]
pub use progress::progress_bar;
pub use projection::{Batch, Model, Projection, ProjectionGap};
pub use rebuild::{RebuildError, RebuildOptions, RebuildPhase, RebuildProgress, Rebuilt};
pub use status::ProjectionStatus;
