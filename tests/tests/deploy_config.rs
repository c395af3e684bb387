//! The deployment files under `infra/` agree with the code. There is no Docker engine in
//! CI, so instead of starting the stack this reads it: the compose file (through PyYAML in
//! the test venv, `REVLINE_TEST_PYTHON`), the Dockerfile, the nginx and Prometheus
//! configurations, the alerting rules and the Grafana provisioning, and checks them
//! against the source: configuration keys the code reads, its default ports, topic and
//! database names, the metrics it registers, and the ClickHouse release the SQL
//! compatibility test runs on (chDB). `promtool` (`REVLINE_TEST_PROMTOOL`, else the PATH)
//! validates the Prometheus files and runs the alerts' unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::TempDir;
use serde_json::Value;

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the workspace, by its path from the root.
fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// The test venv's Python (`REVLINE_TEST_PYTHON`, set by infra/test.sh), else `python3`.
fn python() -> String {
    std::env::var("REVLINE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs the test venv's Python on `script` with `args` and returns its stdout.
fn run_python(script: &str, args: &[&str], needs: &str) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({needs}): {e}", python()));
    assert!(
        out.status.success(),
        "{} failed ({needs}; infra/test.sh installs it into target/test-venv and sets \
         REVLINE_TEST_PYTHON): {}",
        python(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("Python prints UTF-8")
}

/// A YAML file of the workspace as JSON (PyYAML's safe loader, which applies `<<` merges).
fn yaml(rel: &str) -> Value {
    let path = root().join(rel);
    let json = run_python(
        "import json, sys, yaml\n\
         with open(sys.argv[1]) as f:\n    json.dump(yaml.safe_load(f), sys.stdout)",
        &[path.to_str().expect("a UTF-8 path")],
        "PyYAML",
    );
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{rel} as JSON: {e}"))
}

/// A scalar of a YAML document as text (numbers and booleans too).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The configuration sources (`src/config/*.rs`) without their test modules, by file name.
fn config_sources() -> BTreeMap<String, String> {
    let dir = root().join("src/config");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|x| x == "rs") {
            let source = std::fs::read_to_string(&path).expect("a source file");
            // Up to the first test module (`#[cfg(test)] mod …`).
            let tests = source
                .match_indices("#[cfg(test)]")
                .find(|(at, attr)| source[at + attr.len()..].trim_start().starts_with("mod "));
            let code = match tests {
                Some((at, _)) => source[..at].to_owned(),
                None => source,
            };
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, code);
        }
    }
    assert!(out.contains_key("mod.rs"), "no src/config/mod.rs");
    out
}

/// The string value of `pub const NAME: &str = "…";` in `src/config/<file>`.
fn default_const(file: &str, name: &str) -> String {
    let sources = config_sources();
    let source = sources
        .get(file)
        .unwrap_or_else(|| panic!("src/config/{file} is gone; update this test"));
    let decl = format!("pub const {name}: &str = \"");
    let at = source.find(&decl).unwrap_or_else(|| {
        panic!("src/config/{file} no longer declares `{decl}…\"`; update this test")
    });
    let rest = &source[at + decl.len()..];
    rest[..rest.find('"').expect("a closed string")].to_owned()
}

/// The port of `host:port`.
fn port(addr: &str) -> &str {
    addr.rsplit_once(':')
        .unwrap_or_else(|| panic!("{addr:?} is not host:port"))
        .1
}

/// The host of `host:port`.
fn host(addr: &str) -> &str {
    addr.rsplit_once(':')
        .unwrap_or_else(|| panic!("{addr:?} is not host:port"))
        .0
}

/// The code's default webhook and admin ports.
fn default_ports() -> (String, String) {
    let listen = default_const("mod.rs", "DEFAULT_LISTEN");
    let admin = default_const("admin.rs", "DEFAULT_ADMIN_LISTEN");
    (port(&listen).to_owned(), port(&admin).to_owned())
}

const COMPOSE: &str = "infra/docker-compose.yml";

