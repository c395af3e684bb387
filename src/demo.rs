//! A generated Stripe event history for `revline demo`: a small subscription business over
//! some months, as the webhooks Stripe would send, in both payload generations.
//!
//! Customers pay in usd, eur or jpy for monthly, annual or weekly prices, some after a
//! trial. Along the way they change seats, upgrade, downgrade, switch to an annual price,
//! use forever and once coupons, cancel at the end of a period (and some come back),
//! fail a payment and retry it, get partial refunds, and one customer loses a dispute.
//! Billing periods are 30, 365 or 7 days long (not calendar months): the demo is about the
//! events, not the calendar.
//!
//! Everything is test mode (`livemode: false`), every id starts with a `demo` prefix
//! (`evt_demo_…`, `cus_demo_…`), and the same options always give the same history.
//! Nothing later than `now` is generated.

use serde_json::{json, Value};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub customers: usize,
    pub months: u32,
    pub seed: u64,
    /// The history ends here (Unix seconds).
    pub now: i64,
}

/// One webhook event: its id and the body Stripe would post.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub created: i64,
    pub body: Vec<u8>,
}

const BASIL: &str = "2025-03-31.basil";
const ACACIA: &str = "2025-02-24.acacia";
const DAY: i64 = 86_400;

/// A price customers subscribe to.
struct Plan {
    price: &'static str,
    product: &'static str,
    currency: &'static str,
    unit: i64,
    interval: &'static str,
    days: i64,
}

const PLANS: &[Plan] = &[
    plan(
        "price_demo_basic_usd_month",
        "prod_demo_basic",
        "usd",
        2000,
        "month",
    ),
    plan(
        "price_demo_pro_usd_month",
        "prod_demo_pro",
        "usd",
        5000,
        "month",
    ),
    plan(
        "price_demo_pro_usd_year",
        "prod_demo_pro",
        "usd",
        50000,
        "year",
    ),
    plan(
        "price_demo_team_usd_week",
        "prod_demo_team",
        "usd",
        900,
        "week",
    ),
    plan(
        "price_demo_basic_eur_month",
        "prod_demo_basic",
        "eur",
        1800,
        "month",
    ),
    plan(
        "price_demo_pro_eur_month",
        "prod_demo_pro",
        "eur",
        4500,
        "month",
    ),
    plan(
        "price_demo_basic_jpy_month",
        "prod_demo_basic",
        "jpy",
        2500,
        "month",
    ),
    plan(
        "price_demo_pro_jpy_month",
        "prod_demo_pro",
        "jpy",
        6000,
        "month",
    ),
];

const fn plan(
    price: &'static str,
    product: &'static str,
    currency: &'static str,
    unit: i64,
    interval: &'static str,
) -> Plan {
    let days = match interval.as_bytes()[0] {
        b'y' => 365,
        b'w' => 7,
        _ => 30,
    };
    Plan {
        price,
        product,
        currency,
        unit,
        interval,
        days,
    }
}

/// The plan of `product` in `currency` billed every `interval`, if there is one.
fn find(product: &str, currency: &str, interval: &str) -> Option<usize> {
    PLANS
        .iter()
        .position(|p| p.product == product && p.currency == currency && p.interval == interval)
}

/// A small deterministic generator (xorshift64*): the same seed gives the same history on
/// every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A coupon as Stripe renders it inside a discount.
fn coupon(
    id: &str,
    percent_off: Option<i64>,
    amount_off: Option<(i64, &str)>,
    duration: &str,
) -> Value {
    json!({
        "id": id, "object": "coupon", "percent_off": percent_off,
        "amount_off": amount_off.map(|a| a.0), "currency": amount_off.map(|a| a.1),
        "duration": duration, "duration_in_months": null, "valid": true,
    })
}

