//! `revline migrate` against the Kafka-protocol broker: topics created with durable
//! settings (replication min(3, brokers), min.insync.replicas one less, the retention),
//! said in its output, with a warning for a single replica; a second run finds them.

use e2e::kafka::brokers;
use e2e::{run_to_exit, unique, Options};

#[test]
fn migrate_creates_durable_topics_and_says_what_they_are() {
    let topic = unique("durable");
    let run = || {
        run_to_exit(
            Options::default()
                .env("REVLINE_KAFKA_BROKERS", brokers())
                .env("REVLINE_KAFKA_TOPIC", topic.clone())
                .env("REVLINE_KAFKA_DLQ_TOPIC", format!("{topic}-dlq"))
                .env("REVLINE_KAFKA_PARTITIONS", "2")
                .env("REVLINE_KAFKA_RETENTION_HOURS", "24")
                .arg("migrate"),
        )
    };
    let (status, stdout, stderr) = run();
    assert!(status.success(), "{stdout}\n{stderr}");
    // One broker here: replication 1, and the warning that says what that means.
    for t in [topic.clone(), format!("{topic}-dlq")] {
        assert!(
            stdout.contains(&format!(
                "kafka: created topic {t}: 2 partitions, replication 1 of 1 broker(s), \
                 min.insync.replicas 1, retention 24 h"
            )) || stdout.contains(&format!(
                "kafka: created topic {t} with the broker's defaults"
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("kafka: warning: topic {t} has replication 1")),
            "{stdout}"
        );
    }
    let (status, stdout, stderr) = run();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "kafka: topic {topic} exists (2 partitions, replication 1)"
        )),
        "{stdout}"
    );
    // `auto` is the default and can be said; a malformed value is refused by name.
    let (status, _, stderr) = run_to_exit(
        Options::default()
            .env("REVLINE_KAFKA_BROKERS", brokers())
            .env("REVLINE_KAFKA_REPLICATION", "all")
            .arg("migrate"),
    );
    assert!(!status.success());
    assert!(stderr.contains("REVLINE_KAFKA_REPLICATION"), "{stderr}");
}
