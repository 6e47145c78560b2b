//! A terminal progress bar for rebuilds (feature `progress`).

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use super::rebuild::{RebuildPhase, RebuildProgress};

/// A progress reporter for [`RebuildOptions::on_progress`](super::RebuildOptions::on_progress)
/// that draws a bar on the terminal (stderr; nothing when it is not a terminal): the
/// position in the log against its head when the rebuild started, the events applied, and
/// the phase.
///
/// ```
/// use act_runtime::projections::{RebuildOptions, progress_bar};
///
/// let options = RebuildOptions::default().on_progress(progress_bar());
/// # let _ = options;
/// ```
pub fn progress_bar() -> impl Fn(&RebuildProgress) + Send + Sync + 'static {
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    move |p: &RebuildProgress| {
        let mut bar = bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::new(u64::try_from(p.head.max(0)).unwrap_or(0));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_prefix(format!("rebuilding {}", p.projection));
            b
        });
        if let Ok(position) = u64::try_from(p.position) {
            if position > b.length().unwrap_or(0) {
                b.set_length(position);
            }
            b.set_position(position);
        }
        let phase = match p.phase {
            RebuildPhase::Filling => "filling",
            RebuildPhase::CatchingUp => "catching up",
            RebuildPhase::Done => "done",
        };
        b.set_message(format!("{} events, {phase}", p.applied));
        if p.phase == RebuildPhase::Done {
            b.finish();
        }
    }
}
