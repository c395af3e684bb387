//! Row versions: the warehouse keeps the highest `version` per fact id, so the version
//! decides which snapshot of an object wins, whatever order events arrive in.
//!
//! Layout, most significant first: event `created` (32 bits) · status rank (4 bits) ·
//! resolved links (2 bits) · hash of the event id (26 bits). So a newer snapshot wins; in the
//! same second a further-along status wins (`open` never overwrites `paid`,
//! stripe-webhooks.md §10 item 11); then a row with more links resolved wins over the same
//! snapshot emitted before its parent arrived; the event-id hash is the stable tie-break.

/// Versions count seconds from 2010-01-01 so they fit in 31 bits until 2078 and the whole
/// version stays below `i64::MAX` (SQLite integers are signed).
const EPOCH: i64 = 1_262_304_000;

/// Packs a version. `created` is counted from 2010 and clamped to 31 bits, `rank` to 4
/// bits, `links` to 2 bits.
pub fn version(created: i64, rank: u8, links: u8, event_id: &str) -> u64 {
    let created = (created - EPOCH).clamp(0, i64::from(i32::MAX)) as u64;
    let rank = u64::from(rank.min(15));
    let links = u64::from(links.min(3));
    (created << 32) | (rank << 28) | (links << 26) | (fnv1a(event_id.as_bytes()) & ((1 << 26) - 1))
}

/// The version of a subscription-item interval: the earlier it is known to close, the
/// higher, so the closest following snapshot always wins (`None` = still open = lowest).
pub fn interval_version(valid_to: Option<u32>) -> u64 {
    u64::from(u32::MAX - valid_to.unwrap_or(u32::MAX))
}

/// FNV-1a, 64 bits: stable across processes and releases (unlike `std`'s hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `version` with its resolved-links bits replaced.
pub fn with_links(version: u64, links: u8) -> u64 {
    (version & !(3 << 26)) | (u64::from(links.min(3)) << 26)
}

/// The links bits of a version.
pub fn links_of(version: u64) -> u8 {
    ((version >> 26) & 3) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_then_further_then_more_linked_wins() {
        let t = 1_769_907_602;
        let base = version(t, 1, 0, "evt_a");
        assert!(version(t + 1, 0, 0, "evt_b") > base);
        assert!(version(t, 3, 0, "evt_b") > base);
        assert!(version(t, 1, 1, "evt_a") > base);
        assert!(version(t, 1, 1, "evt_zzz") > version(t, 1, 0, "evt_a"));
        assert_eq!(version(t, 1, 0, "evt_a"), base, "deterministic");
        let late = version(4_000_000_000, 15, 3, "evt_z");
        assert!(late < i64::MAX as u64 && late > version(1_800_000_000, 15, 3, "evt_z"));
    }

    #[test]
    fn intervals_closing_earlier_win() {
        assert!(interval_version(Some(10)) > interval_version(Some(20)));
        assert!(interval_version(Some(20)) > interval_version(None));
    }
}