/// The compose file's services.
fn services(compose: &Value) -> &serde_json::Map<String, Value> {
    compose["services"]
        .as_object()
        .unwrap_or_else(|| panic!("{COMPOSE} has no services"))
}

/// A service's environment as a map (compose accepts a map or a `KEY=VALUE` list).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), text(v).unwrap_or_default()))
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (item.to_owned(), String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The revline subcommand a service runs (`ingest`, …), the image's entrypoint being
/// `revline`; `None` for a service not built from infra/Dockerfile.
fn revline_command(service: &Value) -> Option<String> {
    let dockerfile = service["build"]["dockerfile"].as_str()?;
    if !dockerfile.ends_with("infra/Dockerfile") {
        return None;
    }
    let words: Vec<String> = match &service["command"] {
        Value::Array(words) => words.iter().filter_map(text).collect(),
        Value::String(line) => line.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let mut words = words.into_iter().skip_while(|w| w == "revline");
    Some(words.next().unwrap_or_else(|| "serve".to_owned()))
}

/// The revline services of the compose file: name → (subcommand, environment).
fn revline_services(compose: &Value) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    services(compose)
        .iter()
        .filter_map(|(name, service)| {
            revline_command(service).map(|cmd| (name.clone(), (cmd, environment(service))))
        })
        .collect()
}

#[test]
fn compose_sets_only_configuration_keys_the_code_reads() {
    let compose = yaml(COMPOSE);
    let sources = config_sources();
    let code: String = sources.values().map(String::as_str).collect();
    // Families of keys (`REVLINE_KAFKA_RDKAFKA_<PROP>`, …) the code matches by prefix.
    let mut prefixes = Vec::new();
    for marker in ["strip_prefix(\"", "_PREFIX: &str = \""] {
        for (at, _) in code.match_indices(marker) {
            let rest = &code[at + marker.len()..];
            let prefix = &rest[..rest.find('"').expect("a closed string")];
            if prefix.starts_with("REVLINE_") || prefix.starts_with("STRIPE_") {
                prefixes.push(prefix.to_owned());
            }
        }
    }
    let services = revline_services(&compose);
    for expected in ["migrate", "reconcile"] {
        assert!(
            services.values().any(|(cmd, _)| cmd == expected),
            "{COMPOSE} has no revline service running `revline {expected}`"
        );
    }
    for (name, (_, env)) in &services {
        for key in env.keys() {
            if !(key.starts_with("REVLINE_") || key.starts_with("STRIPE_")) {
                continue;
            }
            let literal = code.contains(&format!("\"{key}\""));
            let family = prefixes.iter().any(|p| key.starts_with(p.as_str()));
            assert!(
                literal || family,
                "{COMPOSE}: service {name} sets {key}, which no configuration code in \
                 src/config/*.rs reads (a typo, or a key that was renamed?)"
            );
        }
    }
}

#[test]
fn compose_listens_on_the_default_ports_and_names() {
    let compose = yaml(COMPOSE);
    let (listen_port, admin_port) = default_ports();
    let services = revline_services(&compose);
    let ingest: Vec<&String> = services
        .iter()
        .filter(|(_, (cmd, _))| cmd == "ingest")
        .map(|(name, _)| name)
        .collect();
    assert!(
        ingest.len() >= 2,
        "{COMPOSE} should run at least two ingest replicas behind the proxy, has {ingest:?}"
    );
    let defaults = [
        ("REVLINE_KAFKA_TOPIC", "kafka.rs", "DEFAULT_TOPIC"),
        ("REVLINE_KAFKA_DLQ_TOPIC", "kafka.rs", "DEFAULT_DLQ_TOPIC"),
        ("REVLINE_KAFKA_GROUP_ID", "kafka.rs", "DEFAULT_GROUP_ID"),
        (
            "REVLINE_CLICKHOUSE_DATABASE",
            "clickhouse.rs",
            "DEFAULT_CLICKHOUSE_DATABASE",
        ),
    ];
    let mut backends = BTreeSet::new();
    for (name, (cmd, env)) in &services {
        if cmd != "migrate" {
            let listen = env.get("REVLINE_LISTEN").unwrap_or_else(|| {
                panic!("{COMPOSE}: {name} (`revline {cmd}`) does not set REVLINE_LISTEN")
            });
            assert_eq!(
                port(listen),
                listen_port,
                "{COMPOSE}: {name} listens on {listen}, not on the code's default port \
                 {listen_port} (src/config/mod.rs DEFAULT_LISTEN)"
            );
            let admin = env.get("REVLINE_ADMIN_LISTEN").unwrap_or_else(|| {
                panic!("{COMPOSE}: {name} does not set REVLINE_ADMIN_LISTEN: Prometheus cannot reach its /metrics")
            });
            assert_eq!(
                port(admin),
                admin_port,
                "{COMPOSE}: {name}'s admin listener is {admin}, not on the code's default \
                 port {admin_port} (src/config/admin.rs DEFAULT_ADMIN_LISTEN)"
            );
            let loopback = ["127.0.0.1", "[::1]", "localhost"].contains(&host(admin));
            assert!(
                loopback || env.contains_key("REVLINE_ADMIN_TOKEN"),
                "{COMPOSE}: {name}'s admin listener {admin} is off loopback without \
                 REVLINE_ADMIN_TOKEN, which revline refuses at start"
            );
        }
        for (key, file, constant) in defaults {
            if let Some(value) = env.get(key) {
                assert_eq!(
                    value,
                    &default_const(file, constant),
                    "{COMPOSE}: {name} sets {key} to something else than the code's default \
                     ({constant} in src/config/{file})"
                );
            }
        }
        backends.insert((
            env.get("REVLINE_KAFKA_BROKERS").cloned(),
            env.get("REVLINE_CLICKHOUSE_URL").cloned(),
        ));
    }
    assert_eq!(
        backends.len(),
        1,
        "{COMPOSE}: the revline services disagree on the Kafka brokers or the ClickHouse URL: {backends:?}"
    );
    let (brokers, clickhouse) = backends.into_iter().next().unwrap();
    assert!(
        brokers.is_some() && clickhouse.is_some(),
        "{COMPOSE}: the revline services need REVLINE_KAFKA_BROKERS and REVLINE_CLICKHOUSE_URL"
    );
}

#[test]
fn the_proxy_balances_webhooks_over_every_ingest_replica() {
    let compose = yaml(COMPOSE);
    let (listen_port, _) = default_ports();
    let conf_path = "infra/nginx/revline.conf";
    // Without comments, so that only directives are read.
    let conf: String = read(conf_path)
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let start = conf
        .find("upstream ")
        .unwrap_or_else(|| panic!("{conf_path} has no upstream block"));
    let block = &conf[start..];
    let upstream = block["upstream ".len()..]
        .split_whitespace()
        .next()
        .expect("an upstream name");
    let body = &block[block.find('{').expect("{")..block.find('}').expect("}")];
    let servers: BTreeSet<String> = body
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("server "))
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(';')
                .to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = revline_services(&compose)
        .into_iter()
        .filter(|(_, (cmd, _))| cmd == "ingest")
        .map(|(name, _)| format!("{name}:{listen_port}"))
        .collect();
    assert_eq!(
        servers, expected,
        "{conf_path}: upstream {upstream} should list every ingest service of {COMPOSE} on \
         the webhook port {listen_port}"
    );
    let webhooks = conf
        .find("location /webhooks/")
        .unwrap_or_else(|| panic!("{conf_path} has no `location /webhooks/`"));
    let location = &conf[webhooks..];
    let location = &location[..location.find('}').expect("}")];
    assert!(
        location.contains(&format!("proxy_pass http://{upstream};")),
        "{conf_path}: /webhooks/ does not proxy to upstream {upstream}"
    );
    let proxy = services(&compose)
        .values()
        .find(|s| {
            s["volumes"].as_array().is_some_and(|mounts| {
                mounts
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|m| m.starts_with("./nginx/revline.conf:"))
            })
        })
        .unwrap_or_else(|| panic!("no service of {COMPOSE} mounts ./nginx/revline.conf"));
    let published = proxy["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(text)
        .any(|p| p.ends_with(&format!(":{listen_port}")));
    assert!(
        published,
        "{COMPOSE}: the proxy should publish the webhook port {listen_port}"
    );
}