/// A customer's subscription as the generator tracks it.
struct Sub {
    id: String,
    item: String,
    plan: usize,
    quantity: i64,
    status: &'static str,
    cancel_at_period_end: bool,
    ended_at: Option<i64>,
    period_start: i64,
    trial_end: Option<i64>,
    /// The forever discount object, when the customer has one.
    discount: Option<Value>,
    created: i64,
}

/// One customer's generation: their ids, currency and payload generation.
struct Customer {
    n: usize,
    id: String,
    currency: &'static str,
    api: &'static str,
}

impl Customer {
    fn basil(&self) -> bool {
        self.api == BASIL
    }
}

/// One attempt at paying an invoice: the charge, its payment intent and what it asks.
struct Payment<'a> {
    charge: &'a str,
    intent: &'a str,
    invoice: &'a str,
    amount: i64,
    currency: &'a str,
    at: i64,
}

struct Generator {
    rng: Rng,
    now: i64,
    events: Vec<Event>,
    /// Object counter: every generated object id is unique.
    objects: u64,
    /// Whether the one lost dispute was generated.
    disputed: bool,
}

impl Generator {
    fn emit(&mut self, api: &str, event_type: &str, created: i64, object: Value) {
        if created > self.now {
            return;
        }
        let id = format!("evt_demo_{:07}", self.events.len() + 1);
        let body = json!({
            "id": id, "object": "event", "api_version": api, "created": created,
            "livemode": false, "pending_webhooks": 1, "type": event_type,
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": object},
        });
        self.events.push(Event {
            id,
            created,
            body: serde_json::to_vec(&body).expect("JSON values serialise"),
        });
    }

    fn object_id(&mut self, prefix: &str, c: &Customer) -> String {
        self.objects += 1;
        format!("{prefix}_demo_{}_{}", c.n, self.objects)
    }

    fn subscription_json(&self, c: &Customer, s: &Sub) -> Value {
        let p = &PLANS[s.plan];
        let period_end = s.period_start + p.days * DAY;
        let price = json!({
            "id": p.price, "object": "price", "product": p.product, "currency": p.currency,
            "unit_amount": p.unit, "unit_amount_decimal": p.unit.to_string(), "billing_scheme": "per_unit",
            "type": "recurring",
            "recurring": {"interval": p.interval, "interval_count": 1, "usage_type": "licensed"},
        });
        let mut item = json!({
            "id": s.item, "object": "subscription_item", "quantity": s.quantity, "price": price,
            "subscription": s.id, "discounts": [],
        });
        let mut sub = json!({
            "id": s.id, "object": "subscription", "customer": c.id, "status": s.status,
            "currency": p.currency, "created": s.created, "start_date": s.created,
            "cancel_at_period_end": s.cancel_at_period_end,
            "cancel_at": if s.cancel_at_period_end { json!(period_end) } else { Value::Null },
            "canceled_at": s.ended_at, "ended_at": s.ended_at,
            "trial_start": s.trial_end.map(|_| s.created), "trial_end": s.trial_end,
            "pause_collection": null, "livemode": false,
        });
        if c.basil() {
            item["current_period_start"] = json!(s.period_start);
            item["current_period_end"] = json!(period_end);
            sub["discounts"] = match &s.discount {
                Some(d) => json!([d["id"]]),
                None => json!([]),
            };
        } else {
            item["plan"] = json!({
                "id": p.price, "object": "plan", "product": p.product, "amount": p.unit,
                "currency": p.currency, "interval": p.interval, "interval_count": 1, "usage_type": "licensed",
            });
            sub["current_period_start"] = json!(s.period_start);
            sub["current_period_end"] = json!(period_end);
            sub["discount"] = s.discount.clone().unwrap_or(Value::Null);
            sub["discounts"] = match &s.discount {
                Some(d) => json!([d["id"]]),
                None => json!([]),
            };
        }
        sub["items"] = json!({"object": "list", "has_more": false, "data": [item]});
        sub
    }

