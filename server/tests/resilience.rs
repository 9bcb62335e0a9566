//! The seat invariant under load, across processes and through crashes, and
//! the public API under a stream of malformed requests — all against real
//! `seatkeeper` processes over HTTP.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Rng;
use common::process::{Server, json_of};
use serde_json::{Value, json};
use store::testing::TestDatabase;
use tokio::sync::Semaphore;

const SEATS: i64 = 25;

/// Every serial of an admin API list, page by page.
async fn every_serial(client: &reqwest::Client, list: &str, admin_key: &str) -> BTreeSet<String> {
    let mut serials = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{list}?limit=500");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = client.get(url).bearer_auth(admin_key).send().await.unwrap().json().await.unwrap();
        serials.extend(page["items"].as_array().unwrap().iter().map(|h| h["serial"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return serials,
        }
    }
}

async fn holders(client: &reqwest::Client, base: &str, admin_key: &str) -> BTreeSet<String> {
    every_serial(client, &format!("{base}/api/v1/admin/products/editor/devices"), admin_key).await
}

/// Every product's seats, stored counter and assignment rows, read with SQL
/// straight from the database once the servers have stopped, and checked:
/// the rows never exceed the seats (the operator never lowered them here)
/// and the counter is exactly the rows.
async fn seats_hold_in_the_database(db: &TestDatabase) -> Vec<(String, i64, i64, i64)> {
    const SQL: &str = "select p.code, cast(p.seats as bigint), cast(p.assigned as bigint),
                              (select count(*) from assignments a where a.product_id = p.id)
                       from products p order by p.code";
    let rows: Vec<(String, i64, i64, i64)> = if db.url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query_as(SQL).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query_as(SQL).fetch_all(&pool).await.unwrap()
    };
    for (code, seats, assigned, rows) in &rows {
        assert!(rows <= seats, "{code}: {rows} assignment rows for {seats} seats");
        assert_eq!(assigned, rows, "{code}: the stored counter says {assigned}, the rows are {rows}");
    }
    rows
}

