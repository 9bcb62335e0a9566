//! The C interface: its header is cbindgen's output for src/ffi.rs as it is
//! now, and the C example, compiled with the system's `cc` against the
//! shared library, checks in against the real server (in this process).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Running, acme};
use seatkeeper::limits::Limits;

fn crate_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_header_is_generated_from_the_code_as_it_is() {
    let folder = crate_folder();
    let config = cbindgen::Config::from_file(folder.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new().with_crate(&folder).with_config(config).generate().expect("cbindgen reads src/ffi.rs").write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let header = folder.join("include/seatkeeper.h");
    if std::env::var_os("SEATKEEPER_WRITE_HEADER").is_some() {
        std::fs::write(&header, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&header).unwrap_or_default();
    assert!(checked_in == generated, "include/seatkeeper.h is out of date: run SEATKEEPER_WRITE_HEADER=1 cargo test -p seatkeeper-client --test c_interface");
    for function in ["sk_client_new", "sk_check_in", "sk_release", "sk_decision_licensed", "sk_decision_reason", "sk_client_free", "sk_last_error"] {
        assert!(generated.contains(function), "{function} is in the header");
    }
}

/// The folder of the shared library cargo built for this test: beside it
/// (`deps/`), or in the profile's folder above.
fn library_folder() -> PathBuf {
    let test = std::env::current_exe().unwrap();
    let deps = test.parent().unwrap().to_owned();
    let candidates = [deps.clone(), deps.parent().unwrap().to_owned()];
    candidates
        .into_iter()
        .find(|folder| folder.join("libseatkeeper_client.so").exists())
        .unwrap_or_else(|| panic!("no libseatkeeper_client.so in or above {}", deps.display()))
}

fn compile_example(out: &Path) -> PathBuf {
    let folder = crate_folder();
    let binary = out.join("check_in");
    let compiled = Command::new("cc")
        .arg(folder.join("examples/check_in.c"))
        .arg("-I")
        .arg(folder.join("include"))
        .arg("-L")
        .arg(library_folder())
        .args(["-lseatkeeper_client", "-Wall", "-Werror", "-o"])
        .arg(&binary)
        .output()
        .expect("cc runs");
    assert!(compiled.status.success(), "cc: {}", String::from_utf8_lossy(&compiled.stderr));
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_checks_in_against_the_server_on_sqlite() {
    let db = store::testing::TestDatabase::sqlite();
    the_c_example_checks_in_against_the_server(db.open().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_checks_in_against_the_server_on_postgres() {
    let Some(db) = store::testing::TestDatabase::postgres().await else { return };
    the_c_example_checks_in_against_the_server(db.open().await).await;
}

async fn the_c_example_checks_in_against_the_server(store: store::Store) {
    let (_, key) = acme(&store).await;
    let server = Running::start(&store, Limits::off()).await;
    let work = tempfile::tempdir().unwrap();
    let example = compile_example(work.path());
    let cache = work.path().join("cache").to_str().unwrap().to_owned();
    let base = server.base.clone();
    let online = {
        let (example, base, key, cache) = (example.clone(), base.clone(), key.clone(), cache.clone());
        tokio::task::spawn_blocking(move || {
            let run = |serial: &str, key: &str| run_example(&example, &[&base, key, "editor", serial, &cache]);
            (run("LAPTOP-1", &key), run("LAPTOP-2", &key), run("LAPTOP-1", "sk_prod_wrong"))
        })
        .await
        .unwrap()
    };
    let (first, second, bad_key) = online;
    assert_eq!(first.0, Some(0), "{first:?}");
    assert!(first.1.starts_with("licensed until ") && first.1.contains("from the server"), "{first:?}");
    assert_eq!((second.0, second.1.trim()), (Some(1), "not licensed: no_seats_available"));
    assert_eq!(bad_key.0, Some(2));
    assert!(bad_key.2.contains("error -1") && bad_key.2.contains("product key"), "{bad_key:?}");
    server.stop().await;

    // The server gone: the cached license answers.
    let offline = tokio::task::spawn_blocking(move || run_example(&example, &[&base, &key, "editor", "LAPTOP-1", &cache])).await.unwrap();
    assert_eq!(offline.0, Some(0), "{offline:?}");
    assert!(offline.1.contains("from the cache"), "{offline:?}");
}

/// Runs the compiled example: its exit status, output and errors.
fn run_example(example: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(example).args(args).env("LD_LIBRARY_PATH", library_folder()).output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Nothing the C side passes makes the library fault or crash.
#[test]
fn null_and_bad_arguments_are_errors_not_crashes() {
    use seatkeeper_client::ffi::*;
    use std::ffi::CStr;
    unsafe {
        let mut client = std::ptr::null_mut();
        let status = sk_client_new(std::ptr::null(), c"k".as_ptr(), c"p".as_ptr(), std::ptr::null(), std::ptr::null(), &mut client);
        assert_eq!(status, SK_ERR_ARGUMENT);
        assert!(CStr::from_ptr(sk_last_error()).to_str().unwrap().contains("server_url"));
        let status = sk_client_new(c"ftp://x".as_ptr(), c"k".as_ptr(), c"p".as_ptr(), std::ptr::null(), std::ptr::null(), &mut client);
        assert_eq!(status, SK_ERR_CONFIG);
        let bad_utf8 = [0xffu8, 0];
        let status = sk_client_new(bad_utf8.as_ptr().cast(), c"k".as_ptr(), c"p".as_ptr(), std::ptr::null(), std::ptr::null(), &mut client);
        assert_eq!(status, SK_ERR_ARGUMENT);
        let status = sk_client_new(c"http://127.0.0.1:9".as_ptr(), c"k".as_ptr(), c"p".as_ptr(), std::ptr::null(), c"not a key set".as_ptr(), &mut client);
        assert_eq!(status, SK_ERR_CONFIG);
        let status = sk_client_new(c"http://127.0.0.1:9".as_ptr(), c"k".as_ptr(), c"p".as_ptr(), std::ptr::null(), std::ptr::null(), &mut client);
        assert_eq!(status, SK_OK);
        let mut decision = std::ptr::null_mut();
        assert_eq!(sk_check_in(client, std::ptr::null(), &mut decision), SK_ERR_ARGUMENT);
        assert_eq!(sk_check_in(client, c"LAPTOP-1".as_ptr(), &mut decision), SK_ERR_UNREACHABLE, "nothing listens on port 9");
        assert!(decision.is_null());
        assert!(!sk_decision_licensed(std::ptr::null()));
        assert!(sk_decision_reason(std::ptr::null()).is_null());
        let mut released = false;
        assert_eq!(sk_release(std::ptr::null(), c"X".as_ptr(), &mut released), SK_ERR_ARGUMENT);
        sk_decision_free(std::ptr::null_mut());
        sk_client_free(client);
        sk_client_free(std::ptr::null_mut());
    }
}
