//! Matcher tests: one family at a time from realistic payloads (both generations), then
//! the property that order and duplication never change the converged facts or the state.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use schemas::facts::StateRow;
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
        m.state()
            .pending
            .contains_key(&PendingKey::Refund("re_1".into())),
        "an orphan waits for its parent"
    );

    let (facts, _) = m.apply(std::slice::from_ref(&ch));
    assert!(
        m.state()
            .pending
            .contains_key(&PendingKey::Payment("ch_1".into())),
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
    assert_eq!(payment.subscription_id.as_deref(), Some("sub_1"));
    // The invoice payment is a link of its own, never a second row of the same money.
    assert!(facts.payments.iter().all(|p| p.kind == "charge"));
    let link = facts
        .invoice_payments
        .iter()
        .max_by_key(|p| p.version)
        .expect("invoice payment emitted");
    assert_eq!(
        (
            link.id.as_str(),
            link.invoice_id.as_deref(),
            link.payment_intent_id.as_deref()
        ),
        ("inpay_1", Some("in_1"), Some("pi_1"))
    );
    assert_eq!((link.amount_paid, link.status.as_str()), (2000, "paid"));
    assert_eq!(link.subscription_id.as_deref(), Some("sub_1"));
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

/// `transfer.created` for `tr_1`: an event of a kind the matcher ignores.
fn transfer_created(event_id: &str) -> LogRecord {
    event(
        event_id,
        "transfer.created",
        T0,
        BASIL,
        json!({"id": "tr_1", "object": "transfer", "amount": 5}),
    )
}

/// A payload that is not UTF-8 is still kept raw, its bad bytes replaced (the raw table
/// holds text); a UTF-8 payload is kept byte for byte.
#[test]
fn raw_payloads_are_kept_as_text_whatever_their_bytes() {
    let bytes = b"{\"id\": \"evt_\xff\"}".to_vec();
    let env = schemas::Envelope::parse(&bytes, None);
    let bad = LogRecord::new(bytes, &env, "default", 5);
    let good = transfer_created("evt_g");
    let (_, facts, _) = run(&[bad, good.clone()]);
    assert_eq!(facts.events.len(), 2);
    assert!(
        facts.events[0].payload.contains('\u{FFFD}'),
        "{}",
        facts.events[0].payload
    );
    assert_eq!(facts.events[1].payload.as_bytes(), good.payload.as_slice());
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
    let transfer = transfer_created("evt_p");
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
        transfer,
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

/// `records` with the `duplicates` appended, in an order drawn from `order`.
fn shuffled(
    records: &[LogRecord],
    order: u64,
    duplicates: &[prop::sample::Index],
) -> Vec<LogRecord> {
    let mut out = records.to_vec();
    for d in duplicates {
        out.push(records[d.index(records.len())].clone());
    }
    let mut rng = order | 1;
    for i in (1..out.len()).rev() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        out.swap(i, (rng % (i as u64 + 1)) as usize);
    }
    out
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

        let shuffled = shuffled(&records, order, &duplicates);
        let (facts, state) = apply_in_batches(&shuffled, batch);
        let got = converge(&facts);
        prop_assert_eq!(got.len(), expected.len());
        for (key, (_, value)) in &expected {
            prop_assert_eq!(&got[key].1, value, "{:?}", key);
        }
        prop_assert_eq!(&state, &expected_state);
    }
}

/// Every state key kind with the exact string it is persisted as. These strings are the
/// ids of `reconcile_state` rows: changing one orphans what existing warehouses hold.
fn every_state_key() -> Vec<(StateKey, &'static str)> {
    vec![
        (
            StateKey::InvoiceCustomer("in_1".into()),
            "inv.customer:in_1",
        ),
        (
            StateKey::InvoiceSubscription("in_1".into()),
            "inv.subscription:in_1",
        ),
        (StateKey::PaymentIntentInvoice("pi_1".into()), "pi:pi_1"),
        (
            StateKey::ChargePaymentIntent("ch_1".into()),
            "ch.payment_intent:ch_1",
        ),
        (StateKey::ChargeCustomer("ch_1".into()), "ch.customer:ch_1"),
        (StateKey::ChargeInvoice("ch_1".into()), "ch.invoice:ch_1"),
        (
            StateKey::Snapshot {
                subscription: "sub_1".into(),
                version: 42,
            },
            "sub:sub_1#000000000000002a",
        ),
        (
            StateKey::Snapshot {
                subscription: "sub_1".into(),
                version: u64::MAX,
            },
            "sub:sub_1#ffffffffffffffff",
        ),
        (
            StateKey::Pending(PendingKey::Payment("ch_1".into())),
            "pend:payment:ch_1",
        ),
        (
            StateKey::Pending(PendingKey::Refund("re_1".into())),
            "pend:refund:re_1",
        ),
        (
            StateKey::Pending(PendingKey::Dispute("dp_1".into())),
            "pend:dispute:dp_1",
        ),
        (
            StateKey::Wait {
                parent: ParentKey::Charge("ch_1".into()),
                pending: PendingKey::Refund("re_1".into()),
            },
            "wait:ch:ch_1#refund:re_1",
        ),
        (
            StateKey::Wait {
                parent: ParentKey::Invoice("in#1%".into()),
                pending: PendingKey::Payment("inpay#2".into()),
            },
            "wait:inv:in%231%25#payment:inpay%232",
        ),
        (
            StateKey::HasWaits(ParentKey::PaymentIntent("pi_1".into())),
            "hasw:pi:pi_1",
        ),
        (
            StateKey::HasWaits(ParentKey::Invoice("in#1".into())),
            "hasw:inv:in#1",
        ),
        (StateKey::SnapshotVersions("sub_1".into()), "subv:sub_1"),
    ]
}

/// A name per key kind; exhaustive, so a new kind must be added to the tests below.
fn kind(key: &StateKey) -> &'static str {
    match key {
        StateKey::ChargeCustomer(_) => "ch.customer",
        StateKey::ChargeInvoice(_) => "ch.invoice",
        StateKey::ChargePaymentIntent(_) => "ch.payment_intent",
        StateKey::HasWaits(_) => "hasw",
        StateKey::InvoiceCustomer(_) => "inv.customer",
        StateKey::InvoiceSubscription(_) => "inv.subscription",
        StateKey::Pending(PendingKey::Dispute(_)) => "pend:dispute",
        StateKey::Pending(PendingKey::Payment(_)) => "pend:payment",
        StateKey::Pending(PendingKey::Refund(_)) => "pend:refund",
        StateKey::PaymentIntentInvoice(_) => "pi",
        StateKey::Snapshot { .. } => "sub",
        StateKey::SnapshotVersions(_) => "subv",
        StateKey::Wait { .. } => "wait",
    }
}

const ALL_KINDS: [&str; 13] = [
    "ch.customer",
    "ch.invoice",
    "ch.payment_intent",
    "hasw",
    "inv.customer",
    "inv.subscription",
    "pend:dispute",
    "pend:payment",
    "pend:refund",
    "pi",
    "sub",
    "subv",
    "wait",
];

