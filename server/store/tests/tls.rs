//! PostgreSQL over TLS, as a managed database requires it: `sslmode=require`
//! against the local cluster's own certificate, and `verify-full` against a
//! certificate authority this test makes, whose server certificate a TLS
//! front for the local cluster presents. The store must open, migrate and
//! work through either, and refuse a server it cannot verify.

use std::net::SocketAddr;
use std::sync::Arc;

use store::testing::TestDatabase;
use store::prelude::*;
use store::{Actor, NewProduct, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority, and a certificate for `localhost` it signed.
struct Authority {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

fn new_authority() -> Authority {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Seatkeeper test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    Authority {
        ca_pem: ca_cert.pem(),
        server_chain: vec![server_cert.der().clone()],
        server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    }
}

/// A TLS front for the local cluster: it answers PostgreSQL's SSLRequest,
/// speaks TLS with `authority`'s certificate, and relays the rest in the
/// clear to 127.0.0.1:5432.
async fn tls_front(authority: &Authority) -> SocketAddr {
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(authority.server_chain.clone(), authority.server_key.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut ssl_request = [0u8; 8];
                client.read_exact(&mut ssl_request).await.ok()?;
                // Length 8, then the SSLRequest code 80877103.
                if ssl_request != [0, 0, 0, 8, 4, 210, 22, 47] {
                    return None;
                }
                client.write_all(b"S").await.ok()?;
                let mut tls = acceptor.accept(client).await.ok()?;
                let mut cluster = TcpStream::connect("127.0.0.1:5432").await.ok()?;
                tokio::io::copy_bidirectional(&mut tls, &mut cluster).await.ok()
            });
        }
    });
    addr
}

/// The test database's URL, reached at `host:port` with these parameters.
fn url_via(db: &TestDatabase, host: &str, port: u16, params: &str) -> String {
    let (_, name) = db.url.rsplit_once('/').unwrap();
    let user = db.url.split("://").nth(1).and_then(|rest| rest.split('@').next()).unwrap();
    format!("postgres://{user}@{host}:{port}/{name}?{params}")
}

/// The store works end to end over the connection it was opened with.
async fn works(store: &Store) {
    let created = store.create_organization("acme").await.unwrap();
    let org = store.organization_by_name("acme").await.unwrap().id;
    let editor = NewProduct { code: "editor".into(), name: "Editor".into(), seats: 1, auto_assign: true };
    store.add_product(org, &editor, Actor::Operator).await.unwrap();
    assert!(store.check_in(org, "editor", "SN-1").await.unwrap().licensed);
    assert!(store.authenticate_product(&created.product_key).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_with_sslmode_require() {
    let Some(db) = TestDatabase::postgres().await else { return };
    // The local cluster's own certificate (Debian's snakeoil): encrypted, not verified.
    let store = Store::open(&url_via(&db, "127.0.0.1", 5432, "sslmode=require")).await.expect("opens over TLS");
    works(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_with_sslmode_verify_full_and_a_certificate_authority_of_its_own() {
    let Some(db) = TestDatabase::postgres().await else { return };
    let authority = new_authority();
    let folder = tempfile::tempdir().unwrap();
    let ca_file = folder.path().join("root.crt");
    std::fs::write(&ca_file, &authority.ca_pem).unwrap();
    let front = tls_front(&authority).await;
    let verified = format!("sslmode=verify-full&sslrootcert={}", ca_file.display());

    let store = Store::open(&url_via(&db, "localhost", front.port(), &verified)).await.expect("verified and opened");
    works(&store).await;

    // The certificate names localhost, not 127.0.0.1: verify-full refuses it.
    let wrong_name = Store::open(&url_via(&db, "127.0.0.1", front.port(), &verified)).await;
    assert!(wrong_name.is_err(), "a certificate for another name must be refused");
    // Another authority's certificate: refused too.
    let stranger = folder.path().join("stranger.crt");
    std::fs::write(&stranger, new_authority().ca_pem).unwrap();
    let untrusted = format!("sslmode=verify-full&sslrootcert={}", stranger.display());
    assert!(Store::open(&url_via(&db, "localhost", front.port(), &untrusted)).await.is_err());
}