    fn subscription_event(&mut self, c: &Customer, s: &Sub, kind: &str, at: i64) {
        let object = self.subscription_json(c, s);
        self.emit(c.api, &format!("customer.subscription.{kind}"), at, object);
    }

    /// A subscription invoice of one period, with the discount it carries.
    #[allow(clippy::too_many_arguments)]
    fn invoice_json(
        &self,
        c: &Customer,
        s: &Sub,
        id: &str,
        status: &str,
        discount: Option<(&Value, i64)>,
        finalized: i64,
        paid: Option<(i64, &str, &str)>,
        attempts: i64,
    ) -> Value {
        let p = &PLANS[s.plan];
        let period_end = s.period_start + p.days * DAY;
        let subtotal = p.unit * s.quantity;
        let off = discount.map_or(0, |(_, amount)| amount);
        let total = subtotal - off;
        let amount_paid = if paid.is_some() { total } else { 0 };
        let discount_amounts = match discount {
            Some((d, amount)) => json!([{"amount": amount, "discount": d["id"]}]),
            None => json!([]),
        };
        let line_id = format!("il_{id}");
        let mut line = json!({
            "id": line_id, "object": "line_item", "amount": subtotal, "currency": p.currency,
            "quantity": s.quantity, "period": {"start": s.period_start, "end": period_end},
            "discount_amounts": discount_amounts, "discountable": true,
        });
        let mut invoice = json!({
            "id": id, "object": "invoice", "customer": c.id, "currency": p.currency, "status": status,
            "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
            "number": format!("DEMO-{}", id.trim_start_matches("in_demo_")),
            "created": finalized - 60, "period_start": s.period_start, "period_end": period_end,
            "subtotal": subtotal, "total": total, "total_excluding_tax": total,
            "amount_due": total, "amount_paid": amount_paid, "amount_remaining": total - amount_paid,
            "attempt_count": attempts, "attempted": attempts > 0,
            "total_discount_amounts": discount_amounts,
            "status_transitions": {
                "finalized_at": finalized, "paid_at": paid.map(|p| p.0),
                "voided_at": null, "marked_uncollectible_at": null,
            },
            "livemode": false,
        });
        if c.basil() {
            line["parent"] = json!({"type": "subscription_item_details", "subscription_item_details": {
                "subscription": s.id, "subscription_item": s.item, "proration": false, "invoice_item": null}});
            line["pricing"] = json!({"type": "price_details",
                "price_details": {"price": p.price, "product": p.product},
                "unit_amount_decimal": p.unit.to_string()});
            line["taxes"] = json!([]);
            line["pretax_credit_amounts"] = json!([]);
            invoice["total_taxes"] = json!([]);
            invoice["parent"] = json!({"type": "subscription_details",
                "subscription_details": {"subscription": s.id, "metadata": {}}});
        } else {
            line["type"] = json!("subscription");
            line["subscription"] = json!(s.id);
            line["subscription_item"] = json!(s.item);
            line["proration"] = json!(false);
            line["amount_excluding_tax"] = json!(subtotal);
            line["tax_amounts"] = json!([]);
            line["price"] = json!({"id": p.price, "object": "price", "product": p.product,
                "currency": p.currency, "unit_amount": p.unit,
                "recurring": {"interval": p.interval, "interval_count": 1, "usage_type": "licensed"}});
            invoice["subscription"] = json!(s.id);
            invoice["tax"] = json!(0);
            invoice["total_tax_amounts"] = json!([]);
            invoice["charge"] = json!(paid.map(|p| p.1));
            invoice["payment_intent"] = json!(paid.map(|p| p.2));
            invoice["paid"] = json!(paid.is_some());
            invoice["paid_out_of_band"] = json!(false);
        }
        invoice["lines"] =
            json!({"object": "list", "has_more": false, "total_count": 1, "data": [line]});
        invoice
    }

