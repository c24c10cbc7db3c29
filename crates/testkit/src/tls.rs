//! TLS for tests: a throwaway certificate authority with a `localhost` certificate (files a
//! relay's `--tls-cert`/`--tls-key` or a TLS terminator can use, and a `ca.pem` that programs
//! trust through `SSL_CERT_FILE`), and `stunnel` as a real TLS terminator in front of a plain
//! server (the OpenClaw gateway, say).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::process::{Child, Command};

/// A CA and one server certificate for `localhost` / `127.0.0.1`, written under a temp dir.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM): point `SSL_CERT_FILE` at it.
    pub ca: PathBuf,
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

impl TestCa {
    /// Make a fresh CA and a server certificate it signed.
    #[must_use]
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "clawtray test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let write = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).expect("write PEM");
            p
        };
        TestCa {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            dir,
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// `stunnel` terminating TLS on a loopback port and passing the plain bytes to `backend`.
pub struct Stunnel {
    child: Child,
    /// Where clients connect with TLS.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Stunnel {
    /// Start it with `ca`'s server certificate. Panics with a clear message if stunnel is missing
    /// (scripts/setup-system installs `stunnel4`).
    pub async fn start(ca: &TestCa, backend: SocketAddr) -> Stunnel {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::free_port();
        let conf = dir.path().join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\ndebug = 4\n[tls]\naccept = 127.0.0.1:{port}\nconnect = {backend}\ncert = {}\nkey = {}\nsslVersionMin = TLSv1.2\n",
                ca.cert.display(),
                ca.key.display()
            ),
        )
        .expect("write stunnel.conf");
        let bin = ["stunnel4", "stunnel"]
            .into_iter()
            .find_map(crate::on_path)
            .expect("stunnel is not installed: run scripts/setup-system (Debian package stunnel4)");
        let log = std::fs::File::create(dir.path().join("stunnel.log")).expect("log");
        let child = Command::new(bin)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn stunnel");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "stunnel did not listen: {}",
                std::fs::read_to_string(dir.path().join("stunnel.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Stunnel {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Stop it.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}