#[test]
fn state_keys_are_persisted_as_todays_strings_and_parse_back() {
    let keys = every_state_key();
    let kinds: std::collections::BTreeSet<&str> = keys.iter().map(|(k, _)| kind(k)).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ALL_KINDS);
    for (key, s) in keys {
        assert_eq!(key.to_string(), s);
        assert_eq!(s.parse::<StateKey>(), Ok(key), "{s}");
    }
    for (key, s) in [
        (PendingKey::Payment("inpay_1".into()), "payment:inpay_1"),
        (PendingKey::Refund("re_1".into()), "refund:re_1"),
        (PendingKey::Dispute("dp_1".into()), "dispute:dp_1"),
    ] {
        assert_eq!(key.to_string(), s);
        assert_eq!(s.parse::<PendingKey>(), Ok(key), "{s}");
    }
    for (key, s) in [
        (ParentKey::Charge("ch_1".into()), "ch:ch_1"),
        (ParentKey::PaymentIntent("pi_1".into()), "pi:pi_1"),
        (ParentKey::Invoice("in_1".into()), "inv:in_1"),
    ] {
        assert_eq!(key.to_string(), s);
        assert_eq!(s.parse::<ParentKey>(), Ok(key), "{s}");
    }
    // A sweep looks a link up by the rows that hold its fields.
    assert_eq!(
        State::persisted_keys("ch:ch_1"),
        [
            "ch.payment_intent:ch_1",
            "ch.customer:ch_1",
            "ch.invoice:ch_1"
        ]
    );
    assert_eq!(
        State::persisted_keys("inv:in_1"),
        ["inv.customer:in_1", "inv.subscription:in_1"]
    );
    assert_eq!(State::persisted_keys("pi:pi_1"), ["pi:pi_1"]);
    assert_eq!(
        ParentKey::Charge("ch_1".into()).state_keys(),
        [
            StateKey::ChargePaymentIntent("ch_1".into()),
            StateKey::ChargeCustomer("ch_1".into()),
            StateKey::ChargeInvoice("ch_1".into()),
        ]
    );
}

#[test]
fn malformed_state_keys_are_errors_and_their_rows_are_skipped() {
    let bad = [
        "",
        "in_1",
        "Pi:pi_1",
        "inv:in_1",
        "ch:ch_1",
        "inv.total:in_1",
        "ch.amount:ch_1",
        "pend:ch_1",
        "pend:charge:ch_1",
        "sub:sub_1",
        "sub:sub_1#2a",
        "sub:sub_1#000000000000002A",
        "sub:sub_1#+00000000000002a",
        "sub:sub_1#00000000000000002a",
        "wait:ch:ch_1",
        "wait:ch:ch_1#",
        "wait:ch_1#refund:re_1",
        "wait:ch:ch_1#refund:re_1#x",
        "wait:ch:ch%2#refund:re_1",
        "wait:ch:ch_1#pend:refund:re_1",
    ];
    for s in bad {
        assert_eq!(s.parse::<StateKey>(), Err(KeyError(s.to_owned())));
    }
    for s in ["", "ch_1", "charge:ch_1", "ch.customer:ch_1", "sub:sub_1"] {
        assert!(s.parse::<ParentKey>().is_err(), "{s}");
    }
    for s in ["", "ch_1", "charge:ch_1", "pend:payment:ch_1"] {
        assert!(s.parse::<PendingKey>().is_err(), "{s}");
    }
    let rows = bad.iter().zip(1..).map(|(id, version)| StateRow {
        id: (*id).to_owned(),
        value: "\"x\"".into(),
        version,
    });
    let mut state = State::default();
    assert_eq!(state.load_rows(rows), bad.len());
    assert_eq!(state, State::default());
    assert_eq!(state.clock(), bad.len() as u64);
}

/// Events whose state rows cover every key kind: links, snapshots, resolved (null) and
/// still-pending payments, refunds and disputes.
fn every_key_kind_events() -> Vec<LogRecord> {
    vec![
        event(
            "evt_re1",
            "refund.created",
            T0 + 5,
            BASIL,
            refund("re_1", "ch_1", "pi_1", 500, "succeeded", T0 + 5),
        ),
        event(
            "evt_s1",
            "customer.subscription.created",
            T0,
            BASIL,
            subscription("sub_1", "cus_1", "active", 1, 2000, T0),
        ),
        event(
            "evt_s2",
            "customer.subscription.updated",
            T0 + 86_400,
            BASIL,
            subscription("sub_1", "cus_1", "active", 2, 2000, T0),
        ),
        event(
            "evt_i1",
            "invoice.paid",
            T0,
            BASIL,
            invoice("in_1", "cus_1", "sub_1", "paid", 2000, 2000, T0),
        ),
        event(
            "evt_c1",
            "charge.succeeded",
            T0 + 1,
            BASIL,
            charge("ch_1", "pi_1", "cus_1", 2000, 0, T0 + 1),
        ),
        event(
            "evt_ip1",
            "invoice_payment.paid",
            T0 + 2,
            BASIL,
            invoice_payment("inpay_1", "in_1", "pi_1", 2000, T0 + 2),
        ),
        event(
            "evt_c4",
            "charge.succeeded",
            T0 + 3,
            BASIL,
            charge("ch_4", "pi_4", "cus_4", 900, 0, T0 + 3),
        ),
        event(
            "evt_ip5",
            "invoice_payment.paid",
            T0 + 4,
            BASIL,
            json!({
                "id": "inpay_5", "object": "invoice_payment", "invoice": "in_1", "amount_requested": 300,
                "amount_paid": 300, "currency": "usd", "is_default": false, "status": "paid",
                "created": T0 + 4, "livemode": true,
                "status_transitions": {"paid_at": T0 + 4, "canceled_at": null},
                "payment": {"type": "charge", "charge": "ch_5"}
            }),
        ),
        event(
            "evt_ip6",
            "invoice_payment.paid",
            T0 + 4,
            BASIL,
            invoice_payment("inpay_6", "in_9", "pi_9", 400, T0 + 4),
        ),
        event(
            "evt_re2",
            "refund.created",
            T0 + 6,
            BASIL,
            refund("re_2", "ch_2", "pi_2", 100, "pending", T0 + 6),
        ),
        event(
            "evt_dp1",
            "charge.dispute.created",
            T0 + 7,
            BASIL,
            dispute("dp_1", "ch_3", 700, "needs_response", T0 + 7),
        ),
    ]
}

