//! Building responses the way etcd's Go server writes them (store/README.md §2, §5, §6;
//! `G<n>` numbers are its transcripts, §Transcripts).

use ::http::StatusCode;
use ::http::header::{HeaderName, HeaderValue};
use bytes::Bytes;

pub use super::{Body, Response};
use crate::store::StoreError;
use crate::store::render::render_error;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body::Full(bytes.into())
}

/// A response with a whole body and the given content type.
pub fn with_body(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if !content_type.is_empty()
        && let Ok(value) = HeaderValue::from_str(content_type)
    {
        // By its constant name: a name given as a string is parsed at every insert.
        response
            .headers_mut()
            .insert(::http::header::CONTENT_TYPE, value);
    }
    response
}

/// Sets a header (names are written title-cased on the wire).
pub fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = ::http::header::HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The keys API's headers, parsed once (HTTP/1 names are case-insensitive; these are the
/// lowercase forms every name is stored as).
pub const X_ETCD_CLUSTER_ID: HeaderName = HeaderName::from_static("x-etcd-cluster-id");
/// `X-Etcd-Index`.
pub const X_ETCD_INDEX: HeaderName = HeaderName::from_static("x-etcd-index");
/// `X-Raft-Index`.
pub const X_RAFT_INDEX: HeaderName = HeaderName::from_static("x-raft-index");
/// `X-Raft-Term`.
pub const X_RAFT_TERM: HeaderName = HeaderName::from_static("x-raft-term");

/// Sets a header whose value is a number (decimal digits are always a valid value).
pub fn set_number(response: &mut Response, name: HeaderName, value: u64) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from(value));
}

/// `text/plain; charset=utf-8`, as Go's `http.Error` and plain writes.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `application/json`.
pub const JSON: &str = "application/json";

/// Go's `http.NotFound`: 404 `404 page not found\n` (G61).
pub fn not_found() -> Response {
    let mut response = with_body(404, TEXT, "404 page not found\n");
    set(&mut response, "X-Content-Type-Options", "nosniff");
    response
}

/// Go's 405 for the keys handler (G50).
pub fn method_not_allowed(allow: &str) -> Response {
    let mut response = with_body(405, TEXT, "Method Not Allowed\n");
    set(&mut response, "Allow", allow);
    set(&mut response, "X-Content-Type-Options", "nosniff");
    response
}

/// Go's `http.Error(w, text, status)`: plain text plus a newline.
pub fn plain_error(status: u16, text: &str) -> Response {
    let mut response = with_body(status, TEXT, format!("{text}\n"));
    set(&mut response, "X-Content-Type-Options", "nosniff");
    response
}

/// An etcd v2 error: its JSON body, status, and `X-Etcd-Index` = the error's index; no
/// `X-Raft-*` headers (store/README.md §5.3).
pub fn store_error(error: &StoreError, cluster_id: &str) -> Response {
    store_error_with(error, HeaderValue::from_str(cluster_id).ok())
}

/// [`store_error`] with the cluster id already a header value (none: the header is left out).
pub fn store_error_with(error: &StoreError, cluster_id: Option<HeaderValue>) -> Response {
    let mut response = with_body(error.code.http_status(), JSON, render_error(error));
    if let Some(id) = cluster_id {
        response.headers_mut().insert(X_ETCD_CLUSTER_ID, id);
    }
    set_number(&mut response, X_ETCD_INDEX, error.index);
    response
}

/// A `{"message":…}` error of the members and stats endpoints (store/README.md §6.3).
pub fn message_error(status: u16, message: &str) -> Response {
    let mut body = String::from("{\"message\":");
    crate::store::render::push_json_string(&mut body, message);
    body.push_str("}\n");
    with_body(status, JSON, body)
}
