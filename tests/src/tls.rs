//! Certificates for the TLS tests, made with the `openssl` command: a CA of the test's own
//! and a server certificate for 127.0.0.1 and localhost signed by it (rustls checks the
//! subjectAltName, not the CN).

use std::path::Path;
use std::process::Command;

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (infra/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>.pem`, `<name>.key`) in `dir`.
pub fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A server certificate for 127.0.0.1 and localhost (`leaf.pem`, `leaf.key`) signed by `ca`.
pub fn make_leaf(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

/// Debian's `stunnel4` terminating TLS on a loopback port in front of a plain TCP one (the
/// Kafka-protocol broker of the tests serves no TLS itself).
pub struct Stunnel {
    child: std::process::Child,
    _dir: crate::TempDir,
}

impl Stunnel {
    /// TLS on `accept` with `cert` and `key`, forwarded to `connect`; returns once `accept`
    /// takes connections.
    pub fn start(accept: u16, connect: u16, cert: &Path, key: &Path) -> Stunnel {
        let dir = crate::TempDir::new("revline-stunnel");
        let conf = dir.path().join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\noutput = {}\n[kafka]\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\ncert = {}\nkey = {}\n",
                dir.path().join("stunnel.log").display(),
                cert.display(),
                key.display()
            ),
        )
        .expect("write the stunnel configuration");
        let child = Command::new("stunnel4")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start stunnel4 (infra/test.sh installs it)");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{accept}").parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "stunnel did not listen on {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Stunnel { child, _dir: dir }
    }
}

impl Stunnel {
    /// What stunnel logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stunnel.log")).unwrap_or_default()
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
