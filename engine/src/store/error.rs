//! The etcd v2 error codes and the typed error every store operation returns.
//!
//! Depends on nothing else in the crate.

use std::fmt;

/// The etcd v2 error codes this store and its parameter parser can produce (store/README.md §6.1).
///
/// Codes that only other layers emit (110 auth, 300/301 raft, 400 watcher cleared) are listed too,
/// so the HTTP layer renders every error through one table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    /// 100: the key (or a prefix of it) does not exist.
    KeyNotFound,
    /// 101: a prevValue/prevIndex comparison failed.
    TestFailed,
    /// 102: the operation needs a file but found a directory.
    NotFile,
    /// 104: a path component is a file.
    NotDir,
    /// 105: create-only on an existing key.
    NodeExist,
    /// 107: writes and deletes of `/` are refused.
    RootReadOnly,
    /// 108: deleting a non-empty directory without `recursive`.
    DirNotEmpty,
    /// 110: v2 auth refused the request.
    Unauthorized,
    /// 201: `prevValue` was given but empty.
    PrevValueRequired,
    /// 202: `ttl` is not a valid number of seconds.
    TtlNan,
    /// 203: `prevIndex` or `waitIndex` is not a number.
    IndexNan,
    /// 205: the 0.x lock module's `timeout` is not a number.
    TimeoutNan,
    /// 206: the 0.x leader module needs `name`.
    NameRequired,
    /// 207: the 0.x lock module needs `index` or `value`.
    IndexOrValueRequired,
    /// 208: the 0.x lock module's release takes `index` or `value`, not both.
    IndexValueMutex,
    /// 209: a boolean (or `wait` on a non-GET) is invalid.
    InvalidField,
    /// 210: the form could not be parsed (or is over 10 MiB).
    InvalidForm,
    /// 211: `refresh=true` came with a value.
    RefreshValue,
    /// 212: `refresh=true` came without a TTL.
    RefreshTtlRequired,
    /// 300: any failure below the store (timeouts, dropped proposals).
    RaftInternal,
    /// 301: no leader.
    LeaderElect,
    /// 400: the watcher was dropped by a snapshot recovery.
    WatcherCleared,
    /// 401: `waitIndex` is below the event history window.
    EventIndexCleared,
}

impl ErrorCode {
    /// The numeric `errorCode` of the JSON body.
    pub fn number(self) -> u16 {
        match self {
            ErrorCode::KeyNotFound => 100,
            ErrorCode::TestFailed => 101,
            ErrorCode::NotFile => 102,
            ErrorCode::NotDir => 104,
            ErrorCode::NodeExist => 105,
            ErrorCode::RootReadOnly => 107,
            ErrorCode::DirNotEmpty => 108,
            ErrorCode::Unauthorized => 110,
            ErrorCode::PrevValueRequired => 201,
            ErrorCode::TtlNan => 202,
            ErrorCode::IndexNan => 203,
            ErrorCode::TimeoutNan => 205,
            ErrorCode::NameRequired => 206,
            ErrorCode::IndexOrValueRequired => 207,
            ErrorCode::IndexValueMutex => 208,
            ErrorCode::InvalidField => 209,
            ErrorCode::InvalidForm => 210,
            ErrorCode::RefreshValue => 211,
            ErrorCode::RefreshTtlRequired => 212,
            ErrorCode::RaftInternal => 300,
            ErrorCode::LeaderElect => 301,
            ErrorCode::WatcherCleared => 400,
            ErrorCode::EventIndexCleared => 401,
        }
    }

    /// The exact `message` text of the JSON body (store/README.md §6.1).
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::KeyNotFound => "Key not found",
            ErrorCode::TestFailed => "Compare failed",
            ErrorCode::NotFile => "Not a file",
            ErrorCode::NotDir => "Not a directory",
            ErrorCode::NodeExist => "Key already exists",
            ErrorCode::RootReadOnly => "Root is read only",
            ErrorCode::DirNotEmpty => "Directory not empty",
            ErrorCode::Unauthorized => "The request requires user authentication",
            ErrorCode::PrevValueRequired => "PrevValue is Required in POST form",
            ErrorCode::TtlNan => "The given TTL in POST form is not a number",
            ErrorCode::IndexNan => "The given index in POST form is not a number",
            ErrorCode::TimeoutNan => "The given timeout in POST form is not a number",
            ErrorCode::NameRequired => "Name is required in POST form",
            ErrorCode::IndexOrValueRequired => "Index or value is required",
            ErrorCode::IndexValueMutex => "Index and value cannot both be specified",
            ErrorCode::InvalidField => "Invalid field",
            ErrorCode::InvalidForm => "Invalid POST form",
            ErrorCode::RefreshValue => "Value provided on refresh",
            ErrorCode::RefreshTtlRequired => "A TTL must be provided on refresh",
            ErrorCode::RaftInternal => "Raft Internal Error",
            ErrorCode::LeaderElect => "During Leader Election",
            ErrorCode::WatcherCleared => "watcher is cleared due to etcd recovery",
            ErrorCode::EventIndexCleared => "The event in requested index is outdated and cleared",
        }
    }

    /// The HTTP status etcd answers with (store/README.md §6.1; 104/107 are 400, so is 401).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::KeyNotFound => 404,
            ErrorCode::TestFailed | ErrorCode::NodeExist => 412,
            ErrorCode::NotFile | ErrorCode::DirNotEmpty => 403,
            ErrorCode::Unauthorized => 401,
            ErrorCode::RaftInternal | ErrorCode::LeaderElect => 500,
            _ => 400,
        }
    }
}

/// A failed store operation or a rejected parameter, as etcd's JSON error body carries it.
///
/// `index` is the store index at failure time for store errors and 0 for parameter errors
/// (store/README.md §6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    /// The error code.
    pub code: ErrorCode,
    /// The fixed message of `code`.
    pub message: &'static str,
    /// What the error is about (a key path, a compare, a parameter); may be empty.
    pub cause: String,
    /// The store index when the error happened, or 0 for parameter errors.
    pub index: u64,
}

impl StoreError {
    /// An error with `code`'s message.
    pub fn new(code: ErrorCode, cause: impl Into<String>, index: u64) -> StoreError {
        StoreError {
            code,
            message: code.message(),
            cause: cause.into(),
            index,
        }
    }

    /// A parameter error: these always carry index 0 (store/README.md §6.2).
    pub fn param(code: ErrorCode, cause: impl Into<String>) -> StoreError {
        StoreError::new(code, cause, 0)
    }
}

impl fmt::Display for StoreError {
    /// The etcdctl rendering, `100: Key not found (/nope) [5]` (store/README.md §6.3).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}) [{}]",
            self.code.number(),
            self.message,
            self.cause,
            self.index
        )
    }
}

impl std::error::Error for StoreError {}
