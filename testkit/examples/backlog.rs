//! Benchmark input: produces a backlog of realistic Stripe events to a Kafka topic (as
//! `ingest` would: same key and headers) and writes the same events as JSONEachRow for the
//! ClickHouse insert ceiling.
//!
//! A fixed set of customers, each with a subscription renewing every month: per customer
//! and month a subscription update, an invoice created → finalized → paid, its charge and
//! invoice payment, and now and then a partial refund. More events means more months of
//! history, not more customers, so memory that grows with the backlog would show.
//!
//! `cargo run --release -p testkit --example backlog -- BROKERS TOPIC EVENTS CUSTOMERS OUT.jsonl`

use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use eventlog::kafka::to_kafka_headers;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use schemas::LogRecord;
use testkit::{charge, event, invoice, invoice_payment, refund, subscription, T0};

const MONTH: i64 = 2_592_000;

fn month_events(c: usize, m: i64) -> Vec<LogRecord> {
    let (cus, sub) = (format!("cus_b{c}"), format!("sub_b{c}"));
    let t = T0 + m * MONTH + (c as i64 % 3600);
    let inv = format!("in_b{c}_{m}");
    let (pi, ch) = (format!("pi_b{c}_{m}"), format!("ch_b{c}_{m}"));
    let amount = 2000 + 500 * (c as i64 % 4);
    let quantity = 1 + (m + c as i64) % 3;
    let mut out = vec![
        event(
            &format!("evt_bs_{c}_{m}"),
            "customer.subscription.updated",
            t,
            "2025-05-28.basil",
            subscription(&sub, &cus, "active", quantity, amount, t),
        ),
        event(
            &format!("evt_bi1_{c}_{m}"),
            "invoice.created",
            t,
            "2025-05-28.basil",
            invoice(&inv, &cus, &sub, "draft", amount, 0, t),
        ),
        event(
            &format!("evt_bi2_{c}_{m}"),
            "invoice.finalized",
            t + 3600,
            "2025-05-28.basil",
            invoice(&inv, &cus, &sub, "open", amount, 0, t),
        ),
        event(
            &format!("evt_bi3_{c}_{m}"),
            "invoice.paid",
            t + 3602,
            "2025-05-28.basil",
            invoice(&inv, &cus, &sub, "paid", amount, amount, t),
        ),
        event(
            &format!("evt_bc_{c}_{m}"),
            "charge.succeeded",
            t + 3601,
            "2025-05-28.basil",
            charge(&ch, &pi, &cus, amount, 0, t + 3601),
        ),
        event(
            &format!("evt_bp_{c}_{m}"),
            "invoice_payment.paid",
            t + 3602,
            "2025-05-28.basil",
            invoice_payment(&format!("inpay_b{c}_{m}"), &inv, &pi, amount, t + 3602),
        ),
    ];
    if (c + m as usize).is_multiple_of(10) {
        let re = format!("re_b{c}_{m}");
        out.push(event(
            &format!("evt_br_{c}_{m}"),
            "refund.created",
            t + 86_400,
            "2025-05-28.basil",
            refund(&re, &ch, &pi, 500, "succeeded", t + 86_400),
        ));
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, events, customers, out] = args.as_slice() else {
        eprintln!("usage: backlog BROKERS TOPIC EVENTS CUSTOMERS OUT.jsonl");
        std::process::exit(2);
    };
    let (target, customers): (usize, usize) = (events.parse()?, customers.parse()?);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .create()?;
    let mut jsonl = BufWriter::new(std::fs::File::create(out)?);
    let started = Instant::now();
    let (mut produced, mut bytes, mut month) = (0usize, 0usize, 0i64);
    let mut pending = Vec::new();
    'outer: loop {
        for c in 0..customers {
            for record in month_events(c, month) {
                if produced == target {
                    break 'outer;
                }
                let headers = to_kafka_headers(&record.headers, &[]);
                let delivery = producer
                    .send_result(
                        FutureRecord::to(topic)
                            .key(record.key.as_bytes())
                            .payload(&record.payload)
                            .headers(headers),
                    )
                    .map_err(|(e, _)| e)?;
                pending.push(delivery);
                serde_json::to_writer(
                    &mut jsonl,
                    &serde_json::json!({
                        "id": record.headers.event_id,
                        "event_type": record.headers.event_type,
                        "received_at_ms": record.headers.received_at_ms,
                        "payload": String::from_utf8_lossy(&record.payload),
                    }),
                )?;
                jsonl.write_all(b"\n")?;
                bytes += record.payload.len();
                produced += 1;
                if pending.len() >= 20_000 {
                    for d in pending.drain(..) {
                        d.await?.map_err(|(e, _)| e)?;
                    }
                }
            }
        }
        month += 1;
    }
    for d in pending.drain(..) {
        d.await?.map_err(|(e, _)| e)?;
    }
    jsonl.flush()?;
    let _ = producer.flush(Duration::from_secs(30));
    eprintln!(
        "produced {produced} events ({} customers, {} months, mean {} bytes) in {:.1} s",
        customers,
        month + 1,
        bytes / produced.max(1),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