#[test]
fn prometheus_scrapes_metrics_on_every_admin_listener() {
    let compose = yaml(COMPOSE);
    let (_, admin_port) = default_ports();
    let path = "infra/prometheus/prometheus.yml";
    let config = yaml(path);
    let rule_files: Vec<String> = config["rule_files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(text)
        .collect();
    assert!(
        rule_files.iter().any(|f| f == "alerts.yml"),
        "{path} does not load alerts.yml: {rule_files:?}"
    );
    let mut scraped = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for job in config["scrape_configs"].as_array().expect("scrape_configs") {
        let name = job["job_name"].as_str().expect("job_name");
        if !name.starts_with("revline") {
            continue;
        }
        let metrics_path = job["metrics_path"].as_str().unwrap_or("/metrics");
        assert_eq!(metrics_path, "/metrics", "{path}: job {name}");
        let credentials = job["authorization"]["credentials_file"]
            .as_str()
            .unwrap_or_else(|| {
                panic!("{path}: job {name} sends no bearer token, which an admin listener off loopback requires")
            });
        secrets.insert(credentials.to_owned());
        for group in job["static_configs"].as_array().into_iter().flatten() {
            for target in group["targets"].as_array().into_iter().flatten() {
                let target = target.as_str().expect("a target");
                assert_eq!(
                    port(target),
                    admin_port,
                    "{path}: job {name} scrapes {target}, not the admin port {admin_port}"
                );
                scraped.insert(host(target).to_owned());
            }
        }
        for sd in job["dns_sd_configs"].as_array().into_iter().flatten() {
            assert_eq!(
                sd["port"].as_u64().map(|p| p.to_string()),
                Some(admin_port.clone()),
                "{path}: job {name}'s DNS discovery does not use the admin port {admin_port}"
            );
            for dns_name in sd["names"].as_array().into_iter().flatten() {
                scraped.insert(dns_name.as_str().expect("a name").to_owned());
            }
        }
    }
    let expected: BTreeSet<String> = revline_services(&compose)
        .into_iter()
        .filter(|(_, (cmd, _))| cmd != "migrate")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        scraped, expected,
        "{path}: the revline jobs should scrape every long-running revline service of {COMPOSE}"
    );
    // The token file is the compose secret holding REVLINE_ADMIN_TOKEN.
    let prometheus = services(&compose)
        .values()
        .find(|s| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("prom/prometheus"))
        })
        .unwrap_or_else(|| panic!("{COMPOSE} has no prom/prometheus service"));
    for file in secrets {
        let secret = file.strip_prefix("/run/secrets/").unwrap_or_else(|| {
            panic!("{path}: the bearer token file {file} should be a compose secret under /run/secrets/")
        });
        assert!(
            prometheus["secrets"]
                .as_array()
                .is_some_and(|s| s.iter().any(|n| n.as_str() == Some(secret))),
            "{COMPOSE}: the Prometheus service does not mount the secret {secret}"
        );
        assert_eq!(
            compose["secrets"][secret]["environment"].as_str(),
            Some("REVLINE_ADMIN_TOKEN"),
            "{COMPOSE}: secret {secret} should hold REVLINE_ADMIN_TOKEN"
        );
    }
}

