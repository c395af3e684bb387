//! Helpers for the end-to-end tests: start the real `revline` binary on a free loopback
//! port with its own data dir, sign and post webhooks, read what it stored, and reach
//! the Kafka-protocol broker (Tansu) and ClickHouse that `infra/test.sh` started.

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use ingest::signature::{sign as sign_with, WebhookSecret};

pub mod clickhouse;
pub mod facts;
pub mod kafka;
pub mod stripe;
pub mod tls;

/// The secret every test endpoint uses unless a test says otherwise.
pub const TEST_SECRET: &str = "whsec_e2e_test_secret";

/// Path of the `revline` binary built next to this test executable. `infra/test.sh`
/// builds it before running the tests (`cargo build --bins`).
pub fn revline_bin() -> PathBuf {
    if let Ok(path) = std::env::var("REVLINE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-… → target/<profile>/revline
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("revline");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build --bins`, which infra/test.sh does)",
        bin.display()
    );
    bin
}

/// Polls `check` every 200 ms until it returns true or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls the async `check` every 200 ms until it returns true or `timeout` passes.
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Minor units of an amount a report printed (`147.50` → 14750, `2500` → 2500).
pub fn minor(text: &str) -> i64 {
    text.replace('.', "")
        .parse()
        .unwrap_or_else(|_| panic!("not an amount: {text:?}"))
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `Stripe-Signature` for `body` signed now with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    sign_at(secret, now(), body)
}

/// `Stripe-Signature` for `body` signed at `t` with `secret`.
pub fn sign_at(secret: &str, t: i64, body: &[u8]) -> String {
    sign_with(
        &WebhookSecret::new(secret).expect("valid test secret"),
        t,
        body,
    )
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique name for this test process (topics, dirs, databases).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Stripe snapshot event body shaped like the real ones (about 3 KB).
pub fn event_body(id: &str, event_type: &str, customer: &str) -> Vec<u8> {
    let object_id = format!("in_{}", id.trim_start_matches("evt_"));
    let padding = "x".repeat(2200);
    format!(
        r#"{{"id":"{id}","object":"event","api_version":"2025-03-31.basil","created":{created},"data":{{"object":{{"id":"{object_id}","object":"invoice","customer":"{customer}","currency":"usd","amount_due":2000,"amount_paid":2000,"status":"paid","description":"{padding}"}}}},"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"type":"{event_type}"}}"#,
        created = now()
    )
    .into_bytes()
}

/// A running `revline` process.
pub struct Revline {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The admin listener's address (`/metrics`, `/reports/…`), when it is on.
    pub admin_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    _owned_dir: Option<TempDir>,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<String>>,
    /// Set once stdout reached its end (the process closed it, i.e. exited).
    stdout_closed: Arc<AtomicBool>,
    pub http: reqwest::Client,
}

/// How to start `revline`.
#[derive(Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Reuse a data dir (restarts); a fresh temporary one otherwise.
    pub data_dir: Option<PathBuf>,
    /// Whether to set `STRIPE_WEBHOOK_SECRET` to [`TEST_SECRET`].
    pub with_secret: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
            with_secret: true,
        }
    }
}

impl Options {
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn args_of(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }
}

fn command(opts: &Options, data_dir: &Path) -> Command {
    let mut cmd = Command::new(revline_bin());
    cmd.args(&opts.args);
    for (key, _) in std::env::vars() {
        if key.starts_with("REVLINE_") || key.starts_with("STRIPE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("REVLINE_LISTEN", "127.0.0.1:0")
        .env("REVLINE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("REVLINE_DATA_DIR", data_dir)
        .env("REVLINE_LOG_FORMAT", "json")
        // `REVLINE_TEST_LOG` (e.g. `info,reconcile::consumer=debug`) for a post-mortem.
        .env(
            "RUST_LOG",
            std::env::var("REVLINE_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
        );
    if opts.with_secret {
        cmd.env("STRIPE_WEBHOOK_SECRET", TEST_SECRET);
    }
    for (key, value) in &opts.env {
        cmd.env(key, value);
    }
    cmd
}

/// Runs `revline` to completion (for commands that exit, like config errors).
pub fn run_to_exit(opts: Options) -> (ExitStatus, String, String) {
    let dir = TempDir::new("revline-e2e-run");
    let out = command(&opts, opts.data_dir.as_deref().unwrap_or(dir.path()))
        .stdin(Stdio::null())
        .output()
        .expect("run revline");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Revline {
    /// Starts `revline` and waits until it listens.
    pub async fn start(opts: Options) -> Revline {
        let owned = match &opts.data_dir {
            Some(_) => None,
            None => Some(TempDir::new("revline-e2e")),
        };
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| owned.as_ref().unwrap().0.clone());
        let mut child = command(&opts, &data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn revline");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let admin_addr = Arc::new(Mutex::new(None));
        {
            let lines = stderr.clone();
            let admin_addr = admin_addr.clone();
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut listening = None;
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        let addr = v["fields"]["addr"].as_str();
                        let addr = addr.map(|a| a.parse::<SocketAddr>().unwrap());
                        if v["fields"]["message"] == "admin listening" {
                            // Logged before the webhook listener's "listening".
                            *admin_addr.lock().unwrap() = addr;
                        } else if v["fields"]["message"] == "listening" {
                            listening = addr;
                        }
                    }
                    // Kept before `start` returns, so the caller's `logs()` holds the line.
                    lines.lock().unwrap().push(line);
                    if let Some(addr) = listening {
                        let _ = addr_tx.send(addr);
                    }
                }
            });
        }
        let stdout = Arc::new(Mutex::new(String::new()));
        let stdout_closed = Arc::new(AtomicBool::new(false));
        {
            let (out, closed) = (stdout.clone(), stdout_closed.clone());
            let mut pipe = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                closed.store(true, Ordering::SeqCst);
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(addr) = addr_rx.recv_timeout(Duration::from_millis(100)) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "revline exited with {status} before listening:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "revline did not listen within 60 s:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        let admin_addr = *admin_addr.lock().unwrap();
        Revline {
            child: Some(child),
            addr,
            admin_addr,
            data_dir,
            _owned_dir: owned,
            stderr,
            stdout,
            stdout_closed,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` to `path` with an optional `Stripe-Signature`.
    pub async fn post(
        &self,
        path: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("stripe-signature", sig);
        }
        req.send().await.expect("post webhook")
    }

    /// POSTs `body` to `/webhooks/stripe`, signed now with [`TEST_SECRET`].
    pub async fn post_signed(&self, body: &[u8]) -> reqwest::Response {
        self.post("/webhooks/stripe", body, Some(&sign(TEST_SECRET, body)))
            .await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("get")
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let addr = self.admin_addr.expect("the admin listener is on");
        format!("http://{addr}{path}")
    }

    /// GETs `path` from the admin listener.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.admin_url(path))
            .send()
            .await
            .expect("get (admin)")
    }

    /// Everything written to stderr so far (JSON log lines).
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stdout holds `needle` (true) or `timeout` passes (false).
    pub async fn wait_for_stdout(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stdout().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stdout().contains(needle)
    }

    /// Everything the process wrote to stdout, once it has closed it (after it exited);
    /// panics if stdout is still open after `timeout`.
    pub async fn whole_stdout(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while !self.stdout_closed.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "stdout still open after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stdout()
    }

    /// Path of the embedded event log.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(eventlog::embedded::FILE_NAME)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        wait_with_timeout(&mut child, Duration::from_secs(40))
    }

    /// The exit status once the process has exited on its own (`None` while it runs).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for a child, killing it if it outlives `timeout`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Revline {
    fn drop(&mut self) {
        self.kill();
        // A failed test keeps each process's log for a post-mortem; any test does with
        // `REVLINE_TEST_KEEP_LOGS` set.
        if std::thread::panicking() || std::env::var_os("REVLINE_TEST_KEEP_LOGS").is_some() {
            let path = std::env::temp_dir().join(format!(
                "revline-{}-{}-{}.log",
                if std::thread::panicking() {
                    "failed"
                } else {
                    "kept"
                },
                std::process::id(),
                self.addr.port()
            ));
            if std::fs::write(&path, self.logs()).is_ok() {
                eprintln!(
                    "kept the log of revline on {} in {}",
                    self.addr,
                    path.display()
                );
            }
        }
    }
}

/// A local HTTP server for a test double (Stripe's API, a proxy in front of ClickHouse):
/// the routes and data `configure` mounts, one worker, on a free loopback port. Returns its
/// base URL (`http://127.0.0.1:PORT`) and a handle that stops it.
pub fn http_double<F>(configure: F) -> (String, actix_web::dev::ServerHandle)
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("bind a loopback port for the test double");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://{addr}"), handle)
}
