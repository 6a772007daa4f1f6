//! The etcd v2 HTTP API over the typed client API.