#[test]
fn the_image_runs_unprivileged_with_a_healthcheck() {
    let path = "infra/Dockerfile";
    let dockerfile = read(path).replace("\\\n", " ");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.to_ascii_uppercase().starts_with("FROM "))
        .unwrap_or_else(|| panic!("{path} has no FROM"));
    assert!(
        lines[..last_from]
            .iter()
            .any(|l| l.contains("cargo build --release --locked")),
        "{path}: the build stage should run `cargo build --release --locked`"
    );
    let runtime: Vec<&str> = lines[last_from..].to_vec();
    let image = runtime[0].split_whitespace().nth(1).expect("FROM image");
    assert!(
        !image.starts_with("rust"),
        "{path}: the runtime stage is {image}; it should be a slim image, not the toolchain"
    );
    let instruction = |name: &str| -> Vec<String> {
        runtime
            .iter()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case(name))
            })
            .map(|l| l[name.len()..].trim().to_owned())
            .collect()
    };
    let user = instruction("USER");
    let user = user
        .last()
        .unwrap_or_else(|| panic!("{path}: the runtime stage has no USER: it would run as root"));
    let uid = user.split(':').next().unwrap();
    assert!(
        uid != "root" && uid != "0",
        "{path}: the runtime stage runs as {user}"
    );
    let healthcheck = instruction("HEALTHCHECK");
    assert!(
        healthcheck
            .iter()
            .any(|h| h.contains("\"revline\", \"healthcheck\"")),
        "{path}: the runtime stage needs HEALTHCHECK … CMD [\"revline\", \"healthcheck\"], has {healthcheck:?}"
    );
    let exposed: BTreeSet<String> = instruction("EXPOSE")
        .iter()
        .flat_map(|e| {
            e.split_whitespace()
                .map(|p| p.trim_end_matches("/tcp").to_owned())
        })
        .collect();
    let (listen_port, admin_port) = default_ports();
    for port in [listen_port, admin_port] {
        assert!(
            exposed.contains(&port),
            "{path}: the runtime stage does not EXPOSE {port} (exposes {exposed:?})"
        );
    }
}