/// The state rows the matcher wrote for [`every_key_kind_events`] (one batch) before its
/// keys were typed, as `(id, value, version)`: the format existing warehouses hold. (The
/// versions inside pending rows are those of the current layout, with progress bits; the
/// format is the same as before.)
const PERSISTED_ROWS: &[(&str, &str, u64)] = &[
    ("ch.customer:ch_1", r#""cus_1""#, 1),
    ("ch.customer:ch_4", r#""cus_4""#, 2),
    ("ch.invoice:ch_5", r#""in_1""#, 3),
    ("ch.payment_intent:ch_1", r#""pi_1""#, 4),
    ("ch.payment_intent:ch_4", r#""pi_4""#, 5),
    ("inv.customer:in_1", r#""cus_1""#, 6),
    ("inv.subscription:in_1", r#""sub_1""#, 7),
    (
        "pend:dispute:dp_1",
        r#"{"Dispute":{"id":"dp_1","account":null,"livemode":1,"charge_id":"ch_3","payment_intent_id":null,"invoice_id":null,"subscription_id":null,"customer_id":null,"amount":700,"currency":"usd","reason":"fraudulent","status":"needs_response","outcome":"","balance_transaction_ids":"","created_at":1769904007,"closed_at":null,"source_event_id":"evt_dp1","version":2180125429514371278}}"#,
        8,
    ),
    ("pend:payment:ch_1", r#"null"#, 9),
    (
        "pend:payment:ch_4",
        r#"{"Payment":{"id":"ch_4","kind":"charge","account":null,"livemode":1,"invoice_id":null,"subscription_id":null,"customer_id":"cus_4","payment_intent_id":"pi_4","charge_id":"ch_4","amount":900,"amount_captured":900,"amount_refunded":0,"currency":"usd","status":"succeeded","failure_code":null,"balance_transaction_id":"txn_ch_4","created_at":1769904003,"paid_at":1769904003,"source_event_id":"evt_c4","version":2180125412904927304}}"#,
        10,
    ),
    (
        "pend:payment:inpay_6",
        r#"{"Payment":{"id":"inpay_6","kind":"invoice_payment","account":null,"livemode":1,"invoice_id":"in_9","subscription_id":null,"customer_id":null,"payment_intent_id":"pi_9","charge_id":null,"amount":400,"amount_captured":400,"amount_refunded":0,"currency":"usd","status":"paid","failure_code":null,"balance_transaction_id":null,"created_at":1769904004,"paid_at":1769904004,"source_event_id":"evt_ip6","version":2180125417032224904}}"#,
        11,
    ),
    ("pend:refund:re_1", r#"null"#, 12),
    (
        "pend:refund:re_2",
        r#"{"Refund":{"id":"re_2","account":null,"livemode":1,"charge_id":"ch_2","payment_intent_id":"pi_2","invoice_id":null,"subscription_id":null,"customer_id":null,"amount":100,"currency":"usd","status":"pending","reason":"requested_by_customer","failure_reason":null,"balance_transaction_id":"txn_re_2","failure_balance_transaction_id":null,"created_at":1769904006,"source_event_id":"evt_re2","version":2180125425219403844}}"#,
        13,
    ),
    ("pi:pi_1", r#""in_1""#, 14),
    ("pi:pi_9", r#""in_9""#, 15),
    (
        "sub:sub_1#1e415c8020bfccb7",
        r#"{"version":2180125399999040695,"created":1769904000,"rows":[{"id":"sub_1/si_sub_1/1e415c8020bfccb7","subscription_id":"sub_1","item_id":"si_sub_1","account":null,"livemode":1,"customer_id":"cus_1","status":"active","price_id":"price_pro","product_id":"prod_pro","currency":"usd","unit_amount":2000,"quantity":1,"interval":"month","interval_count":1,"usage_type":"licensed","unit_amount_decimal":null,"billing_scheme":null,"tiers_mode":null,"tiers":null,"transform_divide_by":null,"transform_round":null,"cancel_at_period_end":0,"cancel_at":null,"canceled_at":null,"ended_at":null,"trial_start":null,"trial_end":null,"pause_collection":null,"cancellation_reason":null,"discount_ids":"","item_discount_ids":"","current_period_start":1769904000,"current_period_end":1772496000,"valid_from":1769904000,"valid_to":null,"source_event_id":"evt_s1","version":0}]}"#,
        16,
    ),
    (
        "sub:sub_1#1e42ae0020bfce6a",
        r#"{"version":2180496485173415530,"created":1769990400,"rows":[{"id":"sub_1/si_sub_1/1e42ae0020bfce6a","subscription_id":"sub_1","item_id":"si_sub_1","account":null,"livemode":1,"customer_id":"cus_1","status":"active","price_id":"price_pro","product_id":"prod_pro","currency":"usd","unit_amount":2000,"quantity":2,"interval":"month","interval_count":1,"usage_type":"licensed","unit_amount_decimal":null,"billing_scheme":null,"tiers_mode":null,"tiers":null,"transform_divide_by":null,"transform_round":null,"cancel_at_period_end":0,"cancel_at":null,"canceled_at":null,"ended_at":null,"trial_start":null,"trial_end":null,"pause_collection":null,"cancellation_reason":null,"discount_ids":"","item_discount_ids":"","current_period_start":1769904000,"current_period_end":1772496000,"valid_from":1769990400,"valid_to":null,"source_event_id":"evt_s2","version":0}]}"#,
        17,
    ),
];

#[test]
fn state_rows_in_the_persisted_format_load_to_the_state_the_events_build() {
    let events = every_key_kind_events();
    let mut applied = Matcher::default();
    let (facts, _) = applied.apply(&events);
    let (indexes, written): (Vec<_>, Vec<_>) = facts
        .state
        .iter()
        .map(|r| (r.id.as_str(), r.value.as_str(), r.version))
        .partition(|(id, _, _)| {
            ["wait:", "hasw:", "subv:"]
                .iter()
                .any(|p| id.starts_with(p))
        });
    let (waits, exact): (Vec<_>, Vec<_>) = indexes
        .into_iter()
        .partition(|(id, _, _)| id.starts_with("wait:"));
    // The same ids and values in the same order; the versions are the row clock's, which
    // the index rows written among them (by key order) move on.
    let id_value = |rows: &[(&str, &str, u64)]| -> Vec<(String, String)> {
        rows.iter()
            .map(|(id, value, _)| (id.to_string(), value.to_string()))
            .collect()
    };
    assert_eq!(
        id_value(&written),
        id_value(PERSISTED_ROWS),
        "the same ids, values and order as before"
    );
    assert!(written.windows(2).all(|w| w[0].2 < w[1].2));
    let kinds: std::collections::BTreeSet<&str> = PERSISTED_ROWS
        .iter()
        .map(|(id, _, _)| kind(&id.parse().unwrap()))
        .collect();
    let before_format_2: Vec<&str> = ALL_KINDS
        .into_iter()
        .filter(|k| !["hasw", "subv", "wait"].contains(k))
        .collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), before_format_2);
    // Format 3 adds a marker per link some row waits on and a subscription's list of
    // snapshot versions.
    let exact: Vec<(&str, &str)> = exact.iter().map(|(id, value, _)| (*id, *value)).collect();
    assert_eq!(
        exact,
        [
            ("hasw:ch:ch_2", "1"),
            ("hasw:ch:ch_3", "1"),
            ("hasw:ch:ch_4", "1"),
            ("hasw:inv:in_9", "1"),
            ("hasw:pi:pi_2", "1"),
            ("hasw:pi:pi_4", "1"),
            ("hasw:pi:pi_9", "1"),
            ("subv:sub_1", "[2180125399999040695,2180496485173415530]"),
        ]
    );
    // Format 2 adds the wait rows, after the others: each pending row under each link that
    // would resolve it (the resolved ones under none).
    let waiting: Vec<(&str, &str)> = waits
        .iter()
        .filter(|(_, value, _)| *value == "1")
        .map(|(id, _, _)| id.split_once('#').unwrap())
        .collect();
    assert_eq!(
        waiting,
        [
            ("wait:ch:ch_2", "refund:re_2"),
            ("wait:ch:ch_3", "dispute:dp_1"),
            ("wait:ch:ch_4", "payment:ch_4"),
            ("wait:inv:in_9", "payment:inpay_6"),
            ("wait:pi:pi_2", "refund:re_2"),
            ("wait:pi:pi_4", "payment:ch_4"),
            ("wait:pi:pi_9", "payment:inpay_6"),
        ]
    );
    assert!(PERSISTED_ROWS.iter().any(|(_, value, _)| *value == "null"));

    let mut loaded = State::default();
    let rows = PERSISTED_ROWS.iter().map(|&(id, value, version)| StateRow {
        id: id.to_owned(),
        value: value.to_owned(),
        version,
    });
    assert_eq!(loaded.load_rows(rows), 0);
    assert_eq!(&loaded, applied.state());

    // The consumer streams the rows (ordered by id) in chunks: any chunking, in either
    // order, loads the same state, orphans and the wait rows to write included.
    let row = |&(id, value, version): &(&str, &str, u64)| StateRow {
        id: id.to_owned(),
        value: value.to_owned(),
        version,
    };
    let mut by_id = PERSISTED_ROWS.to_vec();
    by_id.sort();
    let dirty = loaded.clone().take_dirty_rows();
    for order in [PERSISTED_ROWS.to_vec(), by_id] {
        for size in 1..=order.len() {
            let mut chunked = State::default();
            for chunk in order.chunks(size) {
                assert_eq!(chunked.load_rows(chunk.iter().map(row)), 0);
            }
            assert_eq!(&chunked, applied.state(), "chunks of {size}");
            assert!(chunked
                .subscriptions
                .values()
                .flatten()
                .all(|s| s.rows.capacity() == s.rows.len()));
            assert_eq!(chunked.take_dirty_rows(), dirty, "chunks of {size}");
        }
    }

    // Rows written before the price details and item discounts existed (migration 002)
    // still load, to the same state.
    const ADDED_IN_002: &[&str] = &[
        "unit_amount_decimal",
        "billing_scheme",
        "tiers_mode",
        "tiers",
        "transform_divide_by",
        "transform_round",
        "item_discount_ids",
    ];
    let previous_format = PERSISTED_ROWS.iter().map(|&(id, value, version)| {
        let mut v: serde_json::Value = serde_json::from_str(value).unwrap();
        if let Some(rows) = v.get_mut("rows").and_then(|r| r.as_array_mut()) {
            for row in rows {
                for key in ADDED_IN_002 {
                    assert!(row.as_object_mut().unwrap().remove(*key).is_some());
                }
            }
        }
        StateRow {
            id: id.to_owned(),
            value: v.to_string(),
            version,
        }
    });
    let mut upgraded = State::default();
    assert_eq!(upgraded.load_rows(previous_format), 0);
    assert_eq!(&upgraded, applied.state());
    assert_eq!(loaded.clock(), PERSISTED_ROWS.len() as u64);
    assert_eq!(loaded.wanted_parents(), applied.state().wanted_parents());
    assert!(!loaded.wanted_parents().is_empty());
    // Loading format-1 rows marks the wait rows of the pending rows it brought in: the
    // upgrade writes them, with their links' markers.
    let upgrade: Vec<(String, String)> = loaded
        .take_dirty_rows()
        .into_iter()
        .map(|r| (r.id, r.value))
        .collect();
    let mut expected_waits: Vec<(String, String)> = waits
        .iter()
        .filter(|(_, value, _)| *value == "1")
        .map(|(id, value, _)| (id.to_string(), value.to_string()))
        .collect();
    expected_waits.extend(
        exact
            .iter()
            .filter(|(id, _)| id.starts_with("hasw:"))
            .map(|(id, value)| (id.to_string(), value.to_string())),
    );
    expected_waits.sort();
    assert_eq!(upgrade, expected_waits);

    // And it goes on as the original does: links arriving now resolve the loaded orphans.
    let more = [
        event(
            "evt_c2",
            "charge.succeeded",
            T0 + 10,
            BASIL,
            charge("ch_2", "pi_2", "cus_1", 100, 0, T0 + 10),
        ),
        event(
            "evt_ip2",
            "invoice_payment.paid",
            T0 + 11,
            BASIL,
            invoice_payment("inpay_2", "in_1", "pi_2", 100, T0 + 11),
        ),
        event(
            "evt_i9",
            "invoice.paid",
            T0 + 12,
            BASIL,
            invoice("in_9", "cus_9", "sub_9", "paid", 400, 400, T0 + 12),
        ),
    ];
    let mut resumed = Matcher::new(loaded);
    let (mut resumed_facts, _) = resumed.apply(&more);
    let (mut applied_facts, _) = applied.apply(&more);
    // The row clocks differ by the wait rows the original wrote in its first batch.
    for facts in [&mut resumed_facts, &mut applied_facts] {
        facts.state.iter_mut().for_each(|r| r.version = 0);
    }
    assert_eq!(resumed_facts, applied_facts);
    assert!(resumed_facts
        .refunds
        .iter()
        .any(|r| r.id == "re_2" && r.invoice_id.is_some()));
    assert_eq!(resumed.state(), applied.state());
}

proptest! {
    #[test]
    fn every_key_parses_back_from_its_string(id in any::<String>(), version in any::<u64>()) {
        let pending = [
            PendingKey::Payment(id.clone()),
            PendingKey::Refund(id.clone()),
            PendingKey::Dispute(id.clone()),
        ];
        let mut keys = vec![
            StateKey::InvoiceCustomer(id.clone()),
            StateKey::InvoiceSubscription(id.clone()),
            StateKey::PaymentIntentInvoice(id.clone()),
            StateKey::ChargePaymentIntent(id.clone()),
            StateKey::ChargeCustomer(id.clone()),
            StateKey::ChargeInvoice(id.clone()),
            StateKey::Snapshot { subscription: id.clone(), version },
            StateKey::SnapshotVersions(id.clone()),
            StateKey::HasWaits(ParentKey::Charge(id.clone())),
            StateKey::Wait {
                parent: ParentKey::Invoice(id.clone()),
                pending: PendingKey::Refund(id.clone()),
            },
        ];
        keys.extend(pending.iter().cloned().map(StateKey::Pending));
        for key in keys {
            prop_assert_eq!(key.to_string().parse::<StateKey>(), Ok(key));
        }
        for key in pending {
            prop_assert_eq!(key.to_string().parse::<PendingKey>(), Ok(key));
        }
        for key in [
            ParentKey::Charge(id.clone()),
            ParentKey::PaymentIntent(id.clone()),
            ParentKey::Invoice(id),
        ] {
            prop_assert_eq!(key.to_string().parse::<ParentKey>(), Ok(key));
        }
    }

    /// Typed keys sort as their strings did, so state rows are written (and parents swept)
    /// in the same order as before.
    #[test]
    fn keys_sort_as_their_strings(
        ids in proptest::collection::vec("[0-9A-Za-z_]{0,4}", 1..6),
        versions in proptest::collection::vec(any::<u64>(), 1..4),
    ) {
        let mut state_keys = Vec::new();
        let mut parent_keys = Vec::new();
        for id in &ids {
            for pending in [
                PendingKey::Payment(id.clone()),
                PendingKey::Refund(id.clone()),
                PendingKey::Dispute(id.clone()),
            ] {
                state_keys.push(StateKey::Pending(pending));
            }
            state_keys.extend([
                StateKey::InvoiceCustomer(id.clone()),
                StateKey::InvoiceSubscription(id.clone()),
                StateKey::PaymentIntentInvoice(id.clone()),
                StateKey::ChargePaymentIntent(id.clone()),
                StateKey::ChargeCustomer(id.clone()),
                StateKey::ChargeInvoice(id.clone()),
            ]);
            for &version in &versions {
                state_keys.push(StateKey::Snapshot { subscription: id.clone(), version });
            }
            state_keys.push(StateKey::SnapshotVersions(id.clone()));
            state_keys.extend(
                [
                    ParentKey::Charge(id.clone()),
                    ParentKey::Invoice(id.clone()),
                    ParentKey::PaymentIntent(id.clone()),
                ]
                .map(StateKey::HasWaits),
            );
            for other in &ids {
                state_keys.push(StateKey::Wait {
                    parent: ParentKey::Charge(id.clone()),
                    pending: PendingKey::Refund(other.clone()),
                });
                state_keys.push(StateKey::Wait {
                    parent: ParentKey::PaymentIntent(id.clone()),
                    pending: PendingKey::Dispute(other.clone()),
                });
            }
            parent_keys.extend([
                ParentKey::Charge(id.clone()),
                ParentKey::PaymentIntent(id.clone()),
                ParentKey::Invoice(id.clone()),
            ]);
        }
        let mut strings: Vec<String> = state_keys.iter().map(ToString::to_string).collect();
        strings.sort();
        state_keys.sort();
        prop_assert_eq!(state_keys.iter().map(ToString::to_string).collect::<Vec<_>>(), strings);
        let mut strings: Vec<String> = parent_keys.iter().map(ToString::to_string).collect();
        strings.sort();
        parent_keys.sort();
        prop_assert_eq!(parent_keys.iter().map(ToString::to_string).collect::<Vec<_>>(), strings);
    }
}

#[test]
fn a_payout_keeps_its_furthest_state_whatever_the_order_in_one_second() {
    let payout = |id: &str, status: &str, reconciliation: &str| {
        event(
            id,
            &format!("payout.{status}"),
            T0,
            BASIL,
            json!({"id": "po_1", "object": "payout", "amount": 12345, "currency": "usd",
                   "arrival_date": 1_770_000_000, "status": status, "method": "standard",
                   "type": "bank_account", "automatic": true,
                   "reconciliation_status": reconciliation, "balance_transaction": "txn_po_1",
                   "created": 1_769_900_000}),
        )
    };
    let in_transit = payout("evt_p1", "in_transit", "not_applicable");
    let paid = payout("evt_p2", "paid", "in_progress");
    let completed = payout("evt_p3", "paid", "completed");
    for order in [
        [&in_transit, &paid, &completed],
        [&completed, &paid, &in_transit],
        [&paid, &completed, &in_transit],
    ] {
        let records: Vec<LogRecord> = order.into_iter().cloned().collect();
        let (_, facts, outcomes) = run(&records);
        assert!(outcomes.iter().all(|o| *o == Outcome::Reconciled));
        let latest = facts
            .payouts
            .iter()
            .max_by_key(|r| r.version)
            .expect("payout rows");
        assert_eq!(
            (
                latest.status.as_str(),
                latest.reconciliation_status.as_deref(),
                latest.amount,
                latest.automatic,
                latest.balance_transaction_id.as_deref()
            ),
            ("paid", Some("completed"), 12345, 1, Some("txn_po_1"))
        );
    }
}

/// Two event ids whose hashes alone would let the first win a same-second tie: the
/// snapshot under the first id is the older one in the tests below, so only the fields that
/// grow can make the newer one win.
fn ids_the_hash_gets_wrong(prefix: &str) -> (String, String) {
    let hash = |id: &str| crate::version::version(T0, 0, 0, 0, id);
    for n in 0..1000 {
        let (older, newer) = (format!("evt_{prefix}_{n}a"), format!("evt_{prefix}_{n}b"));
        if hash(&older) > hash(&newer) {
            return (older, newer);
        }
    }
    unreachable!("some pair hashes the wrong way round")
}

/// Applies `older` then `newer`, and the other way round: the converged row of `table`
/// `id` must be the newer snapshot both times.
fn newer_wins(
    table: &str,
    id: &str,
    older: &LogRecord,
    newer: &LogRecord,
) -> Vec<serde_json::Value> {
    [[older, newer], [newer, older]]
        .into_iter()
        .map(|order| {
            let records: Vec<LogRecord> = order.into_iter().cloned().collect();
            let (_, facts, _) = run(&records);
            row(&converge(&facts), table, id)
        })
        .collect()
}

#[test]
fn same_second_ties_go_to_the_snapshot_whose_growing_fields_are_further_along() {
    // A charge refunded twice within one second: 5.00, then 15.00 in all.
    let (a, b) = ids_the_hash_gets_wrong("ch");
    let older = event(
        &a,
        "charge.refunded",
        T0,
        BASIL,
        charge("ch_t", "pi_t", "cus_t", 5000, 500, T0),
    );
    let newer = event(
        &b,
        "charge.refunded",
        T0,
        BASIL,
        charge("ch_t", "pi_t", "cus_t", 5000, 1500, T0),
    );
    for r in newer_wins("payments", "ch_t", &older, &newer) {
        assert_eq!(r["amount_refunded"], 1500, "{r}");
    }

    // An open invoice paid in part within the second it was retried: amount_paid grows.
    let (a, b) = ids_the_hash_gets_wrong("in");
    let inv = |paid: i64, attempts: i64| {
        let mut v = invoice("in_t", "cus_t", "sub_t", "open", 4000, paid, T0);
        v["attempt_count"] = json!(attempts);
        v
    };
    let older = event(&a, "invoice.updated", T0, BASIL, inv(0, 1));
    let newer = event(&b, "invoice.updated", T0, BASIL, inv(1000, 1));
    for r in newer_wins("invoices", "in_t", &older, &newer) {
        assert_eq!(r["amount_paid"], 1000, "{r}");
    }
    // Nothing paid, but one more attempt: attempt_count decides.
    let older = event(&a, "invoice.payment_failed", T0, BASIL, inv(0, 1));
    let newer = event(&b, "invoice.payment_failed", T0, BASIL, inv(0, 2));
    for r in newer_wins("invoices", "in_t", &older, &newer) {
        assert_eq!(r["source_event_id"], b.as_str(), "{r}");
    }

    // An invoice payment whose paid amount grows.
    let (a, b) = ids_the_hash_gets_wrong("ip");
    let ip = |paid: i64| {
        let mut v = invoice_payment("inpay_t", "in_t", "pi_t", 4000, T0);
        v["amount_paid"] = json!(paid);
        v["status"] = json!("open");
        v
    };
    let older = event(&a, "invoice_payment.updated", T0, BASIL, ip(0));
    let newer = event(&b, "invoice_payment.updated", T0, BASIL, ip(4000));
    let records = [
        older.clone(),
        newer.clone(),
        event(
            "evt_inv_t",
            "invoice.paid",
            T0 - 10,
            BASIL,
            invoice("in_t", "cus_t", "sub_t", "paid", 4000, 4000, T0 - 10),
        ),
    ];
    for order in [[0, 1, 2], [1, 0, 2], [2, 1, 0]] {
        let batch: Vec<LogRecord> = order.iter().map(|i| records[*i].clone()).collect();
        let (_, facts, _) = run(&batch);
        let rows = converge(&facts);
        assert_eq!(
            row(&rows, "invoice_payments", "inpay_t")["amount_paid"],
            4000,
            "{order:?}"
        );
    }

    // A won dispute: its funds withdrawn, then reinstated within the same second.
    let (a, b) = ids_the_hash_gets_wrong("dp");
    let dp = |bts: &[&str]| {
        let mut v = dispute("dp_t", "ch_t", 700, "won", T0);
        v["balance_transactions"] = json!(bts
            .iter()
            .map(|id| json!({"id": id, "object": "balance_transaction", "amount": 700, "fee": 0, "net": 700,
                             "currency": "usd", "type": "adjustment", "reporting_category": "dispute",
                             "created": T0, "status": "available"}))
            .collect::<Vec<_>>());
        v
    };
    let charge_event = event(
        "evt_ch_t",
        "charge.succeeded",
        T0 - 10,
        BASIL,
        charge("ch_t", "pi_t", "cus_t", 700, 0, T0 - 10),
    );
    let older = event(&a, "charge.dispute.closed", T0, BASIL, dp(&["txn_w"]));
    let newer = event(
        &b,
        "charge.dispute.funds_reinstated",
        T0,
        BASIL,
        dp(&["txn_w", "txn_r"]),
    );
    for order in [
        [&charge_event, &older, &newer],
        [&newer, &older, &charge_event],
    ] {
        let batch: Vec<LogRecord> = order.into_iter().cloned().collect();
        let (_, facts, _) = run(&batch);
        let r = row(&converge(&facts), "disputes", "dp_t");
        assert_eq!(r["balance_transaction_ids"], "txn_r,txn_w", "{r}");
    }
}

#[test]
fn ties_nothing_in_the_payload_decides_are_recorded_with_both_events() {
    // Same second, same status, same amounts: only the customer differs.
    let (a, b) = ids_the_hash_gets_wrong("tie");
    let one = event(
        &a,
        "charge.updated",
        T0,
        BASIL,
        charge("ch_tie", "pi_tie", "cus_a", 5000, 0, T0),
    );
    let two = event(
        &b,
        "charge.updated",
        T0,
        BASIL,
        charge("ch_tie", "pi_tie", "cus_b", 5000, 0, T0),
    );
    for order in [[&one, &two], [&two, &one]] {
        let records: Vec<LogRecord> = order.into_iter().cloned().collect();
        let (_, facts, _) = run(&records);
        assert_eq!(facts.ties.len(), 1, "{:?}", facts.ties);
        let tie = &facts.ties[0];
        assert_eq!(
            (
                tie.object_type.as_str(),
                tie.object_id.as_str(),
                tie.event_ids.clone()
            ),
            ("charge", "ch_tie", format!("{a},{b}"))
        );
        assert_eq!(i64::from(tie.created_at), T0);
    }
    // The same content from two events (invoice.finalized and invoice.updated of one
    // snapshot) is no tie; nor is a pair the growing fields decide.
    let inv = invoice("in_same", "cus_1", "sub_1", "open", 3000, 0, T0);
    let (_, facts, _) = run(&[
        event("evt_f", "invoice.finalized", T0, BASIL, inv.clone()),
        event("evt_u", "invoice.updated", T0, BASIL, inv),
        event(
            &a,
            "charge.refunded",
            T0,
            BASIL,
            charge("ch_r", "pi_r", "cus_a", 5000, 500, T0),
        ),
        event(
            &b,
            "charge.refunded",
            T0,
            BASIL,
            charge("ch_r", "pi_r", "cus_a", 5000, 900, T0),
        ),
    ]);
    assert!(facts.ties.is_empty(), "{:?}", facts.ties);
}

/// State rows as a warehouse keeps them: the highest version per id.
#[derive(Default)]
struct Store(std::collections::BTreeMap<String, StateRow>);

impl Store {
    fn write(&mut self, rows: &[StateRow]) {
        for row in rows {
            let newer = self.0.get(&row.id).is_none_or(|r| r.version <= row.version);
            if newer {
                self.0.insert(row.id.clone(), row.clone());
            }
        }
    }

    fn read(&self, query: &warehouse::StateQuery) -> Vec<StateRow> {
        self.0
            .values()
            .filter(|r| query.matches(r))
            .cloned()
            .collect()
    }

    /// The wait rows that say "waiting", as `(link, pending key)` strings.
    fn waiting(&self) -> std::collections::BTreeSet<(String, String)> {
        self.0
            .values()
            .filter(|r| r.value == "1")
            .filter_map(|r| match r.id.parse::<StateKey>() {
                Ok(StateKey::Wait { parent, pending }) => {
                    Some((parent.to_string(), pending.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    /// The whole state, loaded as a consumer without a cache would.
    fn state(&self) -> State {
        let mut state = State::default();
        assert_eq!(state.load_rows(self.0.values().cloned()), 0);
        state
    }
}

/// Applies `records` in batches as the consumer does with a bounded state of `cache`
/// bytes over `store`: each batch reads what it needs; at each checkpoint (every batch)
/// its state rows are written, then the cache is trimmed. A single consumer: its sweeps
/// find nothing new, so there are none.
fn apply_with_cache(
    records: &[LogRecord],
    batch: usize,
    cache: usize,
    store: &mut Store,
) -> (FactSet, usize, Matcher) {
    apply_with_checkpoints(records, batch, 1, cache, store)
}

/// [`apply_with_cache`] with a checkpoint every `checkpoint` batches: the batches between
/// two checkpoints read what they need from `store`, which has not seen the state rows of
/// their window yet.
fn apply_with_checkpoints(
    records: &[LogRecord],
    batch: usize,
    checkpoint: usize,
    cache: usize,
    store: &mut Store,
) -> (FactSet, usize, Matcher) {
    let mut m = Matcher::new(State::bounded());
    let mut all = FactSet::default();
    let mut reads = 0;
    let chunks: Vec<&[LogRecord]> = records.chunks(batch.max(1)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let chunk = *chunk;
        let decoded = decode(chunk);
        let state = m.state_mut();
        state.begin_batch();
        let mut todo = state.missing(roots(&decoded));
        while !todo.is_empty() {
            reads += 1;
            let mut rows = store.read(&Object::query(&todo));
            let more = Object::follow_up(&rows);
            if !more.is_empty() {
                rows.extend(store.read(&more));
            }
            let state = m.state_mut();
            let next = state.absorb(&todo, rows);
            todo = state.missing(next);
        }
        m.state_mut().settle();
        let (mut facts, _) = m.match_decoded(chunk, decoded);
        let state = m.state_mut();
        if (i + 1) % checkpoint.max(1) == 0 || i + 1 == chunks.len() {
            facts.state = state.take_dirty_rows();
            store.write(&facts.state);
            state.evict(cache);
            state.start_window();
        }
        all.extend(facts);
    }
    (all, reads, m)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Eviction never changes a fact: with a cache of no bytes (every batch reads its
    /// state back) or of part of the state (the objects used longest ago leave), and with
    /// state rows written after every batch or at checkpoints a few batches apart, any
    /// order and duplication give the facts and the persisted state of one batch with the
    /// whole state in memory.
    #[test]
    fn a_bounded_cache_gives_the_same_facts_and_state_in_any_order(
        seed in any::<u64>(),
        order in any::<u64>(),
        duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        batch in 1usize..12,
        // State rows written after every batch, or after a window of several.
        checkpoint in 1usize..5,
        // No room (every batch reads its state back), room for part of it (the objects
        // used longest ago are dropped), room for all.
        cache in prop_oneof![Just(0usize), 500usize..20_000, Just(usize::MAX)],
    ) {
        let records = scenario(seed, 3);
        let (expected_facts, expected_state) = apply_in_batches(&records, records.len());
        let expected = converge(&expected_facts);

        let shuffled = shuffled(&records, order, &duplicates);
        let mut store = Store::default();
        let (facts, reads, _) =
            apply_with_checkpoints(&shuffled, batch, checkpoint, cache, &mut store);
        prop_assert!(reads > 0);
        let got = converge(&facts);
        prop_assert_eq!(got.len(), expected.len());
        for (key, (_, value)) in &expected {
            prop_assert_eq!(&got[key].1, value, "{:?}", key);
        }
        let state = store.state();
        prop_assert_eq!(&state, &expected_state);
        // The persisted index is exact: each pending row under each link that would
        // resolve it, and nothing else.
        let mut expected_waits = std::collections::BTreeSet::new();
        for (key, row) in &state.pending {
            for parent in state.parents_of(row) {
                expected_waits.insert((parent.to_string(), key.to_string()));
            }
        }
        prop_assert_eq!(store.waiting(), expected_waits);
    }
}

/// Customer `n`'s invoice `in_<n>` (subscription `sub_<n>`) paid at `t`.
fn customer_paid(n: i64, t: i64) -> LogRecord {
    event(
        &format!("evt_i{n}"),
        "invoice.paid",
        t,
        BASIL,
        invoice(
            &format!("in_{n}"),
            &format!("cus_{n}"),
            &format!("sub_{n}"),
            "paid",
            900,
            900,
            t,
        ),
    )
}

#[test]
fn eviction_keeps_the_objects_used_most_recently_not_only_the_last_batch() {
    let history: Vec<LogRecord> = (0..300).map(|n| customer_paid(n, T0 + n)).collect();
    let mut store = Store::default();
    // A cache with room for everything, in batches of ten; then one with room for half.
    let (_, _, mut m) = apply_with_cache(&history, 10, usize::MAX, &mut store);
    let state = m.state_mut();
    let all = state.approx_bytes();
    assert!(state.evict(all / 2) > 0);
    let resident = |n: usize| state.invoices.contains_key(&format!("in_{n}"));
    // The last batch and the ones before it, newest first, down to about three quarters
    // of the new size.
    assert!((290..300).all(resident), "the last batch is in memory");
    assert!((280..290).all(resident), "so is the batch before it");
    assert!(!resident(0), "the oldest left");
    let kept = (0..300).filter(|&n| resident(n)).count();
    assert!((100..150).contains(&kept), "{kept} invoices in memory");
    assert!(state.approx_bytes() <= all / 2);
}

#[test]
fn a_refund_two_years_after_its_charge_finds_the_charge_that_left_memory_long_ago() {
    const YEAR: i64 = 365 * 86_400;
    let mut history = vec![
        event(
            "evt_s1",
            "customer.subscription.created",
            T0,
            BASIL,
            subscription("sub_1", "cus_1", "active", 1, 2000, T0),
        ),
        event(
            "evt_i1",
            "invoice.paid",
            T0,
            BASIL,
            invoice("in_1", "cus_1", "sub_1", "paid", 2000, 2000, T0),
        ),
        event(
            "evt_ip1",
            "invoice_payment.paid",
            T0 + 1,
            BASIL,
            invoice_payment("inpay_1", "in_1", "pi_1", 2000, T0 + 1),
        ),
        event(
            "evt_c1",
            "charge.succeeded",
            T0 + 2,
            BASIL,
            charge("ch_1", "pi_1", "cus_1", 2000, 0, T0 + 2),
        ),
    ];
    // Two years of other customers' invoices and charges in between.
    for n in 2..400 {
        let t = T0 + n * (2 * YEAR / 400);
        history.push(customer_paid(n, t));
        history.push(event(
            &format!("evt_c{n}"),
            "charge.succeeded",
            t + 1,
            BASIL,
            charge(
                &format!("ch_{n}"),
                &format!("pi_{n}"),
                &format!("cus_{n}"),
                900,
                0,
                t + 1,
            ),
        ));
    }
    history.push(event(
        "evt_re1",
        "refund.created",
        T0 + 2 * YEAR,
        BASIL,
        refund("re_1", "ch_1", "pi_1", 500, "succeeded", T0 + 2 * YEAR),
    ));

    let mut store = Store::default();
    let (facts, _, m) = apply_with_cache(&history, 50, 16 << 10, &mut store);
    // The charge left memory long before its refund arrived.
    let resident = m.state().resident_objects().unwrap();
    assert!(resident < 100, "{resident} objects in memory");
    let refund = facts.refunds.iter().find(|r| r.id == "re_1").unwrap();
    assert_eq!(refund.invoice_id.as_deref(), Some("in_1"));
    assert_eq!(refund.subscription_id.as_deref(), Some("sub_1"));
    assert_eq!(refund.customer_id.as_deref(), Some("cus_1"));
    // Neither is left waiting (the other charges name no invoice: they wait for good),
    // and what was persisted two years ago is still there.
    let state = store.state();
    assert!(!state
        .pending
        .contains_key(&PendingKey::Refund("re_1".into())));
    assert!(!state
        .pending
        .contains_key(&PendingKey::Payment("ch_1".into())));
    assert!(state
        .pending
        .contains_key(&PendingKey::Payment("ch_2".into())));
    assert_eq!(
        state.charges["ch_1"].payment_intent.as_deref(),
        Some("pi_1")
    );
}

/// Another consumer learned the refund's payment intent → invoice link without seeing the
/// refund's wait row (it was not written yet). When anything later reads the refund back
/// (here a dispute on the same charge), the links now known resolve it.
#[test]
fn an_orphan_read_back_is_resolved_by_links_learned_while_it_was_not_in_memory() {
    let mut store = Store::default();
    let (orphan, _) = Matcher::default().apply(&[event(
        "evt_re",
        "refund.created",
        T0 + 10,
        BASIL,
        refund("re_1", "ch_1", "pi_1", 500, "succeeded", T0 + 10),
    )]);
    store.write(&orphan.state);
    let (links, _) =
        Matcher::default().apply(&paid_invoice_events("in_1", "cus_1", "sub_1", "pi_1", T0));
    let bump = store.0.values().map(|r| r.version).max().unwrap();
    let links: Vec<StateRow> = links
        .state
        .into_iter()
        .map(|r| StateRow {
            version: r.version + bump,
            ..r
        })
        .collect();
    store.write(&links);
    assert!(store
        .state()
        .pending
        .contains_key(&PendingKey::Refund("re_1".into())));

    let later = [event(
        "evt_dp",
        "charge.dispute.created",
        T0 + 20,
        BASIL,
        dispute("dp_1", "ch_1", 2000, "needs_response", T0 + 20),
    )];
    let (facts, _, _) = apply_with_cache(&later, 10, 0, &mut store);
    let refund = facts.refunds.iter().find(|r| r.id == "re_1").unwrap();
    assert_eq!(refund.invoice_id.as_deref(), Some("in_1"));
    assert_eq!(refund.subscription_id.as_deref(), Some("sub_1"));
    assert!(!store
        .state()
        .pending
        .contains_key(&PendingKey::Refund("re_1".into())));
}

/// A subscription's list of snapshot versions is read alone (the walk then asks for the
/// snapshots a batch needs by id); a list that does not read falls back to the
/// subscription's id range, so no history is lost.
#[test]
fn a_list_of_snapshot_versions_is_read_alone_and_a_bad_one_falls_back_to_a_range() {
    let row = |value: &str| StateRow {
        id: "subv:sub_1".into(),
        value: value.into(),
        version: 1,
    };
    let q = Object::follow_up(&[row("[42,43]")]);
    assert!(q.ids.is_empty());
    assert!(q.prefixes.is_empty());
    let q = Object::follow_up(&[row("not a list")]);
    assert!(q.ids.is_empty());
    assert_eq!(q.prefixes, ["sub:sub_1#"]);
}

/// `sub_1`'s snapshot in month `n`, with `quantity` seats.
fn monthly_snapshot(n: i64, quantity: i64) -> LogRecord {
    let t = T0 + n * (365 * 86_400 / 12);
    event(
        &format!("evt_s{n}"),
        "customer.subscription.updated",
        t,
        BASIL,
        subscription("sub_1", "cus_1", "active", quantity, 2000, t),
    )
}

/// Two years of monthly snapshots but month 12, persisted; then month 12 arrives late.
fn history_and_late_snapshot() -> (Store, [LogRecord; 1]) {
    let history: Vec<LogRecord> = (0..24)
        .filter(|&n| n != 12)
        .map(|n| monthly_snapshot(n, 1 + n))
        .collect();
    let mut store = Store::default();
    apply_with_cache(&history, 5, usize::MAX, &mut store);
    (store, [monthly_snapshot(12, 99)])
}

/// The subscription item rows of `facts`, by id.
fn item_rows(facts: &FactSet) -> Vec<schemas::facts::SubscriptionItemRow> {
    let mut rows = facts.subscription_items.clone();
    rows.sort_by(|a, b| (&a.id, a.version).cmp(&(&b.id, b.version)));
    rows
}

/// A subscription event reads the snapshots on either side of its version, not the whole
/// history: a late event between two of 23 monthly snapshots reads those two and gives
/// the facts and the persisted state the whole history gives.
#[test]
fn a_subscription_event_reads_only_the_snapshots_around_it() {
    let (mut store, late) = history_and_late_snapshot();
    let (expected, _) = Matcher::new(store.state()).apply(&late);

    let (facts, _, m) = apply_with_cache(&late, 1, 0, &mut store);
    assert_eq!(item_rows(&facts), item_rows(&expected));
    let created: Vec<u32> = m.state().subscriptions["sub_1"]
        .iter()
        .map(|s| s.created)
        .collect();
    let month = |n: i64| (T0 + n * (365 * 86_400 / 12)) as u32;
    assert_eq!(created, [month(11), month(12), month(13)]);
    // The list of versions written is the whole history's.
    let state = store.state();
    assert_eq!(state.subscriptions["sub_1"].len(), 24);
    let subv: Vec<u64> = serde_json::from_str(&store.0["subv:sub_1"].value).unwrap();
    let all: Vec<u64> = state.subscriptions["sub_1"]
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(subv, all);

    // The same event again (a duplicate) reads its own snapshot and its neighbours, and
    // gives the same rows.
    let (again, _, m) = apply_with_cache(&late, 1, 0, &mut store);
    assert_eq!(item_rows(&again), item_rows(&expected));
    assert_eq!(m.state().subscriptions["sub_1"].len(), 3);
}

/// A list of versions that does not read makes the subscription's snapshots be read by
/// their id range: the late event still gives the whole history's facts.
#[test]
fn a_subscription_whose_list_does_not_read_is_matched_against_its_whole_history() {
    let (mut store, late) = history_and_late_snapshot();
    let (expected, _) = Matcher::new(store.state()).apply(&late);
    store.0.get_mut("subv:sub_1").unwrap().value = "not a list".into();

    let (facts, _, m) = apply_with_cache(&late, 1, 0, &mut store);
    assert_eq!(item_rows(&facts), item_rows(&expected));
    assert_eq!(m.state().subscriptions["sub_1"].len(), 24);
    // The list is written again, whole.
    let subv: Vec<u64> = serde_json::from_str(&store.0["subv:sub_1"].value).unwrap();
    assert_eq!(subv.len(), 24);
}