    /// A charge of `pay`, `status` and `refunded` so far.
    fn charge_json(&self, c: &Customer, pay: &Payment<'_>, status: &str, refunded: i64) -> Value {
        let amount = pay.amount;
        let mut charge = json!({
            "id": pay.charge, "object": "charge", "amount": amount,
            "amount_captured": if status == "succeeded" { amount } else { 0 },
            "amount_refunded": refunded, "currency": pay.currency, "customer": c.id,
            "payment_intent": pay.intent, "status": status, "captured": status == "succeeded",
            "paid": status == "succeeded", "refunded": refunded == amount && amount > 0,
            "disputed": false, "balance_transaction": null, "created": pay.at, "livemode": false,
            "failure_code": if status == "failed" { json!("card_declined") } else { Value::Null },
        });
        if !c.basil() {
            charge["invoice"] = json!(pay.invoice);
        }
        charge
    }

    /// One period's invoice, paid (after a failed attempt, sometimes), with a partial
    /// refund or the lost dispute now and then.
    fn bill(&mut self, c: &Customer, s: &mut Sub, once: &mut Option<Value>) {
        let t = s.period_start;
        let p = &PLANS[s.plan];
        let subtotal = p.unit * s.quantity;
        let invoice = self.object_id("in", c);
        // A once coupon takes its amount off the first invoice only; a forever one off all.
        let discount = match (once.take(), &s.discount) {
            (Some(d), _) => {
                let off = d["coupon"]["amount_off"]
                    .as_i64()
                    .unwrap_or(0)
                    .min(subtotal);
                Some((d, off))
            }
            (None, Some(d)) => {
                let percent = d["coupon"]["percent_off"].as_i64().unwrap_or(0);
                Some((d.clone(), subtotal * percent / 100))
            }
            (None, None) => None,
        };
        let discount_ref = discount.as_ref().map(|(d, off)| (d, *off));
        let total = subtotal - discount.as_ref().map_or(0, |(_, off)| *off);
        let finalized = t + 60;
        let open = self.invoice_json(c, s, &invoice, "open", discount_ref, finalized, None, 0);
        self.emit(c.api, "invoice.finalized", finalized, open);
        let pi = self.object_id("pi", c);
        let mut paid_at = t + 3600;
        let mut attempts = 1;
        if self.rng.chance(6) {
            // The card is declined; Smart Retries succeed three days later.
            let failed_charge = self.object_id("ch", c);
            let failed = Payment {
                charge: &failed_charge,
                intent: &pi,
                invoice: &invoice,
                amount: total,
                currency: p.currency,
                at: paid_at,
            };
            let ch = self.charge_json(c, &failed, "failed", 0);
            self.emit(c.api, "charge.failed", paid_at, ch);
            let failed =
                self.invoice_json(c, s, &invoice, "open", discount_ref, finalized, None, 1);
            self.emit(c.api, "invoice.payment_failed", paid_at, failed);
            s.status = "past_due";
            self.subscription_event(c, s, "updated", paid_at + 1);
            paid_at += 3 * DAY;
            attempts = 2;
            s.status = "active";
        }
        let charge = self.object_id("ch", c);
        let paying = Payment {
            charge: &charge,
            intent: &pi,
            invoice: &invoice,
            amount: total,
            currency: p.currency,
            at: paid_at,
        };
        let ch = self.charge_json(c, &paying, "succeeded", 0);
        self.emit(c.api, "charge.succeeded", paid_at, ch);
        let paid = self.invoice_json(
            c,
            s,
            &invoice,
            "paid",
            discount_ref,
            finalized,
            Some((paid_at, &charge, &pi)),
            attempts,
        );
        self.emit(c.api, "invoice.paid", paid_at, paid);
        if attempts > 1 {
            self.subscription_event(c, s, "updated", paid_at + 1);
        }
        if c.basil() {
            let inpay = self.object_id("inpay", c);
            self.emit(
                c.api,
                "invoice_payment.paid",
                paid_at,
                json!({
                    "id": inpay, "object": "invoice_payment", "invoice": invoice,
                    "amount_requested": total, "amount_paid": total, "currency": p.currency,
                    "is_default": true, "status": "paid", "created": paid_at, "livemode": false,
                    "status_transitions": {"paid_at": paid_at, "canceled_at": null},
                    "payment": {"type": "payment_intent", "payment_intent": pi},
                }),
            );
        }
        if !self.disputed && c.currency == "usd" && total > 0 {
            // The one lost dispute of the history.
            self.disputed = true;
            let dispute = self.object_id("dp", c);
            let opened = paid_at + 5 * DAY;
            let mut object = json!({
                "id": dispute, "object": "dispute", "amount": total, "currency": p.currency,
                "charge": charge, "payment_intent": pi, "reason": "fraudulent",
                "status": "needs_response", "is_charge_refundable": false,
                "balance_transactions": [], "created": opened, "livemode": false,
            });
            self.emit(c.api, "charge.dispute.created", opened, object.clone());
            object["status"] = json!("lost");
            self.emit(c.api, "charge.dispute.closed", opened + 10 * DAY, object);
        } else if total > 0 && self.rng.chance(5) {
            // A partial refund: a quarter back.
            let amount = total / 4;
            let at = paid_at + 2 * DAY;
            let refund = self.object_id("re", c);
            let ch = self.charge_json(c, &paying, "succeeded", amount);
            self.emit(c.api, "charge.refunded", at, ch);
            self.emit(
                c.api,
                "refund.created",
                at,
                json!({
                    "id": refund, "object": "refund", "amount": amount, "currency": p.currency,
                    "charge": charge, "payment_intent": pi, "status": "succeeded",
                    "reason": "requested_by_customer", "balance_transaction": null, "created": at,
                }),
            );
        }
    }

