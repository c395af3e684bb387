//! Matcher tests: one family at a time from realistic payloads (both generations), then
//! the property that order and duplication never change the converged facts or the state.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use testkit::*;

fn fixture(name: &str) -> LogRecord {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/stripe-events/");
    let bytes = std::fs::read(format!("{path}{name}")).unwrap();
    let env = schemas::Envelope::parse(&bytes, None);
    LogRecord::new(bytes, &env, "default", 1_770_000_000_000)
}

fn run(records: &[LogRecord]) -> (Matcher, FactSet, Vec<Outcome>) {
    let mut m = Matcher::default();
    let (facts, outcomes) = m.apply(records);
    (m, facts, outcomes)
}

#[test]
fn basil_invoice_paid_gives_invoice_history_and_line_facts() {
    let (m, facts, outcomes) = run(&[fixture("invoice.paid__2025-03-31.basil.json")]);
    assert_eq!(outcomes, vec![Outcome::Reconciled]);
    let inv = &facts.invoices[0];
    assert_eq!(inv.id, "in_1ExampleBasil0001");
    assert_eq!(inv.status.as_deref(), Some("paid"));
    assert_eq!(
        (inv.total, inv.amount_paid, inv.amount_remaining),
        (2000, 2000, 0)
    );
    assert_eq!(
        inv.subscription_id.as_deref(),
        Some("sub_1ExampleBasil0001")
    );
    assert_eq!(inv.finalized_at, Some(1_769_907_600));
    assert_eq!(facts.invoice_history.len(), 1);
    let line = &facts.invoice_lines[0];
    assert_eq!(line.recognizable_amount, 2000);
    assert_eq!(
        (line.period_start, line.period_end),
        (Some(1_769_904_000), Some(1_772_323_200))
    );
    assert_eq!(line.price_id.as_deref(), Some("price_1ExamplePro"));
    assert_eq!(line.source_type, "subscription");
    assert_eq!(facts.events.len(), 1);
    assert_eq!(
        m.state().invoices["in_1ExampleBasil0001"]
            .subscription
            .as_deref(),
        Some("sub_1ExampleBasil0001")
    );
    assert!(facts
        .state
        .iter()
        .any(|s| s.id == "inv.subscription:in_1ExampleBasil0001"
            && s.value == "\"sub_1ExampleBasil0001\""));
}

#[test]
fn acacia_invoice_paid_gives_the_same_business_facts_and_links_its_charge() {
    let (m, facts, _) = run(&[fixture("invoice.paid__2025-02-24.acacia.json")]);
    let inv = &facts.invoices[0];
    assert_eq!(
        (inv.total, inv.amount_paid, inv.status.as_deref()),
        (2000, 2000, Some("paid"))
    );
    assert!(inv.subscription_id.is_some());
    assert_eq!(facts.invoice_lines[0].recognizable_amount, 2000);
    let state = m.state();
    assert_eq!(state.charges.len(), 1, "acacia invoices name their charge");
    let (charge, link) = state.charges.iter().next().unwrap();
    assert!(charge.starts_with("ch_"));
    assert_eq!(link.invoice.as_deref(), Some(inv.id.as_str()));
    assert_eq!(
        state.pi_invoice.values().next().map(String::as_str),
        Some(inv.id.as_str())
    );
}

#[test]
fn drafts_book_no_lines_and_paid_wins_over_open_in_the_same_second() {
    let draft = event(
        "evt_d",
        "invoice.created",
        T0,
        BASIL,
        invoice("in_1", "cus_1", "sub_1", "draft", 2000, 0, T0),
    );
    let open = event(
        "evt_o",
        "invoice.finalized",
        T0 + 10,
        BASIL,
        invoice("in_1", "cus_1", "sub_1", "open", 2000, 0, T0),
    );
    let paid = event(
        "evt_p",
        "invoice.paid",
        T0 + 10,
        BASIL,
        invoice("in_1", "cus_1", "sub_1", "paid", 2000, 2000, T0),
    );
    let (_, facts, _) = run(std::slice::from_ref(&draft));
    assert!(facts.invoice_lines.is_empty());
    for order in [
        vec![draft.clone(), open.clone(), paid.clone()],
        vec![paid.clone(), open.clone(), draft.clone()],
    ] {
        let (_, facts, _) = run(&order);
        let rows = converge(&facts);
        assert_eq!(row(&rows, "invoices", "in_1")["status"], "paid");
        assert_eq!(row(&rows, "invoices", "in_1")["amount_remaining"], 0);
        assert_eq!(
            facts.invoice_history.len(),
            3,
            "every version is kept in the history"
        );
    }
}

