//! fastwebsockets echo server, as its `echo_server` example: hyper 1 performs the upgrade,
//! a `FragmentCollector` hands over whole messages, each connection task runs `unconstrained`.
//! auto_close and auto_pong are on (set explicitly, they are the defaults).

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ripple_bench_peers::{MAX_MESSAGE, announce, listen_addr};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind(listen_addr().as_str()).await?;
    announce("fastwebsockets-echo", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        // Ripple's server sets TCP_NODELAY on every connection; do the same here.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(server_upgrade);
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn server_upgrade(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut request)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        let _ = echo(fut).await;
    }));
    Ok(response)
}

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_max_message_size(MAX_MESSAGE);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
