//! Row versions: the warehouse keeps the highest `version` per fact id, so the version
//! decides which snapshot of an object wins, whatever order events arrive in.
//!
//! Layout, most significant first: event `created` (32 bits) · status rank (4 bits) ·
//! resolved links as a bit mask (3 bits: invoice, subscription, customer) · progress (17
//! bits) · hash of the event id (8 bits). So a newer snapshot wins; in the same second a
//! further-along status wins (`open` never overwrites `paid`: Stripe sends several events in
//! the same second and in no particular order,
//! <https://docs.stripe.com/webhooks#event-ordering>); then, for the same snapshot, a row
//! with more links resolved wins (links only ever get added, so a later mask is a superset,
//! hence numerically greater, and equal masks mean equal content); then the snapshot whose
//! fields that only grow are further along (a charge's `amount_refunded`, an invoice's
//! `amount_paid` and `attempt_count`, …, packed by [`grow`]); the event-id hash is the
//! stable tie-break of what nothing in the payload decides.
//!
//! Subscription snapshots keep the layout from before progress existed
//! ([`snapshot_version`]): their interval rows' ids embed the snapshot's version, so a new
//! layout would give every interval a second id.

/// Versions count seconds from 2010-01-01 so they fit in 31 bits until 2078 and the whole
/// version stays below `i64::MAX` (SQLite integers are signed).
const EPOCH: i64 = 1_262_304_000;

/// Packs a version. `created` is counted from 2010 and clamped to 31 bits, `rank` to 4
/// bits, `links` (a mask, see [`links_mask`]) to 3 bits.
pub fn version(created: i64, rank: u8, links: u8, progress: u32, event_id: &str) -> u64 {
    let progress = u64::from(progress.min(PROGRESS_MAX));
    head(created, rank, links) | (progress << 8) | (fnv1a(event_id.as_bytes()) & 0xff)
}

/// The largest progress value (17 bits).
pub const PROGRESS_MAX: u32 = (1 << 17) - 1;

/// The version of a subscription snapshot: the layout without progress (25 hash bits).
pub fn snapshot_version(created: i64, rank: u8, event_id: &str) -> u64 {
    head(created, rank, 0) | (fnv1a(event_id.as_bytes()) & ((1 << 25) - 1))
}

/// Created, rank and links in their places.
fn head(created: i64, rank: u8, links: u8) -> u64 {
    let created = (created - EPOCH).clamp(0, i64::from(i32::MAX)) as u64;
    let rank = u64::from(rank.min(15));
    let links = u64::from(links & 7);
    (created << 32) | (rank << 28) | (links << 25)
}

/// A value that only grows, in `bits` bits, keeping its order: exact below `2^(bits − 6)`,
/// then like a float (6 bits of exponent, `bits − 6` of mantissa), so values that differ by
/// more than one part in `2^(bits − 6)` stay apart. Negative values count as 0.
pub fn grow(value: i64, bits: u32) -> u32 {
    let m = bits - 6;
    let v = value.max(0) as u64;
    if v < (1 << m) {
        return v as u32;
    }
    let len = 64 - v.leading_zeros();
    let exponent = len - m;
    let mantissa = (v >> (len - 1 - m)) & ((1 << m) - 1);
    ((exponent << m) as u64 | mantissa) as u32
}

/// The links mask of a row: which of its invoice, subscription and customer are known.
pub fn links_mask(invoice: bool, subscription: bool, customer: bool) -> u8 {
    (u8::from(invoice) << 2) | (u8::from(subscription) << 1) | u8::from(customer)
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

/// `version` with its links mask replaced.
pub fn with_links(version: u64, links: u8) -> u64 {
    (version & !(7 << 25)) | (u64::from(links & 7) << 25)
}

/// The links mask of a version.
pub fn links_of(version: u64) -> u8 {
    ((version >> 25) & 7) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_then_further_then_more_linked_wins() {
        let t = 1_769_907_602;
        let base = version(t, 1, 0, 0, "evt_a");
        assert!(version(t + 1, 0, 0, 0, "evt_b") > base);
        assert!(version(t, 3, 0, 0, "evt_b") > base);
        assert!(version(t, 1, 1, 0, "evt_a") > base);
        assert!(version(t, 1, 1, 0, "evt_zzz") > version(t, 1, 0, 0, "evt_a"));
        // Progress decides what status and links do not, whatever the event id.
        assert!(version(t, 1, 0, 2, "evt_a") > version(t, 1, 0, 1, "evt_zzz"));
        assert!(version(t, 1, 1, 0, "evt_a") > version(t, 1, 0, PROGRESS_MAX, "evt_a"));
        // A superset of links always outranks a subset of the same snapshot.
        let only_invoice = version(t, 1, links_mask(true, false, false), 0, "evt_a");
        let only_customer = version(t, 1, links_mask(false, false, true), 0, "evt_a");
        let both = version(t, 1, links_mask(true, false, true), 0, "evt_a");
        assert!(both > only_invoice && both > only_customer);
        assert_ne!(
            only_invoice, only_customer,
            "different links, different versions"
        );
        assert_eq!(links_of(with_links(base, 5)), 5);
        assert_eq!(version(t, 1, 0, 0, "evt_a"), base, "deterministic");
        let late = version(4_000_000_000, 15, 3, PROGRESS_MAX, "evt_z");
        assert!(late < i64::MAX as u64 && late > version(1_800_000_000, 15, 3, 0, "evt_z"));
        // Subscription snapshots keep the old layout.
        assert_eq!(
            snapshot_version(t, 2, "evt_a"),
            ((((t - EPOCH) as u64) << 32) | (2 << 28) | (fnv1a(b"evt_a") & ((1 << 25) - 1)))
        );
    }

    #[test]
    fn growing_values_keep_their_order_in_few_bits() {
        let mut last = 0;
        for v in [
            0i64,
            1,
            2,
            127,
            128,
            2047,
            2048,
            2049,
            10_000,
            10_050,
            1_000_000,
            i64::MAX,
        ] {
            let g = grow(v, 17);
            assert!(g >= last, "{v}");
            assert!(g <= PROGRESS_MAX, "{v}: {g}");
            last = g;
        }
        assert_eq!(grow(2047, 17), 2047, "exact below 2^11");
        assert!(
            grow(10_050, 17) > grow(10_000, 17),
            "apart by more than 1/2048"
        );
        assert_eq!(grow(-5, 17), 0);
        assert!(grow(i64::MAX, 14) < 1 << 14);
    }

    #[test]
    fn intervals_closing_earlier_win() {
        assert!(interval_version(Some(10)) > interval_version(Some(20)));
        assert!(interval_version(Some(20)) > interval_version(None));
    }
}