#[test]
fn subscription_snapshots_become_item_intervals_even_out_of_order() {
    let s1 = event(
        "evt_s1",
        "customer.subscription.created",
        T0,
        BASIL,
        subscription("sub_1", "cus_1", "trialing", 1, 2000, T0),
    );
    let s2 = event(
        "evt_s2",
        "customer.subscription.updated",
        T0 + 86_400,
        BASIL,
        subscription("sub_1", "cus_1", "active", 1, 2000, T0),
    );
    let s3 = event(
        "evt_s3",
        "customer.subscription.updated",
        T0 + 2 * 86_400,
        BASIL,
        subscription("sub_1", "cus_1", "active", 3, 2000, T0),
    );
    let (_, facts, _) = run(&[s3.clone(), s1.clone(), s2.clone()]);
    let rows = converge(&facts);
    let mut intervals: Vec<(i64, Option<i64>, i64, String)> = rows
        .iter()
        .filter(|((t, _), _)| t == "subscription_items")
        .map(|(_, (_, r))| {
            (
                r["valid_from"].as_i64().unwrap(),
                r["valid_to"].as_i64(),
                r["quantity"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    intervals.sort();
    assert_eq!(
        intervals,
        vec![
            (T0, Some(T0 + 86_400), 1, "trialing".into()),
            (T0 + 86_400, Some(T0 + 2 * 86_400), 1, "active".into()),
            (T0 + 2 * 86_400, None, 3, "active".into()),
        ]
    );
}

#[test]
fn basil_renewal_fixture_opens_an_interval_with_item_periods() {
    let (_, facts, _) = run(&[fixture(
        "customer.subscription.updated__2025-03-31.basil__renewal.json",
    )]);
    let item = &facts.subscription_items[0];
    assert_eq!(item.status, "active");
    assert_eq!(item.current_period_end, Some(1_772_323_200));
    assert_eq!(item.interval.as_deref(), Some("month"));
    assert_eq!(item.valid_to, None);
}

#[test]
fn refund_before_its_charge_is_pending_then_linked_to_invoice_and_subscription() {
    let inv = event(
        "evt_i",
        "invoice.paid",
        T0,
        BASIL,
        invoice("in_1", "cus_1", "sub_1", "paid", 2000, 2000, T0),
    );
    let ch = event(
        "evt_c",
        "charge.succeeded",
        T0 + 1,
        BASIL,
        charge("ch_1", "pi_1", "cus_1", 2000, 0, T0 + 1),
    );
    let ip = event(
        "evt_ip",
        "invoice_payment.paid",
        T0 + 2,
        BASIL,
        invoice_payment("inpay_1", "in_1", "pi_1", 2000, T0 + 2),
    );
    let re = event(
        "evt_r",
        "refund.created",
        T0 + 86_400,
        BASIL,
        refund("re_1", "ch_1", "pi_1", 500, "succeeded", T0 + 86_400),
    );

    let mut m = Matcher::default();
    let (facts, _) = m.apply(std::slice::from_ref(&re));
    assert_eq!(facts.refunds[0].invoice_id, None);
    assert!(
        m.state().pending.contains_key("refund:re_1"),
        "an orphan waits for its parent"
    );

    let (facts, _) = m.apply(std::slice::from_ref(&ch));
    assert!(
        m.state().pending.contains_key("payment:ch_1"),
        "a basil charge waits for its invoice payment"
    );
    assert!(facts.refunds.iter().all(|r| r.invoice_id.is_none()));

    let (facts, _) = m.apply(&[ip.clone(), inv.clone()]);
    let refund = facts
        .refunds
        .iter()
        .max_by_key(|r| r.version)
        .expect("refund emitted again");
    assert_eq!(refund.invoice_id.as_deref(), Some("in_1"));
    assert_eq!(refund.subscription_id.as_deref(), Some("sub_1"));
    assert_eq!(refund.customer_id.as_deref(), Some("cus_1"));
    let payment = facts
        .payments
        .iter()
        .filter(|p| p.id == "ch_1")
        .max_by_key(|p| p.version)
        .unwrap();
    assert_eq!(payment.invoice_id.as_deref(), Some("in_1"));
    assert!(
        m.state().pending.is_empty(),
        "everything resolved: {:?}",
        m.state().pending.keys()
    );
    assert!(facts
        .state
        .iter()
        .any(|s| s.id == "pend:refund:re_1" && s.value == "null"));
}

#[test]
fn partial_refund_fixture_keeps_the_running_refunded_amount() {
    let (_, facts, _) = run(&[
        fixture("charge.refunded__2025-03-31.basil__partial.json"),
        fixture("refund.created__2025-03-31.basil.json"),
    ]);
    let rows = converge(&facts);
    let payment = facts.payments.iter().max_by_key(|p| p.version).unwrap();
    assert_eq!((payment.amount, payment.amount_refunded), (2000, 500));
    let refund = row(&rows, "refunds", "re_1ExampleRefund0001");
    assert_eq!(refund["amount"], 500);
    assert_eq!(refund["charge_id"], "ch_1ExampleCharge0001");
    assert_eq!(refund["customer_id"], json!(payment.customer_id));
}

#[test]
fn disputes_end_with_their_outcome_whatever_the_order() {
    let opened = event(
        "evt_d1",
        "charge.dispute.created",
        T0,
        BASIL,
        dispute("dp_1", "ch_1", 2000, "needs_response", T0),
    );
    let closed = event(
        "evt_d2",
        "charge.dispute.closed",
        T0 + 864_000,
        BASIL,
        dispute("dp_1", "ch_1", 2000, "lost", T0),
    );
    for order in [
        [opened.clone(), closed.clone()],
        [closed.clone(), opened.clone()],
    ] {
        let (_, facts, _) = run(&order);
        let r = row(&converge(&facts), "disputes", "dp_1");
        assert_eq!(r["outcome"], "lost");
        assert_eq!(r["closed_at"], T0 + 864_000);
    }
}

#[test]
fn undecodable_events_are_kept_raw_and_dead_lettered_with_the_reason() {
    let null_version = record(
        json!({"id": "evt_n", "object": "event", "type": "invoice.paid", "created": T0, "api_version": null,
        "data": {"object": invoice("in_1", "cus_1", "sub_1", "paid", 1, 1, T0)}}),
    );
    let bad_object = event(
        "evt_b",
        "invoice.paid",
        T0,
        BASIL,
        json!({"id": "in_2", "object": "invoice"}),
    );
    let flagged = {
        let env = schemas::Envelope::parse(b"not json", None);
        LogRecord::new(b"not json".to_vec(), &env, "default", 5)
    };
    let thin = fixture("thin__v1.billing.meter.error_report_triggered.json");
    let payout = event(
        "evt_p",
        "payout.paid",
        T0,
        BASIL,
        json!({"id": "po_1", "object": "payout", "amount": 5}),
    );
    let upcoming = event(
        "evt_u",
        "invoice.upcoming",
        T0,
        BASIL,
        json!({"object": "invoice", "currency": "usd", "customer": "cus_1"}),
    );
    let backfill = record(
        json!({"id": "evt_h", "object": "v2.core.event", "type": GENERATION_FAILURE_RESOLVED,
        "created": "2026-02-01T00:00:00.000Z", "livemode": true}),
    );
    let (_, facts, outcomes) = run(&[
        null_version,
        bad_object,
        flagged,
        thin,
        payout,
        upcoming,
        backfill,
    ]);
    let reasons: Vec<&str> = facts
        .dead_letters
        .iter()
        .map(|d| d.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        ["null_api_version", "bad_object", "not_json", "thin_event"]
    );
    assert!(
        facts.dead_letters[1].detail.contains("currency"),
        "{}",
        facts.dead_letters[1].detail
    );
    assert_eq!(outcomes[4], Outcome::Ignored);
    assert_eq!(outcomes[5], Outcome::Ignored);
    assert_eq!(outcomes[6], Outcome::BackfillRequested);
    assert_eq!(facts.events.len(), 7, "every event is kept raw");
    assert!(facts.invoices.is_empty());
}

#[test]
fn state_rows_rebuild_the_same_state() {
    let records = scenario(7, 3);
    let mut m = Matcher::default();
    let (facts, _) = m.apply(&records);
    let mut rebuilt = State::default();
    assert_eq!(rebuilt.load_rows(facts.state.clone()), 0);
    assert_eq!(&rebuilt, m.state());
}

/// Applies `records` in batches of `batch` (state carried between batches, as the
/// consumer does), returning all facts and the final state.
fn apply_in_batches(records: &[LogRecord], batch: usize) -> (FactSet, State) {
    let mut m = Matcher::default();
    let mut all = FactSet::default();
    for chunk in records.chunks(batch.max(1)) {
        let (facts, _) = m.apply(chunk);
        all.extend(facts);
    }
    (all, m.into_state())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_any_duplication_give_the_same_facts_and_state(
        seed in any::<u64>(),
        order in any::<u64>(),
        duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        batch in 1usize..12,
    ) {
        let records = scenario(seed, 3);
        let (expected_facts, expected_state) = apply_in_batches(&records, records.len());
        let expected = converge(&expected_facts);

        let mut shuffled = records.clone();
        for d in &duplicates {
            shuffled.push(records[d.index(records.len())].clone());
        }
        let mut rng = order | 1;
        for i in (1..shuffled.len()).rev() {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            shuffled.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let (facts, state) = apply_in_batches(&shuffled, batch);
        let got = converge(&facts);
        prop_assert_eq!(got.len(), expected.len());
        for (key, (_, value)) in &expected {
            prop_assert_eq!(&got[key].1, value, "{:?}", key);
        }
        prop_assert_eq!(&state, &expected_state);
    }
}
