//! Kafka-protocol helpers: topics on the shared Tansu broker `infra/test.sh` started, a
//! consumer that reads a topic from the start, and a private Tansu process for tests that
//! stop and restart the broker.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;

/// The shared broker (`REVLINE_TEST_KAFKA_BROKERS`, default `127.0.0.1:9092`).
pub fn brokers() -> String {
    let brokers =
        std::env::var("REVLINE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let addr: SocketAddr = brokers
        .parse()
        .expect("REVLINE_TEST_KAFKA_BROKERS is host:port");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok(),
        "no Kafka-protocol broker at {brokers}: run the tests with infra/test.sh, which starts Tansu"
    );
    brokers
}

/// Creates a topic and waits until its metadata is visible.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let result = admin
            .create_topics(
                [&NewTopic::new(
                    topic,
                    partitions,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await;
        match result {
            Ok(results) if results.iter().all(|r| r.is_ok()) => break,
            other if Instant::now() > deadline => panic!("cannot create topic {topic}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("metadata client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if md.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && t.partitions().len() == partitions as usize
            }) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} never became visible"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads `topic` from the beginning until `expected` records arrived or `timeout` passed,
/// then keeps reading for `settle` to catch any extra (duplicate) records.
pub fn consume(
    brokers: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", super::unique("e2e-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now > deadline || settle_until.is_some_and(|s| now > s) {
            break;
        }
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) {
            out.push(msg.detach());
        }
        if out.len() >= expected && settle_until.is_none() {
            settle_until = Some(Instant::now() + settle);
        }
    }
    out
}

/// The headers of a record as `(name, value)` strings.
pub fn headers(msg: &OwnedMessage) -> Vec<(String, String)> {
    use rdkafka::message::Headers;
    msg.headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A Tansu broker of this test's own, on a free loopback port, in-memory storage (or
/// SQLite storage that survives restarts, with [`Tansu::start_persistent`]).
pub struct Tansu {
    child: Option<Child>,
    pub port: u16,
    /// The port clients are told to connect to (a TLS proxy in front, or `port`).
    advertised: u16,
    /// With [`Tansu::start_persistent`]: the directory of its SQLite file.
    storage: Option<PathBuf>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Tansu {
    pub fn start() -> Tansu {
        let port = free_port();
        Self::start_advertising(port, port)
    }

    /// A broker on `port` that tells clients to connect to `advertised` (where a TLS
    /// proxy in front of it listens).
    pub fn start_advertising(port: u16, advertised: u16) -> Tansu {
        let mut tansu = Tansu {
            child: None,
            port,
            advertised,
            storage: None,
        };
        tansu.restart();
        tansu
    }

    /// A broker keeping its topics, records and committed offsets in a SQLite file under
    /// `dir` (Tansu's `libsql` feature, which `infra/test.sh` installs): a restart keeps
    /// everything it acknowledged, as a real broker's does.
    pub fn start_persistent(dir: &Path) -> Tansu {
        let port = free_port();
        let mut tansu = Tansu {
            child: None,
            port,
            advertised: port,
            storage: Some(dir.to_owned()),
        };
        tansu.restart();
        tansu
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let bin = std::env::var("REVLINE_TEST_TANSU").unwrap_or_else(|_| "tansu".to_owned());
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised);
        let mut command = Command::new(&bin);
        command.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
        ]);
        match &self.storage {
            // Tansu resolves `sqlite://NAME` against its working directory.
            Some(dir) => command
                .current_dir(dir)
                .args(["--storage-engine", "sqlite://tansu.db"]),
            None => command.args(["--storage-engine", "memory://tansu/"]),
        };
        // REVLINE_TEST_TANSU_LOG=<file>: the broker's output, appended, for a failure's
        // post-mortem (RUST_LOG sets its level).
        let log = std::env::var_os("REVLINE_TEST_TANSU_LOG").map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("REVLINE_TEST_TANSU_LOG: a writable file")
        });
        let (out, err) = match log {
            Some(file) => (Stdio::from(file.try_clone().unwrap()), Stdio::from(file)),
            None => (Stdio::null(), Stdio::null()),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (infra/test.sh installs it): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr: SocketAddr = self.brokers().parse().unwrap();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the broker (SIGKILL; in-memory data is gone with it, SQLite storage stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}