/// The organization "acme" with the product "editor" (auto-assign on); its
/// administration and product keys.
fn acme(db: &TestDatabase, seats: i64) -> (String, String) {
    let acme = json_of(db, &["org", "create", "acme"]);
    json_of(db, &["product", "add", "--org", "acme", "--code", "editor", "--name", "Editor", "--seats", &seats.to_string(), "--auto-assign"]);
    (acme["admin_key"].as_str().unwrap().to_owned(), acme["product_key"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_racing_check_ins_and_admin_actions_keep_every_seat_exactly_once() {
    race(TestDatabase::sqlite(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_processes_racing_keep_every_seat_exactly_once() {
    if let Some(db) = TestDatabase::postgres().await {
        race(db, 2).await;
    }
}

/// 600 new devices check in, spread over the processes, while an admin keeps
/// revoking holders and assigning seats by hand.
async fn race(db: TestDatabase, processes: usize) {
    let servers: Vec<Server> = (0..processes).map(|_| Server::start(&db)).collect();
    let (admin_key, product_key) = acme(&db, SEATS);
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let client = reqwest::Client::new();

    let licensed = Arc::new(Mutex::new(HashSet::new()));
    let removed_by_admin = Arc::new(Mutex::new(HashSet::new()));
    let server_errors = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Semaphore::new(48));
    let mut tasks = Vec::new();
    for i in 0..600 {
        let (client, base, key) = (client.clone(), bases[i % bases.len()].clone(), product_key.clone());
        let (licensed, server_errors, gate) = (licensed.clone(), server_errors.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let serial = format!("RACE-{i:04}");
            let response = client
                .post(format!("{base}/api/v1/checkin"))
                .bearer_auth(&key)
                .json(&json!({"product": "editor", "serial": serial}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            if status.is_server_error() {
                server_errors.lock().unwrap().push(format!("check-in {serial}: {status}"));
                return;
            }
            let answer: Value = response.json().await.unwrap();
            if answer["licensed"] == true {
                licensed.lock().unwrap().insert(serial);
            }
        }));
    }
    // The admin, meanwhile, on whichever process: revoke someone, then give a seat by hand.
    let admin = {
        let (client, bases, key) = (client.clone(), bases.clone(), admin_key.clone());
        let (removed, server_errors) = (removed_by_admin.clone(), server_errors.clone());
        tokio::spawn(async move {
            for round in 0..30 {
                let base = &bases[round % bases.len()];
                let current = holders(&client, base, &key).await;
                if let Some(victim) = current.iter().next() {
                    let status = client.delete(format!("{base}/api/v1/admin/devices/{victim}/licenses/editor")).bearer_auth(&key).send().await.unwrap().status();
                    if status.is_server_error() {
                        server_errors.lock().unwrap().push(format!("revoke: {status}"));
                    }
                    removed.lock().unwrap().insert(victim.clone());
                }
                let chosen = format!("RACE-{:04}", 599 - round);
                let status = client.put(format!("{base}/api/v1/admin/devices/{chosen}/licenses/editor")).bearer_auth(&key).send().await.unwrap().status();
                if status.is_server_error() {
                    server_errors.lock().unwrap().push(format!("assign: {status}"));
                }
            }
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    admin.await.unwrap();

    // Whatever seats the admin freed last are filled by the next newcomers.
    for i in 0..SEATS {
        let response = client.post(format!("{}/api/v1/checkin", bases[0])).bearer_auth(&product_key).json(&json!({"product": "editor", "serial": format!("LATE-{i:03}")})).send().await.unwrap();
        assert!(response.status().is_success());
    }

    assert_eq!(*server_errors.lock().unwrap(), Vec::<String>::new(), "no request failed with a 5xx");
    let product: Value = client.get(format!("{}/api/v1/admin/products/editor", bases[0])).bearer_auth(&admin_key).send().await.unwrap().json().await.unwrap();
    let holders = holders(&client, &bases[0], &admin_key).await;
    assert_eq!(product["assigned"], SEATS, "every seat taken");
    assert_eq!(holders.len() as i64, SEATS, "each by exactly one device");
    let removed = removed_by_admin.lock().unwrap().clone();
    for serial in licensed.lock().unwrap().iter() {
        assert!(holders.contains(serial) || removed.contains(serial), "{serial} was told licensed, lost its seat, and no admin took it");
    }
    eprintln!(
        "race on {processes} process(es): 600 check-ins + {SEATS} late for {SEATS} seats, {} told licensed, {} revoked by the admin",
        licensed.lock().unwrap().len(),
        removed.len()
    );
    for server in servers {
        server.stop();
    }
    let in_database = seats_hold_in_the_database(&db).await;
    assert!(in_database.contains(&("editor".to_owned(), SEATS, SEATS, SEATS)), "{in_database:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_load_loses_no_seat_it_gave() {
    let db = TestDatabase::sqlite();
    // Fewer seats than the devices that ask: every round contends for them.
    const KILL_SEATS: i64 = 150;
    let (admin_key, product_key) = acme(&db, KILL_SEATS);
    let client = reqwest::Client::new();
    let mut told_licensed = BTreeSet::new();

    for round in 0..3 {
        let server = Server::start(&db);
        let answered = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_millis(400);
        let workers: Vec<_> = (0..16)
            .map(|worker| {
                let (client, base, key, answered) = (client.clone(), server.base.clone(), product_key.clone(), answered.clone());
                let replies = replies.clone();
                tokio::spawn(async move {
                    for n in 0.. {
                        let serial = format!("KILL-{round}-{worker:02}-{n:05}");
                        let sent = client.post(format!("{base}/api/v1/checkin")).bearer_auth(&key).json(&json!({"product": "editor", "serial": serial})).send().await;
                        // After the kill, requests fail: that is the point.
                        let Ok(response) = sent else { break };
                        let Ok(answer) = response.json::<Value>().await else { break };
                        replies.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if answer["licensed"] == true {
                            answered.lock().unwrap().push(serial);
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep_until(deadline.into()).await;
        server.kill();
        seats_hold_in_the_database(&db).await;
        for worker in workers {
            worker.await.unwrap();
        }
        let answered = answered.lock().unwrap().clone();
        assert!(replies.load(std::sync::atomic::Ordering::SeqCst) > 0, "round {round}: the load ran");
        told_licensed.extend(answered);
    }

    let server = Server::start(&db);
    let holders = holders(&client, &server.base, &admin_key).await;
    let missing: Vec<_> = told_licensed.difference(&holders).collect();
    assert!(missing.is_empty(), "{} devices were told licensed and lost their seat: {:?}", missing.len(), &missing[..missing.len().min(5)]);
    let product: Value = client.get(format!("{}/api/v1/admin/products/editor", server.base)).bearer_auth(&admin_key).send().await.unwrap().json().await.unwrap();
    assert_eq!(product["assigned"], holders.len(), "the seat count matches the assignments after {} kills", 3);
    eprintln!("3 SIGKILLs mid-load: {} check-ins answered licensed, all still assigned", told_licensed.len());
    server.stop();
    let in_database = seats_hold_in_the_database(&db).await;
    assert!(in_database.contains(&("editor".to_owned(), KILL_SEATS, KILL_SEATS, KILL_SEATS)), "{in_database:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_malformed_requests_get_documented_4xx_answers_and_record_nothing() {
    malformed_requests_get_documented_4xx_answers_and_record_nothing(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_malformed_requests_get_documented_4xx_answers_and_record_nothing() {
    if let Some(db) = TestDatabase::postgres().await {
        malformed_requests_get_documented_4xx_answers_and_record_nothing(db).await;
    }
}

/// A stream of check-ins, most of them malformed in some way: each gets a
/// documented answer, a well-formed one among them is answered 200, and
/// the database holds exactly the devices answered as recorded.
async fn malformed_requests_get_documented_4xx_answers_and_record_nothing(db: TestDatabase) {
    let (admin_key, product_key) = acme(&db, 10);
    // Half the requests carry a wrong key; the address throttle would soon
    // answer them all with 429, and this test is about what the API makes of them.
    let server = Server::start_with(&db, "info", &["--failed-auth-per-minute", "0"]);
    let client = reqwest::Client::new();
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let serials = ["", " ", "\u{0}", "\t", "a\nb", "' or 1=1 --", "\"; drop table devices; --", "%", "_", "\\", "🔑", "é", "\u{202e}rtl", "\u{feff}", "null", "0"];
    let products = ["editor", "Editor", "", "../editor", "editor%00", "'", "e".repeat(65).leak(), "nope"];
    let content_types = ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin1", "APPLICATION/JSON"];
    let mut sent = 0;
    let mut well_formed_sent = 0;
    let mut created = HashSet::new();

    for _ in 0..1500 {
        // The serial when the body is a well-formed check-in of "editor".
        let mut serial_sent: Option<String> = None;
        let body: Vec<u8> = match rng.below(8) {
            0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            1 => json!({"product": rng.pick(&products), "serial": rng.pick(&serials)}).to_string().into_bytes(),
            2 => json!({"product": rng.pick(&products), "serial": rng.next()}).to_string().into_bytes(),
            3 => format!("{}{}", "[".repeat(rng.below(3000)), "]".repeat(rng.below(3000))).into_bytes(),
            4 => format!(r#"{{"product": "editor", "serial": 1{}}}"#, "0".repeat(rng.below(500))).into_bytes(),
            5 => vec![b'x'; 16 * 1024 + rng.below(4096)],
            6 => {
                let serial = "x".repeat(120 + rng.below(20));
                serial_sent = Some(serial.clone());
                json!({"product": "editor", "serial": serial}).to_string().into_bytes()
            }
            _ => {
                let serial = format!("{}{}", rng.pick(&serials), rng.below(1000));
                serial_sent = Some(serial.clone());
                json!({"product": "editor", "serial": serial}).to_string().into_bytes()
            }
        };
        let key = match rng.below(6) {
            0 => String::new(),
            1 => admin_key.clone(),
            2 => format!("{product_key}\u{7f}"),
            _ => product_key.clone(),
        };
        let mut request = client.post(format!("{}/api/v1/checkin", server.base)).body(body.clone());
        let content_type = rng.pick(&content_types);
        let well_formed = key == product_key
            && content_type.to_ascii_lowercase().starts_with("application/json")
            && serial_sent.as_deref().is_some_and(|serial| store::validate::serial(serial).is_ok());
        well_formed_sent += usize::from(well_formed);
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        if let Ok(value) = reqwest::header::HeaderValue::from_bytes(format!("Bearer {key}").as_bytes()) {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("the server answers every request");
        sent += 1;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or_else(|e| panic!("status {status} without a JSON body: {e}"));
        if well_formed {
            assert_eq!(status, 200, "a well-formed check-in of {serial_sent:?}: {answer}");
        }
        match status {
            200 => {
                assert!(answer["licensed"].is_boolean(), "{answer}");
                if !answer["first_seen"].is_null() {
                    created.insert(answer["serial"].as_str().unwrap().to_owned());
                }
            }
            400 | 401 | 404 | 413 | 415 | 429 => {
                assert!(answer["error"]["code"].is_string() && answer["error"]["message"].is_string(), "{status}: {answer}");
            }
            other => panic!("status {other} for body {:?}: {answer}", String::from_utf8_lossy(&body[..body.len().min(80)])),
        }
    }

    // The database holds exactly the devices that were answered as recorded.
    let recorded: HashSet<String> = every_serial(&client, &format!("{}/api/v1/admin/devices", server.base), &admin_key).await.into_iter().collect();
    assert_eq!(recorded, created, "after {sent} fuzzed requests");
    assert!(well_formed_sent >= 50, "the mix held {well_formed_sent} well-formed check-ins");
    eprintln!("{sent} fuzzed check-ins ({well_formed_sent} well-formed, all 200): no 5xx, {} devices recorded, each one answered as recorded", recorded.len());
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_requests_in_flight_and_exits_within_seconds() {
    let db = TestDatabase::sqlite();
    let (admin_key, product_key) = acme(&db, 100000);
    let server = Server::start(&db);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let answered = Arc::new(Mutex::new(Vec::new()));
    // Once set, a refused connection is the point; before, it is a failure.
    let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|worker| {
            let (client, base, key, answered) = (client.clone(), base.clone(), product_key.clone(), answered.clone());
            let signalled = signalled.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let serial = format!("TERM-{worker:02}-{n:05}");
                    let sent = client.post(format!("{base}/api/v1/checkin")).bearer_auth(&key).json(&json!({"product": "editor", "serial": serial})).send().await;
                    let response = match sent {
                        Ok(response) => response,
                        Err(error) if !signalled.load(std::sync::atomic::Ordering::SeqCst) => {
                            panic!("a check-in failed before the signal was sent: {error}")
                        }
                        Err(_) => break,
                    };
                    assert!(!response.status().is_server_error(), "a request in flight failed: {}", response.status());
                    let Ok(answer) = response.json::<Value>().await else { break };
                    if answer["licensed"] == true {
                        answered.lock().unwrap().push(serial);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    signalled.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::task::spawn_blocking(move || server.stop()).await.expect("the server exits cleanly on SIGTERM");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "exited {took:?} after SIGTERM");
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(client.get(format!("{base}/healthz")).send().await.is_err(), "new connections are refused once it has stopped");

    let answered = answered.lock().unwrap().clone();
    assert!(!answered.is_empty());
    let again = Server::start(&db);
    let holders = holders(&client, &again.base, &admin_key).await;
    assert!(answered.iter().all(|serial| holders.contains(serial)), "nothing answered was lost");
    eprintln!("SIGTERM under load: exited in {took:?}; {} answered check-ins all kept", answered.len());
    again.stop();
}
