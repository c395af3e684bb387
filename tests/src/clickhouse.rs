//! ClickHouse helpers: a database of its own per test on the shared server that
//! `infra/test.sh` started, and a private `clickhouse-server` process for tests that stop
//! and restart it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reconcile::warehouse::clickhouse::{ClickHouse, ClickHouseSettings};

use crate::{unique, TempDir};

/// The shared server (`REVLINE_TEST_CLICKHOUSE_URL`, default `http://127.0.0.1:8123`).
pub fn url() -> String {
    let url = std::env::var("REVLINE_TEST_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8123".to_owned());
    assert!(
        http(&url, "SELECT 1").is_ok(),
        "no ClickHouse at {url}: run the tests with infra/test.sh, which starts it"
    );
    url
}

/// Runs one statement over HTTP (blocking, no client library): `Ok(body)` on 200.
pub fn http(url: &str, sql: &str) -> Result<String, String> {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect_timeout(
        &addr.parse::<SocketAddr>().map_err(|e| e.to_string())?,
        Duration::from_secs(2),
    )
    .map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sql}",
        sql.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    if head.starts_with("HTTP/1.1 200") {
        Ok(body)
    } else {
        Err(format!("{}: {body}", head.lines().next().unwrap_or("")))
    }
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// A database of this test's own, dropped at the end.
pub struct TestDb {
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub fn new(url: &str) -> TestDb {
        TestDb {
            url: url.to_owned(),
            name: unique("revline_e2e").replace('-', "_"),
        }
    }

    /// The adapter for this database.
    pub fn warehouse(&self) -> ClickHouse {
        ClickHouse::new(&ClickHouseSettings {
            url: self.url.clone(),
            database: self.name.clone(),
            user: None,
            password: None,
        })
        .unwrap()
    }

    /// `SELECT count() FROM <table> FINAL`, 0 while the table does not exist yet.
    pub fn count(&self, table: &str) -> u64 {
        http(
            &self.url,
            &format!("SELECT count() FROM {}.{table} FINAL", self.name),
        )
        .ok()
        .and_then(|b| b.trim().parse().ok())
        .unwrap_or(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = http(&self.url, &format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `clickhouse-server` of this test's own (Debian's binary and packaged config, ports and
/// paths overridden), so the test can stop it and start it again on the same data.
pub struct ClickHouseServer {
    child: Option<Child>,
    pub http_port: u16,
    tcp_port: u16,
    dir: TempDir,
}

impl ClickHouseServer {
    pub fn start() -> ClickHouseServer {
        let mut server = ClickHouseServer {
            child: None,
            http_port: free_port(),
            tcp_port: free_port(),
            dir: TempDir::new("revline-e2e-clickhouse"),
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts on the same ports and data, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let arg = |k: &str, v: String| format!("--{k}={v}");
        let child = Command::new("clickhouse-server")
            .arg("--config-file=/etc/clickhouse-server/config.xml")
            .arg("--")
            .arg(arg("http_port", self.http_port.to_string()))
            .arg(arg("tcp_port", self.tcp_port.to_string()))
            .arg(arg("interserver_http_port", free_port().to_string()))
            .arg(arg("listen_host", "127.0.0.1".into()))
            .arg(arg("path", format!("{}/", self.path("data").display())))
            .arg(arg("tmp_path", format!("{}/", self.path("tmp").display())))
            .arg(arg(
                "user_files_path",
                format!("{}/", self.path("user_files").display()),
            ))
            .arg(arg(
                "format_schema_path",
                format!("{}/", self.path("format_schemas").display()),
            ))
            .arg(arg(
                "logger.log",
                self.path("server.log").display().to_string(),
            ))
            .arg(arg(
                "logger.errorlog",
                self.path("server.err.log").display().to_string(),
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server (infra/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while http(&self.url(), "SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "private clickhouse-server did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the server (its data stays on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.stop();
    }
}
