//! The Kafka read port against Tansu: after a rebalance the reconciler drops what it
//! matched since its last checkpoint and moves the consumer back to the committed offsets
//! ([`EventSource::rewind`]), so those records are read again, and nothing before them; and
//! a member knows whether it holds every partition ([`EventSource::sole_reader`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use e2e::kafka::{brokers, create_topic};
use e2e::unique;
use eventlog::kafka::{KafkaConnection, KafkaSource, SourceSettings, PREFETCH_KBYTES};
use eventlog::EventSource;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

/// Records per partition.
const PER_PARTITION: i64 = 5;

/// Produces [`PER_PARTITION`] records to each of partitions 0 and 1.
async fn produce(brokers: &str, topic: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for partition in 0..2 {
        for n in 0..PER_PARTITION {
            let payload = format!("p{partition}-r{n}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .expect("produce");
        }
    }
}

/// Reads until `want` records came (or 30 s passed): their `(partition, offset)`s, from
/// the ids the source gives records without revline headers.
async fn read(
    source: &mut KafkaSource,
    want: usize,
    shutdown: &mut watch::Receiver<bool>,
) -> BTreeSet<(i32, i64)> {
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut records = 0;
    while records < want && Instant::now() < deadline {
        let batch = source
            .next_batch(100, Duration::from_millis(500), shutdown)
            .await
            .expect("read");
        for record in &batch.records {
            records += 1;
            let at = record.headers.event_id.rsplit('/').collect::<Vec<_>>();
            seen.insert((at[1].parse().unwrap(), at[0].parse().unwrap()));
        }
    }
    assert_eq!(records, want, "records read: {seen:?}");
    seen
}

/// A member of consumer group `group` over `topic`, with revline's default prefetch.
fn member(brokers: &str, topic: &str, group: &str) -> KafkaSource {
    KafkaSource::new(SourceSettings {
        connection: KafkaConnection {
            brokers: brokers.to_owned(),
            librdkafka: BTreeMap::new(),
        },
        topic: topic.to_owned(),
        dlq_topic: format!("{topic}-dlq"),
        group_id: group.to_owned(),
        prefetch_kbytes: PREFETCH_KBYTES,
    })
    .expect("consumer")
}

#[tokio::test]
async fn a_rewind_reads_again_from_the_committed_offsets_and_no_further_back() {
    let brokers = brokers();
    let topic = unique("rewind");
    create_topic(&brokers, &topic, 2).await;
    produce(&brokers, &topic).await;
    let (_stop, mut shutdown) = watch::channel(false);
    let mut source = member(&brokers, &topic, &unique("rewind-group"));

    let all: BTreeSet<(i32, i64)> = (0..2)
        .flat_map(|p| (0..PER_PARTITION).map(move |o| (p, o)))
        .collect();
    assert_eq!(read(&mut source, all.len(), &mut shutdown).await, all);

    // A checkpoint covering partition 0 up to offset 2 is durable; nothing of partition 1.
    source
        .commit(&[(0, 2)].into_iter().collect(), &[], &mut shutdown)
        .await
        .unwrap();
    source.rewind().await.expect("rewind");
    let again: BTreeSet<(i32, i64)> = (3..PER_PARTITION)
        .map(|o| (0, o))
        .chain((0..PER_PARTITION).map(|o| (1, o)))
        .collect();
    assert_eq!(read(&mut source, again.len(), &mut shutdown).await, again);

    // Rewound again with nothing new committed, the same records come back, once each.
    source.rewind().await.expect("rewind");
    assert_eq!(read(&mut source, again.len(), &mut shutdown).await, again);
    source.close().await;
}

/// Polls `sources` (each for a moment, in turn) until the first one's
/// [`EventSource::sole_reader`] is `sole`, or 60 s pass.
async fn poll_until_sole(
    sources: &mut [&mut KafkaSource],
    sole: bool,
    shutdown: &mut watch::Receiver<bool>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for source in sources.iter_mut() {
            source
                .next_batch(100, Duration::from_millis(200), shutdown)
                .await
                .expect("read");
        }
        if sources[0].sole_reader().await == sole {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the member's sole_reader did not turn {sole} within 60 s"
        );
    }
}

/// A member holds every partition while it is alone in its group, and says so
/// (`sole_reader`, which lets the reconciler sweep rarely); once a second member takes a
/// partition neither does, and when that member leaves, the first holds them all again.
#[tokio::test]
async fn a_member_is_the_sole_reader_only_while_it_holds_every_partition() {
    let brokers = brokers();
    let topic = unique("sole");
    create_topic(&brokers, &topic, 2).await;
    produce(&brokers, &topic).await;
    let group = unique("sole-group");
    let join = || member(&brokers, &topic, &group);
    let (_stop, mut shutdown) = watch::channel(false);
    let mut first = join();
    assert!(!first.sole_reader().await, "nothing is assigned yet");
    read(&mut first, 2 * PER_PARTITION as usize, &mut shutdown).await;
    assert!(first.sole_reader().await, "alone, it holds both partitions");

    let mut second = join();
    // The second member takes a partition.
    poll_until_sole(&mut [&mut first, &mut second], false, &mut shutdown).await;
    assert!(!second.sole_reader().await, "each holds one partition");

    second.close().await;
    drop(second);
    // The first member holds both partitions again.
    poll_until_sole(&mut [&mut first], true, &mut shutdown).await;
    first.close().await;
}
