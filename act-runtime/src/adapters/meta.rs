//! Decoding the meta of rows read back by the SQL adapters.

use std::sync::Arc;

use crate::model::EventMeta;
use crate::ports::Query;

/// The metas of one query's rows: the events of one commit share one meta text, so they
/// share one parsed [`EventMeta`]; with [`Query::skip_meta`] nothing is decoded and every
/// event gets one empty meta.
pub(crate) struct MetaCache {
    last: Option<(String, Arc<EventMeta>)>,
    skipped: Option<Arc<EventMeta>>,
}

impl MetaCache {
    /// A cache for the rows of `q`.
    pub(crate) fn for_query(q: &Query) -> Self {
        Self {
            last: None,
            skipped: q.skip_meta.then(|| Arc::new(EventMeta::empty())),
        }
    }

    /// The meta of the next row: `text()` reads its meta column (only called when the
    /// query wants metas).
    pub(crate) fn next<'t, E>(
        &mut self,
        text: impl FnOnce() -> Result<&'t str, E>,
    ) -> Result<Arc<EventMeta>, MetaError<E>> {
        if let Some(empty) = &self.skipped {
            return Ok(Arc::clone(empty));
        }
        let text = text().map_err(MetaError::Column)?;
        if let Some((t, meta)) = &self.last
            && t == text
        {
            return Ok(Arc::clone(meta));
        }
        let meta = Arc::new(serde_json::from_str::<EventMeta>(text).map_err(MetaError::Json)?);
        self.last = Some((text.to_owned(), Arc::clone(&meta)));
        Ok(meta)
    }
}

/// Why a row's meta could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MetaError<E> {
    /// The column could not be read as text.
    #[error("{0}")]
    Column(E),
    /// The text is not an [`EventMeta`].
    #[error("{0}")]
    Json(serde_json::Error),
}