    /// A change in the middle of a period: seats, plan, or a cancellation at its end.
    fn change(&mut self, c: &Customer, s: &mut Sub) {
        let p = &PLANS[s.plan];
        let at = s.period_start + p.days * DAY / 2;
        let roll = self.rng.below(100);
        let switch_to = |product: &str, interval: &str| find(product, p.currency, interval);
        match roll {
            0..=7 => {
                // One seat more, or one fewer.
                s.quantity = if s.quantity > 1 && self.rng.chance(40) {
                    s.quantity - 1
                } else {
                    s.quantity + 1
                };
            }
            8..=11 if p.product == "prod_demo_basic" => match switch_to("prod_demo_pro", "month") {
                Some(pro) => s.plan = pro,
                None => return,
            },
            12..=13 if p.product == "prod_demo_pro" && p.interval == "month" => {
                match switch_to("prod_demo_basic", "month") {
                    Some(basic) => s.plan = basic,
                    None => return,
                }
            }
            14..=15 if p.product == "prod_demo_pro" && p.interval == "month" => {
                match switch_to("prod_demo_pro", "year") {
                    Some(annual) => s.plan = annual,
                    None => return,
                }
            }
            16..=19 => s.cancel_at_period_end = true,
            _ => return,
        }
        self.subscription_event(c, s, "updated", at);
    }

