//! wss:// end to end with a self-signed certificate.

use ripple::{Acceptor, ClientBuilder, Error, Message, Server};

use crate::support::echo;

struct TlsServer {
    url: String,
    ca_pem: String,
}

async fn tls_echo_server() -> TlsServer {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca_pem = cert.cert.pem();
    let config =
        ripple::tls::server_config(ca_pem.as_bytes(), cert.key_pair.serialize_pem().as_bytes())
            .unwrap();
    let server = Server::bind("127.0.0.1:0")
        .await
        .unwrap()
        .acceptor(Acceptor::new())
        .tls(config);
    let port = server.local_addr().unwrap().port();
    tokio::spawn(server.run(echo, std::future::pending()));
    TlsServer {
        url: format!("wss://localhost:{port}/"),
        ca_pem,
    }
}

#[tokio::test]
async fn wss_round_trip_with_a_custom_ca() {
    let server = tls_echo_server().await;
    let mut ws = ClientBuilder::new(&server.url)
        .root_ca_pem(server.ca_pem.as_bytes())
        .connect()
        .await
        .unwrap();
    ws.send("secret").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(Message::from("secret")));
}

#[tokio::test]
async fn unknown_certificate_is_a_tls_error() {
    let server = tls_echo_server().await;
    assert!(matches!(
        ripple::connect(&server.url).await,
        Err(Error::Tls(_))
    ));
}

#[tokio::test]
async fn insecure_option_accepts_any_certificate() {
    let server = tls_echo_server().await;
    let mut ws = ClientBuilder::new(&server.url)
        .danger_accept_invalid_certs(true)
        .connect()
        .await
        .unwrap();
    ws.send(Message::from(vec![1u8; 100_000])).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().map(|m| m.len()), Some(100_000));
}
