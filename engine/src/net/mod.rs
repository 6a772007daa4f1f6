//! The production world: the system clock, a file disk and a TCP peer transport (tokio).
//!
//! - `clock`: [`SystemClock`], monotonic timers and wall-clock TTL stamps.
//! - `disk`: [`FileDisk`], one append-only file made durable by `fdatasync`.
//! - `peer`: [`TcpNetwork`], Raft messages over TCP (or TLS), and the member [`Directory`].
//! - `tls`: rustls configs for `https://` client and peer URLs, from PEM files.

mod clock;
mod disk;
mod peer;
mod tls;

pub use crate::wire::frame;
pub use clock::SystemClock;
pub use disk::{FileDataDir, FileDisk, InjectedFaults, write_atomic};
pub use peer::{
    Directory, Member, MemberView, PeerSetup, TcpNetwork, bind_reusable, hello_frame, start_peers,
    url_authority,
};
pub use tls::{PeerTls, TlsFiles, client_config, load_certs, load_key, server_config, server_name};