/// What prometheus-client exports a registered metric as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the Rust sources register (`registry.register("name", "help", x.field.clone())`),
/// with its kind, read from the field's declared type in the same file.
fn registered_metrics() -> BTreeMap<String, Kind> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    for dir in [
        "src",
        "ingest/src",
        "reconcile/src",
        "eventlog/src",
        "warehouse/src",
    ] {
        let mut stack = vec![root().join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|x| x == "rs") {
                    files.push(path);
                }
            }
        }
    }
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        for (at, _) in source.match_indices(".register(") {
            let args = &source[at + ".register(".len()..];
            let args = &args[..args.find(");").unwrap_or(args.len())];
            let mut literals = args.split('"').skip(1).step_by(2);
            let Some(name) = literals.next() else {
                continue;
            };
            // The metric handle: the last argument, `metrics.requests.clone()`.
            let handle = args
                .rsplit(',')
                .find(|a| !a.trim().is_empty())
                .unwrap_or("");
            let field = handle
                .trim()
                .trim_end_matches(".clone()")
                .rsplit('.')
                .next()
                .unwrap_or("");
            let decl = format!("pub {field}: ");
            let kind = source.find(&decl).map(|at| {
                let ty = &source[at + decl.len()..];
                let ty = &ty[..ty.find('\n').unwrap_or(ty.len())];
                if ty.contains("Histogram") {
                    Kind::Histogram
                } else if ty.contains("Gauge") {
                    Kind::Gauge
                } else if ty.contains("Counter") {
                    Kind::Counter
                } else {
                    panic!(
                        "{}: metric {name} has a type this test does not know: {ty}",
                        file.display()
                    )
                }
            });
            let kind = kind.unwrap_or_else(|| {
                panic!(
                    "{}: cannot find the field `{field}` of metric {name}; update this test",
                    file.display()
                )
            });
            out.insert(name.to_owned(), kind);
        }
    }
    assert!(
        out.contains_key("revline_webhook_requests")
            && out.contains_key("revline_reconcile_events"),
        "the metric registrations were not found where this test looks: {out:?}"
    );
    out
}

/// The `revline_…` metric names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    for (at, _) in expr.match_indices("revline_") {
        let starts_word =
            at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        // A label value (`job=~"revline-.*"`) uses dashes; a name inside quotes is not a metric.
        let quoted = at > 0 && bytes[at - 1] == b'"';
        if starts_word && !quoted {
            let len = expr[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len() - at);
            names.insert(expr[at..at + len].to_owned());
        }
    }
    names
}

