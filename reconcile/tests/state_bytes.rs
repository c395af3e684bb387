//! The matcher's estimate of its state's memory, which is what bounds a state cache
//! (`REVLINE_RECONCILE_STATE_CACHE_MB`), against the heap the state really holds, as
//! jemalloc (revline's allocator) counts its live allocations.

use reconcile::matcher;
use testkit::*;
use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes of live allocations, in jemalloc's size classes.
fn allocated() -> usize {
    epoch::advance().expect("jemalloc epoch");
    stats::allocated::read().expect("jemalloc stats")
}

/// The estimate of the state `records` leave, and the heap it holds.
fn estimate_and_heap(records: &[schemas::LogRecord]) -> (matcher::State, usize, usize) {
    let before = allocated();
    let (facts, mut state) = matcher::reconcile(Default::default(), records);
    drop(facts);
    // As after a checkpoint: the changed rows are written and forgotten.
    drop(state.take_dirty_rows());
    let real = allocated() - before;
    let estimate = state.approx_bytes();
    (state, estimate, real)
}

/// Two states: one like a cache's during a backlog, the links and subscription histories
/// of a few hundred customers and thousands of orphans (refunds and disputes of charges not
/// seen yet, charges of invoices not seen yet), each indexed under the links it waits on;
/// and one of history only, links and subscription snapshots. The estimate must be neither
/// far below the real heap (a cache would outgrow its size) nor far above it (it would hold
/// less than it could).
#[test]
fn the_state_estimate_is_close_to_the_heap_the_state_holds() {
    const ORPHANS: usize = 5_000;
    let history = scenario(7, 2_000);
    let mut orphans = scenario(7, 300);
    for i in 0..ORPHANS {
        let t = T0 + 1_000 + i as i64;
        let (ch, pi) = (format!("ch_x{i}"), format!("pi_x{i}"));
        let re = refund(&format!("re_{i}"), &ch, &pi, 500, "succeeded", t);
        orphans.push(event(&format!("evt_re{i}"), "refund.created", t, BASIL, re));
        let dp = dispute(
            &format!("dp_{i}"),
            &format!("ch_y{i}"),
            900,
            "needs_response",
            t,
        );
        orphans.push(event(
            &format!("evt_dp{i}"),
            "charge.dispute.created",
            t,
            BASIL,
            dp,
        ));
        let mut ch = charge(
            &format!("ch_z{i}"),
            &format!("pi_z{i}"),
            "cus_z",
            2_000,
            0,
            t,
        );
        ch["invoice"] = format!("in_z{i}").into();
        orphans.push(event(
            &format!("evt_ch{i}"),
            "charge.succeeded",
            t,
            BASIL,
            ch,
        ));
    }
    for (name, records, min_pending) in
        [("orphans", &orphans, 2 * ORPHANS), ("history", &history, 0)]
    {
        let (state, estimate, real) = estimate_and_heap(records);
        let ratio = estimate as f64 / real as f64;
        eprintln!(
            "{name}: {} pending rows, {} links, estimate {estimate} B, heap {real} B, ratio {ratio:.2}",
            state.pending.len(),
            state.charges.len() + state.invoices.len() + state.pi_invoice.len()
        );
        assert!(
            state.pending.len() >= min_pending,
            "{name}: the orphans are pending"
        );
        assert!(
            (0.8..=1.25).contains(&ratio),
            "{name}: estimate {estimate} B for {real} B of heap (ratio {ratio:.2})"
        );
    }
}
