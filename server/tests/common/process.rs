//! Running the real `seatkeeper` binary: operator commands and servers on a
//! random port, for the tests that need whole processes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use store::testing::TestDatabase;

/// The binary these tests run: the release build users run when
/// `SEATKEEPER_BIN` names it (`scripts/test.sh` builds it first and does),
/// else the test profile's build of the same code.
pub fn bin() -> String {
    std::env::var("SEATKEEPER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_seatkeeper").to_owned())
}

pub fn seatkeeper(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(bin()).args(args).env("DATABASE_URL", &db.url).env("RUST_LOG", "warn").output().expect("run seatkeeper")
}

/// Runs a command that must succeed with `--json` and returns its JSON.
pub fn json_of(db: &TestDatabase, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let output = seatkeeper(db, &args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e})"))
}

/// A `seatkeeper serve` process on a random port.
pub struct Server {
    pub child: Child,
    pub base: String,
    printed: Option<std::thread::JoinHandle<String>>,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(db: &TestDatabase) -> Server {
        Server::start_logging(db, "info")
    }

    pub fn start_logging(db: &TestDatabase, level: &str) -> Server {
        Server::start_with(db, level, &[])
    }

    /// A server with more command-line arguments.
    pub fn start_with(db: &TestDatabase, level: &str, args: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = log
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                // Plain or JSON logs: the address ends at a space or a quote.
                let at = line.find("http://")?;
                Some(line[at..].split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or_default().to_owned())
            })
            .expect("the server says where it listens");
        // Keep reading the log so the server never writes into a full pipe.
        let kept = Arc::new(Mutex::new(String::new()));
        let sink = kept.clone();
        std::thread::spawn(move || {
            for line in log.map_while(Result::ok) {
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        // The server prints its summary before it listens; a thread collects it.
        let mut pipe = child.stdout.take().unwrap();
        let printed = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        });
        Server { child, base, printed: Some(printed), log: kept }
    }

    /// What the server printed on stdout, once it has stopped.
    fn printed(&mut self) -> String {
        self.printed.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default()
    }

    /// Kills the server with SIGKILL, as a crash or an OOM killer would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and returns what it printed.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "the server stops cleanly on SIGTERM: {status}");
                return self.printed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the server did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn check_in(base: &str, key: &str, product: &str, serial: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/checkin"))
        .bearer_auth(key)
        .json(&json!({"product": product, "serial": serial}))
        .send()
        .await
        .expect("the server answers");
    (response.status().as_u16(), response.json().await.expect("JSON"))
}