#[test]
fn every_alert_is_complete_and_names_metrics_revline_exports() {
    let path = "infra/prometheus/alerts.yml";
    let rules = yaml(path);
    let registered = registered_metrics();
    let mut alerts = BTreeSet::new();
    let mut used = BTreeSet::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .expect("every rule is an alert")
                .to_owned();
            assert!(alerts.insert(name.clone()), "{path}: alert {name} twice");
            assert!(
                rule["for"].as_str().is_some(),
                "{path}: {name} has no `for`"
            );
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("critical" | "warning" | "info")),
                "{path}: {name} has severity {severity:?}"
            );
            for annotation in ["summary", "description"] {
                assert!(
                    rule["annotations"][annotation]
                        .as_str()
                        .is_some_and(|a| !a.trim().is_empty()),
                    "{path}: {name} has no annotations.{annotation}"
                );
            }
            let expr = rule["expr"].as_str().expect("expr");
            for metric in metric_names(expr) {
                let (base, exported) = [
                    ("_total", Kind::Counter),
                    ("_bucket", Kind::Histogram),
                    ("_sum", Kind::Histogram),
                    ("_count", Kind::Histogram),
                ]
                .into_iter()
                .find_map(|(suffix, kind)| {
                    metric
                        .strip_suffix(suffix)
                        .filter(|base| registered.contains_key(*base))
                        .map(|base| (base.to_owned(), kind))
                })
                .unwrap_or_else(|| (metric.clone(), Kind::Gauge));
                let kind = registered.get(&base).unwrap_or_else(|| {
                    panic!(
                        "{path}: alert {name} uses {metric}, but revline registers no metric \
                         {base} (registered: {:?})",
                        registered.keys().collect::<Vec<_>>()
                    )
                });
                assert_eq!(
                    *kind,
                    exported,
                    "{path}: alert {name} uses {metric}, but {base} is a {kind:?}, which \
                     Prometheus sees as {}",
                    match kind {
                        Kind::Counter => format!("{base}_total"),
                        Kind::Gauge => base.clone(),
                        Kind::Histogram => format!("{base}_bucket, {base}_sum and {base}_count"),
                    }
                );
                used.insert(base);
            }
        }
    }
    for wanted in [
        "revline_reconcile_lag_events",
        "revline_reconcile_dead_letters",
        "revline_webhook_requests",
        "revline_enrich_fetches",
        "revline_reconcile_events",
    ] {
        assert!(used.contains(wanted), "{path}: no alert watches {wanted}");
    }
    assert!(
        rules["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .any(|r| r["expr"]
                .as_str()
                .is_some_and(|e| e.contains("up{") && e.contains("== 0"))),
        "{path}: no alert on a target that is down (up == 0)"
    );
}

#[test]
fn the_clickhouse_image_is_the_release_chdb_runs() {
    let compose = yaml(COMPOSE);
    let image = services(&compose)
        .values()
        .filter_map(|s| s["image"].as_str())
        .find(|i| i.starts_with("clickhouse/clickhouse-server:"))
        .unwrap_or_else(|| panic!("{COMPOSE} has no clickhouse/clickhouse-server image"));
    let tag = image.rsplit_once(':').unwrap().1;
    let version = run_python(
        "import chdb; print(chdb.query('SELECT version()', 'CSV'))",
        &[],
        "chdb-core",
    );
    let version = version.trim().trim_matches('"');
    let major_minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(
        major_minor(tag),
        major_minor(version),
        "{COMPOSE} runs ClickHouse {tag}, but the SQL compatibility test checks revline's SQL \
         on chDB {version}: keep the two on one release"
    );
}

