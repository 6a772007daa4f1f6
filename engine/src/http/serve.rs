//! The hyper adapter (feature `net`): serves the transport-free service over HTTP/1.1 on TCP
//! or TLS. A hyper request becomes a service [`Request`] (the form body read here, with the
//! size limit and the read timeout), and a service [`Response`] becomes a hyper response (a
//! whole body with `Content-Length`, a stream as a chunked body).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::{App, Body, FORM_BYTES_MAX, HEADER_BYTES_MAX, Request, takes_form_body};
use crate::net::SystemClock;
use crate::server::Clock;

/// Reads a hyper request into a service request: the form body only when the service reads
/// one (PUT/POST/PATCH with a form content type), at most 10 MiB, within
/// [`BODY_READ_TIMEOUT_MS`]. A declared length over the limit is not refused before reading:
/// etcd reads up to the limit and then answers 210, and a client still sending gets that answer.
async fn read_request(request: hyper::Request<Incoming>) -> Request {
    let (head, body) = request.into_parts();
    if !takes_form_body(&head) {
        return Request::from_parts(head, Ok(Bytes::new()));
    }
    // A client that stops sending its body must not hold the connection forever.
    let read = Limited::new(body, FORM_BYTES_MAX).collect();
    let timeout = std::time::Duration::from_millis(BODY_READ_TIMEOUT_MS);
    let form = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err("http: POST too large".to_string()),
        Err(_) => Err("http: request body read timed out".to_string()),
    };
    Request::from_parts(head, form)
}

/// A service response as hyper sends it.
fn write_response(response: super::Response) -> hyper::Response<UnsyncBoxBody<Bytes, Infallible>> {
    let (head, body) = response.into_parts();
    let body = match body {
        Body::Full(bytes) => Full::new(bytes).boxed_unsync(),
        Body::Stream(chunks) => {
            let frames =
                futures::StreamExt::map(chunks, |bytes| Ok::<_, Infallible>(Frame::data(bytes)));
            StreamBody::new(frames).boxed_unsync()
        }
    };
    hyper::Response::from_parts(head, body)
}

/// Serves HTTP/1.1 on `listener` until the process ends: one task per connection. With `tls`
/// (`https://` client URLs) each connection is a TLS handshake first, on its own task and
/// under its connection permit, cut off after [`TLS_HANDSHAKE_TIMEOUT_MS`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App<SystemClock>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let mut backoff_ms = 0;
    loop {
        // At most CONNECTIONS_MAX connections: the next waits in the kernel's backlog until
        // one closes, instead of costing a task and buffers here.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff_ms = 0;
                stream
            }
            Err(e) => {
                // Out of file descriptors or memory: retrying at once would spin. Back off,
                // doubling up to a second, until an accept succeeds again.
                backoff_ms = (backoff_ms * 2).clamp(ACCEPT_BACKOFF_MIN_MS, ACCEPT_BACKOFF_MAX_MS);
                tracing::warn!(error = %e, backoff_ms, "accept failed");
                let now = app.clock.now_ms();
                app.clock.sleep_until(now + backoff_ms).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        spawn(async move {
            match tls {
                None => serve_connection(stream, app).await,
                Some(acceptor) => {
                    let handshake = std::time::Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS);
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, app).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "client TLS handshake refused"),
                        Err(_) => tracing::debug!("client TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Serves the requests of one connection (plain or TLS) until it closes.
async fn serve_connection<S>(stream: S, app: Arc<App<SystemClock>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let app = app.clone();
        async move {
            let request = read_request(request).await;
            Ok::<_, Infallible>(write_response(app.handle(request).await))
        }
    });
    // One request at a time per connection (HTTP/1.1), so a connection holds at most one
    // watch; a client that sends its headers too slowly, or too many of them, is cut off
    // (hyper answers 431 to oversized headers).
    let _ = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_millis(HEADER_READ_TIMEOUT_MS))
        .max_buf_size(HEADER_BYTES_MAX)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// How long a client may take to send a form body.
const BODY_READ_TIMEOUT_MS: u64 = 30_000;
/// Most client connections open at once.
const CONNECTIONS_MAX: usize = 4096;
/// How long a client may take to finish its TLS handshake (`https://` client URLs).
const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// The back-off after a failed accept, doubling from the first to the second.
const ACCEPT_BACKOFF_MIN_MS: u64 = 5;
const ACCEPT_BACKOFF_MAX_MS: u64 = 1_000;

/// The service's [`super::Spawn`] in `floe`: a task on tokio's runtime.
pub fn spawn_on_tokio(future: futures::future::BoxFuture<'static, ()>) {
    spawn(future);
}

/// Runs a future on the tokio runtime (the production world's only executor).
#[allow(
    clippy::disallowed_methods,
    reason = "production HTTP: one task per connection on tokio's runtime"
)]
fn spawn<F>(future: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(future);
}
