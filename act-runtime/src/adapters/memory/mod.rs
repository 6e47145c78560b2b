//! The in-memory adapters: fast, ephemeral, the oracle the conformance kit compares others to.

mod cache;
mod pattern;
mod store;

pub use cache::InMemoryCache;
pub use store::InMemoryStore;