#[test]
fn grafana_is_provisioned_for_the_dashboard() {
    let compose = yaml(COMPOSE);
    let dashboard: Value =
        serde_json::from_str(&read("infra/grafana/revline.json")).expect("the dashboard JSON");
    let wanted: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter(|v| v["type"] == "datasource")
        .filter_map(|v| v["query"].as_str().map(str::to_owned))
        .collect();
    assert!(wanted.contains("grafana-clickhouse-datasource") && wanted.contains("prometheus"));
    let dir = root().join("infra/grafana/provisioning/datasources");
    let mut provisioned = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let file = entry.unwrap().path();
        let rel = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for ds in yaml(&rel)["datasources"].as_array().into_iter().flatten() {
            provisioned.push((rel.clone(), ds.clone()));
        }
    }
    for kind in &wanted {
        assert!(
            provisioned
                .iter()
                .any(|(_, ds)| ds["type"] == kind.as_str()),
            "infra/grafana/provisioning/datasources provisions no data source of type {kind}, \
             which the dashboard's variables pick from"
        );
    }
    let database = default_const("clickhouse.rs", "DEFAULT_CLICKHOUSE_DATABASE");
    for (file, ds) in &provisioned {
        if ds["type"] == "grafana-clickhouse-datasource" {
            assert_eq!(
                ds["jsonData"]["defaultDatabase"].as_str(),
                Some(database.as_str()),
                "{file}: the dashboard's queries name revline's views without a database"
            );
        }
    }
    let grafana = services(&compose)
        .values()
        .find(|s| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("grafana/grafana"))
        })
        .unwrap_or_else(|| panic!("{COMPOSE} has no grafana/grafana service"));
    let plugins = text(&grafana["environment"]["GF_INSTALL_PLUGINS"]).unwrap_or_default();
    assert!(
        plugins.contains("grafana-clickhouse-datasource"),
        "{COMPOSE}: Grafana does not install grafana-clickhouse-datasource"
    );
    let provider = yaml("infra/grafana/provisioning/dashboards/revline.yml");
    let folder = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("the dashboard provider's path")
        .trim_end_matches('/')
        .to_owned();
    let mounted = grafana["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|m| {
            let mut parts = m.split(':');
            parts.next() == Some("./grafana/revline.json")
                && parts
                    .next()
                    .is_some_and(|target| target.starts_with(&format!("{folder}/")))
        });
    assert!(
        mounted,
        "{COMPOSE}: Grafana does not mount ./grafana/revline.json under {folder}, where the \
         dashboard provider looks"
    );
}

/// promtool: `REVLINE_TEST_PROMTOOL` (set by infra/test.sh), else the PATH.
fn promtool() -> PathBuf {
    if let Ok(path) = std::env::var("REVLINE_TEST_PROMTOOL") {
        return PathBuf::from(path);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v promtool"])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        !path.is_empty(),
        "promtool is not installed: run the tests with infra/test.sh, which installs it \
         (apt-get install prometheus), or set REVLINE_TEST_PROMTOOL"
    );
    PathBuf::from(path)
}

/// Runs promtool with `args` in `dir` and requires success.
fn promtool_ok(dir: &Path, args: &[&str]) {
    let out = Command::new(promtool())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_and_the_configuration() {
    let dir = root().join("infra/prometheus");
    promtool_ok(&dir, &["check", "rules", "alerts.yml"]);
    promtool_ok(&dir, &["test", "rules", "alerts_test.yml"]);
    promtool_ok(
        &dir,
        &["check", "config", "--syntax-only", "prometheus.yml"],
    );
    // The full check also loads the rule files and requires the bearer token files, which
    // exist only inside the container: check a copy whose token files exist.
    let copy = TempDir::new("prometheus-config");
    let mut config = read("infra/prometheus/prometheus.yml");
    let parsed = yaml("infra/prometheus/prometheus.yml");
    let token_files: BTreeSet<String> = parsed["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|job| job["authorization"]["credentials_file"].as_str())
        .map(str::to_owned)
        .collect();
    for (i, file) in token_files.iter().enumerate() {
        let token = copy.path().join(format!("token-{i}"));
        std::fs::write(&token, "0123456789abcdef0123").unwrap();
        config = config.replace(file.as_str(), token.to_str().unwrap());
    }
    std::fs::write(copy.path().join("prometheus.yml"), config).unwrap();
    std::fs::copy(dir.join("alerts.yml"), copy.path().join("alerts.yml")).unwrap();
    promtool_ok(copy.path(), &["check", "config", "prometheus.yml"]);
}
