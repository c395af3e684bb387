//! ClickHouse helpers: a database of its own per test on the shared server that
//! `infra/test.sh` started, a private `clickhouse-server` process for tests that stop and
//! restart it, and plain SQL over the HTTP interface (reqwest) for checks.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warehouse::clickhouse::{ClickHouse, ClickHouseSettings};

use crate::{unique, TempDir};

/// The shared server (`REVLINE_TEST_CLICKHOUSE_URL`, default `http://127.0.0.1:8123`).
pub async fn url() -> String {
    let url = std::env::var("REVLINE_TEST_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8123".to_owned());
    assert!(
        answers(&url).await,
        "no ClickHouse at {url}: run the tests with infra/test.sh, which starts it"
    );
    url
}

/// Runs one statement over ClickHouse's HTTP interface: `Ok(body)` on 200, else the status
/// and body.
pub async fn http(url: &str, sql: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(url)
        .body(sql.to_owned())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Whether the server answers a query.
pub async fn answers(url: &str) -> bool {
    http(url, "SELECT 1").await.is_ok()
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
            ca_file: None,
            cluster: None,
            url: self.url.clone(),
            database: self.name.clone(),
            user: None,
            password: None,
        })
        .unwrap()
    }

    /// `SELECT count() FROM <table> FINAL`, 0 while the table does not exist yet.
    pub async fn count(&self, table: &str) -> u64 {
        http(
            &self.url,
            &format!("SELECT count() FROM {}.{table} FINAL", self.name),
        )
        .await
        .ok()
        .and_then(|b| b.trim().parse().ok())
        .unwrap_or(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // A failed test keeps its database for a post-mortem (the next run's names differ).
        if std::thread::panicking() {
            eprintln!("kept ClickHouse database {} of the failed test", self.name);
            return;
        }
        // Drop runs outside async code: a thread of its own with a small runtime.
        let (url, sql) = (
            self.url.clone(),
            format!("DROP DATABASE IF EXISTS {}", self.name),
        );
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(http(&url, &sql)).ok()
        })
        .join();
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
    /// With [`ClickHouseServer::start_tls`]: the HTTPS port and the certificate and key.
    tls: Option<(u16, PathBuf, PathBuf)>,
    /// With [`ClickHouseServer::start_with_users`]: the users file it reads.
    users: Option<PathBuf>,
    dir: TempDir,
}

impl ClickHouseServer {
    pub async fn start() -> ClickHouseServer {
        Self::start_with(None, None).await
    }

    /// A server that also serves HTTPS with this certificate and key (PEM files), without
    /// Diffie-Hellman parameters.
    pub async fn start_tls(cert: PathBuf, key: PathBuf) -> ClickHouseServer {
        Self::start_with(Some((free_port(), cert, key)), None).await
    }

    /// A server whose users, profiles and quotas are `users_xml` (a whole `users.xml`)
    /// instead of the package's.
    pub async fn start_with_users(users_xml: &str) -> ClickHouseServer {
        let dir = TempDir::new("revline-e2e-clickhouse-users");
        let path = dir.path().join("users.xml");
        std::fs::write(&path, users_xml).unwrap();
        let server = Self::start_with(None, Some(path)).await;
        // The file must outlive the server, which reads it again when it changes.
        std::mem::forget(dir);
        server
    }

    /// `https://127.0.0.1:<https port>` of a TLS server.
    pub fn https_url(&self) -> String {
        let (port, _, _) = self.tls.as_ref().expect("started with start_tls");
        format!("https://127.0.0.1:{port}")
    }

    async fn start_with(
        tls: Option<(u16, PathBuf, PathBuf)>,
        users: Option<PathBuf>,
    ) -> ClickHouseServer {
        let mut server = ClickHouseServer {
            child: None,
            http_port: free_port(),
            tcp_port: free_port(),
            tls,
            users,
            dir: TempDir::new("revline-e2e-clickhouse"),
        };
        // A port found free may be taken by another test before the server binds it: the
        // server then exits at once, and a first start simply tries other ports.
        for _ in 0..3 {
            if server.spawn_and_wait().await {
                return server;
            }
            server.http_port = free_port();
            server.tcp_port = free_port();
            if let Some(tls) = server.tls.as_mut() {
                tls.0 = free_port();
            }
        }
        panic!(
            "private clickhouse-server did not start:\n{}",
            server.errors()
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts on the same ports and data, and waits until it answers.
    pub async fn restart(&mut self) {
        assert!(
            self.spawn_and_wait().await,
            "private clickhouse-server did not restart:\n{}",
            self.errors()
        );
    }

    /// The tail of the server's error log.
    fn errors(&self) -> String {
        let log = std::fs::read_to_string(self.path("server.err.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Spawns the server and waits until it answers; `false` when it exited first.
    async fn spawn_and_wait(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        let arg = |k: &str, v: String| format!("--{k}={v}");
        let mut command = Command::new("clickhouse-server");
        command
            .arg("--config-file=/etc/clickhouse-server/config.xml")
            .arg("--");
        if let Some((port, cert, key)) = &self.tls {
            command
                .arg(arg("https_port", port.to_string()))
                .arg(arg(
                    "openSSL.server.certificateFile",
                    cert.display().to_string(),
                ))
                .arg(arg(
                    "openSSL.server.privateKeyFile",
                    key.display().to_string(),
                ))
                .arg(arg("openSSL.server.dhParamsFile", String::new()));
        }
        if let Some(users) = &self.users {
            command.arg(arg("users_config", users.display().to_string()));
        }
        let child = command
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
        while !answers(&self.url()).await {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || Instant::now() >= deadline {
                self.stop();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
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
