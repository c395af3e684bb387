//! revline's own CPU per event, without Kafka or ClickHouse: decodes and matches a backlog
//! in batches, as the consumer does, and prints the time per event spent in each step, for
//! each quarter of the history (does matching get slower as the state grows?), then the
//! state's size and the process's peak RSS.
//!
//! The backlog is the JSONL that `testkit`'s `backlog` example writes (and that
//! `bench/reconcile.sh` leaves in `bench/out/backlog.jsonl`):
//!
//! `cargo run --release -p reconcile --example matcher_cpu -- bench/out/backlog.jsonl [BATCH]`
//!
//! Single-threaded and deterministic, so unlike `bench/reconcile.sh` its figures do not
//! depend on what ClickHouse or the broker do on the same cores: the figure to watch when
//! changing the decoder or the matcher. Not measured here: building and sending the
//! inserts, and the consumer's bookkeeping.

use std::io::BufRead;
use std::time::{Duration, Instant};

use reconcile::matcher::{decode, Matcher};
use schemas::{Envelope, LogRecord};

#[derive(serde::Deserialize)]
struct Line {
    received_at_ms: i64,
    payload: String,
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

fn per_event_us(d: Duration, events: usize) -> f64 {
    d.as_secs_f64() * 1e6 / events.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        return Err("usage: matcher_cpu BACKLOG.jsonl [BATCH (2000)]".into());
    };
    let batch: usize = match args.get(1) {
        Some(b) => b
            .parse()
            .map_err(|_| format!("BATCH must be a positive integer, not {b:?}"))?,
        None => 2_000,
    };
    if batch == 0 {
        return Err("BATCH must be a positive integer, not 0".into());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut records = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line: Line = serde_json::from_str(&line?)
            .map_err(|e| format!("{path}, line {}: not a backlog line: {e}", n + 1))?;
        let body = line.payload.into_bytes();
        let env = Envelope::parse(&body, None);
        records.push(LogRecord::new(body, &env, "default", line.received_at_ms));
    }
    if records.is_empty() {
        return Err(format!("{path}: no events").into());
    }
    let total = records.len();
    println!(
        "events: {total}, batches of {batch}, input read (peak RSS {} MB)",
        peak_rss_mb()
    );

    let mut matcher = Matcher::new(Default::default());
    let quarter = total.div_ceil(4);
    let (mut decode_t, mut match_t, mut in_quarter, mut facts) =
        (Duration::ZERO, Duration::ZERO, 0usize, 0usize);
    let (mut all_decode, mut all_match) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0usize;
    for chunk in records.chunks(batch) {
        let t0 = Instant::now();
        let decoded = decode(chunk);
        let t1 = Instant::now();
        let (set, _) = matcher.apply_decoded(chunk, decoded);
        let t2 = Instant::now();
        facts += set.fact_count();
        drop(set);
        decode_t += t1 - t0;
        match_t += t2 - t1;
        in_quarter += chunk.len();
        done += chunk.len();
        if in_quarter >= quarter || done == total {
            println!(
                "events {:>9}..{done:<9} decode {:5.1} us/event, match {:5.1} us/event",
                done - in_quarter,
                per_event_us(decode_t, in_quarter),
                per_event_us(match_t, in_quarter),
            );
            all_decode += decode_t;
            all_match += match_t;
            (decode_t, match_t, in_quarter) = (Duration::ZERO, Duration::ZERO, 0);
        }
    }
    println!(
        "all: decode {:.1} us/event, match {:.1} us/event, together {:.1}; {facts} fact rows",
        per_event_us(all_decode, total),
        per_event_us(all_match, total),
        per_event_us(all_decode + all_match, total),
    );
    println!(
        "state: about {} MB (its own estimate); peak RSS {} MB",
        matcher.state().approx_bytes() / (1 << 20),
        peak_rss_mb()
    );
    Ok(())
}
