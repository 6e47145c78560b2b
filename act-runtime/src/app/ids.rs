//! Time-ordered unique ids (UUID v7) without a system call per id.
//!
//! `Uuid::now_v7` asks the OS for fresh random bytes on every call (a `getrandom` system
//! call: about a tenth of an in-memory `execute`). Ids here only need to be unique across
//! the processes sharing a store, not unpredictable, so each thread seeds a fast generator
//! once from the OS and draws the 74 random bits of each id from it.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // One OS-random UUID per thread; never zero (xorshift's fixed point).
    (uuid::Uuid::now_v7().as_u128() as u64) | 1
}

/// The next 64 random bits of this thread (xorshift64*).
pub(crate) fn random_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A new UUID v7: the current Unix time in milliseconds, then random bits.
pub(crate) fn uuid_v7() -> uuid::Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let (a, b) = (random_u64().to_le_bytes(), random_u64().to_le_bytes());
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&a);
    bytes[8..].copy_from_slice(&b[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_unique_and_ordered_by_millisecond() {
        let ids: Vec<uuid::Uuid> = (0..10_000).map(|_| uuid_v7()).collect();
        assert!(ids.iter().all(|u| u.get_version_num() == 7));
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let ms = |u: &uuid::Uuid| u.as_u128() >> 80;
        assert!(ids.windows(2).all(|w| ms(&w[0]) <= ms(&w[1])));
        let other = std::thread::spawn(uuid_v7).join().unwrap();
        assert!(!unique.contains(&other));
    }
}
