//! Test support (feature `test-support`): a throwaway PostgreSQL server for a test binary, and a
//! fresh database on it per test.
//!
//! The server is started by `scripts/pg-test-server.sh` (which installs PostgreSQL from the
//! distribution's packages when missing) in a temporary folder, on a free loopback port. A
//! [`PgServer`] stops it when dropped; the one [`PgServer::shared`] hands out lives as long as the
//! test process, and a watchdog stops it when that process exits (statics are never dropped).
//! Without a server the tests fail with the script's reason: none passes by skipping.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use sqlx::Connection as _;

/// `scripts/pg-test-server.sh` of this workspace.
pub fn server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-test-server.sh")
}

/// A running PostgreSQL server in a temporary folder; stopped (and the folder removed) on drop.
#[derive(Debug)]
pub struct PgServer {
    dir: Option<tempfile::TempDir>,
    url: String,
}

impl PgServer {
    /// Starts a server, or panics with the reason (the script's message and the server's log).
    pub fn start() -> PgServer {
        let dir = tempfile::Builder::new()
            .prefix("towerlab-pg-")
            .tempdir()
            .expect("a temporary folder for the PostgreSQL test server");
        let out = Command::new("bash")
            .arg(server_script())
            .arg("start")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", server_script().display()));
        if !out.status.success() {
            panic!(
                "the PostgreSQL test server did not start ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            url.starts_with("postgres://"),
            "pg-test-server.sh printed no URL: {url:?}"
        );
        PgServer {
            dir: Some(dir),
            url,
        }
    }

    /// The server of this test process, started on first use and stopped when the process
    /// exits (by a watchdog shell that waits for it).
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let server = PgServer::start();
            let dir = server.dir().to_path_buf();
            // Survives this process (its own session), waits for it to end, then stops the
            // server and removes its folder.
            let watchdog = format!(
                "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
                 bash '{script}' stop '{dir}' >/dev/null 2>&1; rm -rf '{dir}'",
                pid = std::process::id(),
                script = server_script().display(),
                dir = dir.display(),
            );
            Command::new("setsid")
                .args(["-f", "bash", "-c", &watchdog])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("setsid starts the PostgreSQL test server's watchdog");
            server
        })
    }

    /// The folder holding the server's data, socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// The URL of the server's `postgres` database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A URL of a database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        match self.url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("unexpected server URL {}", self.url),
        }
    }

    /// Creates a fresh, empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test server {}: {e}", self.url));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        admin.close().await.ok();
        self.database_url(&name)
    }

    /// The same, for code without an async runtime.
    pub fn fresh_database_blocking(&self) -> String {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(self.fresh_database())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = Command::new("bash")
                .arg(server_script())
                .arg("stop")
                .arg(dir.path())
                .stdin(Stdio::null())
                .output();
        }
    }
}