    fn customer(&mut self, n: usize, start: i64) {
        let (currency, api) = {
            let currency = match self.rng.below(10) {
                0..=6 => "usd",
                7..=8 => "eur",
                _ => "jpy",
            };
            let api = if self.rng.chance(30) { ACACIA } else { BASIL };
            (currency, api)
        };
        let c = Customer {
            n,
            id: format!("cus_demo_{n}"),
            currency,
            api,
        };
        let country = match currency {
            "eur" => ["DE", "FR", "NL", "ES"][self.rng.below(4) as usize],
            "jpy" => "JP",
            _ => ["US", "US", "US", "CA", "GB"][self.rng.below(5) as usize],
        };
        self.emit(
            c.api,
            "customer.created",
            start,
            json!({
                "id": c.id, "object": "customer", "email": format!("customer{n}@example.com"),
                "address": {"country": country}, "currency": currency, "balance": 0,
                "created": start, "livemode": false,
            }),
        );
        // Forever 20 % off for some; a once 10.00 off the first invoice for some in usd.
        let forever = self.rng.chance(15).then(|| {
            json!({
                "id": format!("di_demo_{n}_forever"), "object": "discount", "customer": c.id,
                "subscription": null, "subscription_item": null, "invoice": null, "start": start,
                "end": null, "coupon": coupon("DEMO_FOREVER20", Some(20), None, "forever"),
            })
        });
        let mut once = (currency == "usd" && self.rng.chance(10)).then(|| {
            json!({
                "id": format!("di_demo_{n}_once"), "object": "discount", "customer": c.id,
                "subscription": null, "subscription_item": null, "invoice": null, "start": start,
                "end": null, "coupon": coupon("DEMO_WELCOME10", None, Some((1000, "usd")), "once"),
            })
        });
        for d in forever.iter().chain(once.iter()) {
            self.emit(c.api, "customer.discount.created", start, d.clone());
        }

        let mut begins = start;
        let mut trial = self.rng.chance(40);
        let mut k = 0;
        while begins <= self.now {
            k += 1;
            let candidates: Vec<usize> = PLANS
                .iter()
                .enumerate()
                .filter(|(_, p)| p.currency == currency)
                .map(|(i, _)| i)
                .collect();
            // Mostly monthly; the annual and weekly prices are the rarer choices.
            let plan = candidates[self.rng.below(candidates.len() as u64) as usize];
            let plan = if PLANS[plan].interval != "month" && self.rng.chance(50) {
                candidates[0]
            } else {
                plan
            };
            let mut s = Sub {
                id: format!("sub_demo_{n}_{k}"),
                item: format!("si_demo_{n}_{k}"),
                plan,
                quantity: 1 + self.rng.below(3) as i64,
                status: if trial { "trialing" } else { "active" },
                cancel_at_period_end: false,
                ended_at: None,
                period_start: begins,
                trial_end: trial.then_some(begins + 14 * DAY),
                discount: forever.clone().map(|mut d| {
                    d["subscription"] = json!(format!("sub_demo_{n}_{k}"));
                    d
                }),
                created: begins,
            };
            self.subscription_event(&c, &s, "created", begins);
            if let Some(end) = s.trial_end {
                s.status = "active";
                s.period_start = end;
                self.subscription_event(&c, &s, "updated", end);
            }
            trial = false;
            // Periods until it is cancelled or the history ends.
            loop {
                if s.period_start > self.now {
                    return;
                }
                self.bill(&c, &mut s, &mut once);
                let was_canceling = s.cancel_at_period_end;
                if !was_canceling {
                    self.change(&c, &mut s);
                }
                let end = s.period_start + PLANS[s.plan].days * DAY;
                if s.cancel_at_period_end {
                    s.status = "canceled";
                    s.ended_at = Some(end);
                    self.subscription_event(&c, &s, "deleted", end + 30);
                    break;
                }
                s.period_start = end;
            }
            // Some come back a few weeks later with a new subscription.
            if !self.rng.chance(35) {
                return;
            }
            begins = s.ended_at.unwrap_or(begins) + (20 + self.rng.below(40) as i64) * DAY;
        }
    }
}

/// The history of `o.customers` customers over `o.months` months before `o.now`, in time
/// order.
pub fn generate(o: &Options) -> Vec<Event> {
    let mut g = Generator {
        rng: Rng::new(o.seed),
        now: o.now,
        events: Vec::new(),
        objects: 0,
        disputed: false,
    };
    let span = i64::from(o.months.max(1)) * 30 * DAY;
    let first = o.now - span;
    for n in 1..=o.customers {
        // Customers arrive over the first three quarters of the history.
        let start = first + g.rng.below((span * 3 / 4).max(1) as u64) as i64;
        g.customer(n, start);
    }
    // Stable by time, then by generation order (the event id).
    g.events
        .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    g.events
}

/// Events a delivery shuffles among themselves: Stripe does not promise any order, but
/// what it sends out of order is close in time (retries, parallel deliveries).
const SHUFFLE_WINDOW: usize = 200;

/// The order Stripe might deliver in: shuffled within windows of [`SHUFFLE_WINDOW`]
/// consecutive events, with about one event in twenty sent a second time in the window
/// after its own.
pub fn delivery(events: &[Event], seed: u64) -> Vec<&Event> {
    let mut rng = Rng::new(seed ^ 0xD311_7E47);
    let mut out: Vec<&Event> = Vec::with_capacity(events.len() * 21 / 20);
    let mut again: Vec<&Event> = Vec::new();
    for window in events.chunks(SHUFFLE_WINDOW) {
        let mut batch: Vec<&Event> = window.iter().chain(again.drain(..)).collect();
        again.extend(window.iter().filter(|_| rng.chance(5)));
        for i in (1..batch.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            batch.swap(i, j);
        }
        out.extend(batch);
    }
    out.extend(again);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(seed: u64) -> Options {
        Options {
            customers: 60,
            months: 12,
            seed,
            now: 1_780_000_000,
        }
    }

    fn types(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let v: Value = serde_json::from_slice(&e.body).unwrap();
                v["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn the_same_options_give_the_same_history() {
        let (a, b) = (generate(&options(7)), generate(&options(7)));
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.body == y.body));
        assert_ne!(
            generate(&options(8)).len(),
            0,
            "another seed gives a history too"
        );
    }

    #[test]
    fn the_history_has_what_the_demo_promises() {
        let events = generate(&options(1));
        let all = types(&events);
        for wanted in [
            "customer.created",
            "customer.discount.created",
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "invoice.finalized",
            "invoice.paid",
            "invoice.payment_failed",
            "invoice_payment.paid",
            "charge.succeeded",
            "charge.failed",
            "charge.refunded",
            "refund.created",
            "charge.dispute.closed",
        ] {
            assert!(all.iter().any(|t| t == wanted), "no {wanted} event");
        }
        let bodies: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_slice(&e.body).unwrap())
            .collect();
        for api in [BASIL, ACACIA] {
            assert!(
                bodies.iter().any(|b| b["api_version"] == api),
                "no {api} event"
            );
        }
        for currency in ["usd", "eur", "jpy"] {
            assert!(
                bodies
                    .iter()
                    .any(|b| b["data"]["object"]["currency"] == currency),
                "no {currency} object"
            );
        }
        for interval in ["month", "year", "week"] {
            assert!(
                bodies
                    .iter()
                    .any(
                        |b| b["data"]["object"]["items"]["data"][0]["price"]["recurring"]
                            ["interval"]
                            == interval
                    ),
                "no {interval} price"
            );
        }
        assert!(bodies.iter().all(|b| b["livemode"] == false));
        assert!(events.iter().all(|e| e.id.starts_with("evt_demo_")));
        assert!(events.iter().all(|e| e.created <= 1_780_000_000));
        let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), events.len(), "event ids are unique");
        assert!(events.windows(2).all(|w| w[0].created <= w[1].created));
    }

    #[test]
    fn delivery_shuffles_and_repeats_some_events() {
        let events = generate(&options(3));
        let sent = delivery(&events, 3);
        assert!(sent.len() > events.len(), "some duplicates");
        let mut ids: Vec<&str> = sent.iter().map(|e| e.id.as_str()).collect();
        assert!(ids.windows(2).any(|w| w[0] > w[1]), "not in order");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), events.len(), "every event is sent");
    }
}
