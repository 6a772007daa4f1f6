//! Opening a member's data directory: the check `floe` runs at every start and the simulator at
//! every restart, over the directory as each world has it (`DataDir`: files in production, the
//! simulated disk in `sim`).
//!
//! A data directory holds a meta record (which cluster and member it belongs to) and the log.
//! The check refuses a directory of another cluster or member, a log without a meta record,
//! an empty directory when the member is told it joins an existing cluster, and a log damaged
//! before its tail: recovery cuts the log at its first bad record, which is right for a torn
//! last write but would drop acknowledged entries if the damage has intact records after it.
//! On a first start it writes the meta record, atomically, before the log exists.

use std::future::Future;

use crate::log::{Disk, MemDisk, Wal, intact_record_after};

/// Who a data directory must belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberIdentity {
    /// The cluster id, as etcd writes it (lowercase hex).
    pub cluster: String,
    /// This member's id, as etcd writes it.
    pub member: String,
    /// `--name`.
    pub name: String,
}

impl MemberIdentity {
    /// The meta record's bytes for this member.
    pub fn meta(&self) -> String {
        format!(
            "cluster={}\nmember={}\nname={}\n",
            self.cluster, self.member, self.name
        )
    }
}

/// A member's data directory as the world stores it.
pub trait DataDir {
    /// Where it is, for messages.
    fn describe(&self) -> String;
    /// The meta record, if the directory has one.
    fn read_meta(&self) -> std::io::Result<Option<Vec<u8>>>;
    /// Creates the directory if needed and writes the meta record atomically and durably: after
    /// a crash there is either no meta record or this one, never part of it.
    fn write_meta(&mut self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>>;
    /// The log's bytes as they would be read back at start, if the log exists.
    fn read_log(&self) -> std::io::Result<Option<Vec<u8>>>;
}

/// A data directory in memory: a meta record file and a log file, each a [`MemDisk`] (an empty
/// one is a missing file). The simulator's (its files outlive a node's lives) and the tests'.
#[derive(Clone, Debug)]
pub struct MemDataDir {
    /// Where it is, for messages.
    pub name: String,
    /// The meta record's file.
    pub meta: MemDisk,
    /// The log's file.
    pub log: MemDisk,
}

impl DataDir for MemDataDir {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn read_meta(&self) -> std::io::Result<Option<Vec<u8>>> {
        let bytes = self.meta.read_all()?;
        Ok((!bytes.is_empty()).then_some(bytes))
    }

    /// A [`MemDisk`] rewrite is atomic and durable, as the production temp file, fsync, rename
    /// and directory fsync are.
    async fn write_meta(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.meta.rewrite(bytes).await
    }

    fn read_log(&self) -> std::io::Result<Option<Vec<u8>>> {
        let bytes = self.log.read_all()?;
        Ok((!bytes.is_empty()).then_some(bytes))
    }
}

/// What `check` found wrong; its text is what `floe` prints before it exits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataDirError(pub String);

/// Checks `dir` for the member `who` (`state`: `--initial-cluster-state`, `new` or `existing`)
/// and writes its meta record on a first start. Returns how many bytes of damaged log recovery
/// will cut (0 for a clean log).
///
/// Damage before intact records (not a torn last write) is accepted only if `repairable`: other
/// members can supply what the node lost. Recovery then keeps what it can vouch for and records
/// a recovering bound, and the node neither votes nor campaigns until it has caught up past it
/// from a leader (`raft::raw_node::recovering`: protocol-aware recovery, FAST 2018). A lone
/// member has no one to repair from, and refuses.
pub async fn check<D: DataDir>(
    dir: &mut D,
    who: &MemberIdentity,
    state: &str,
    repairable: bool,
) -> Result<u64, DataDirError> {
    let meta = who.meta();
    let at = dir.describe();
    let io = |what: &str, e: std::io::Error| DataDirError(format!("cannot {what} {at}: {e}"));
    let log = dir.read_log().map_err(|e| io("read the log of", e))?;
    match dir
        .read_meta()
        .map_err(|e| io("read the meta record of", e))?
    {
        Some(found) if found == meta.as_bytes() => {}
        Some(found) => {
            return Err(DataDirError(format!(
                "data dir {at} belongs to another cluster or member:\n{}but this node is\n{meta}(check --name, --initial-cluster and --initial-cluster-token, or use a new --data-dir)",
                String::from_utf8_lossy(&found)
            )));
        }
        None if log.is_some() => {
            return Err(DataDirError(format!(
                "data dir {at} has a log but no floe.meta: not a Floe data dir"
            )));
        }
        None => {
            if state == "existing" {
                return Err(DataDirError(format!(
                    "--initial-cluster-state existing needs this member's data dir; {at} is empty (Floe cannot add members to a running cluster)"
                )));
            }
            dir.write_meta(meta.as_bytes())
                .await
                .map_err(|e| io("write the meta record of", e))?;
        }
    }
    let Some(bytes) = log else {
        return Ok(0);
    };
    let total = bytes.len();
    let (_, recovered) = Wal::open(Inspect(bytes.clone()))
        .await
        .map_err(|e| DataDirError(format!("log of {at}: {e}")))?;
    let cut_at = total - recovered.cut_bytes as usize;
    let damaged = recovered.cut_bytes > 0 && intact_record_after(&bytes, cut_at).is_some();
    if damaged && !repairable {
        return Err(DataDirError(format!(
            "log of {at} is corrupt: a bad record ({:?}) at byte {cut_at} of {total}, with intact records after it, and no other member can repair it; refusing to start rather than drop data (restore this member's data dir from a healthy copy)",
            recovered.cut_reason,
        )));
    }
    if damaged {
        tracing::warn!(
            dir = %at,
            at_byte = cut_at,
            reason = ?recovered.cut_reason,
            "the log is damaged before its tail: the node keeps what it can vouch for and will not vote until it has caught up from the leader"
        );
    } else if recovered.cut_bytes > 0 {
        tracing::warn!(
            dir = %at,
            cut_bytes = recovered.cut_bytes,
            reason = ?recovered.cut_reason,
            "the log's last write was torn; recovery cuts it"
        );
    }
    Ok(recovered.cut_bytes)
}

/// A read-only view of log bytes, to judge their damage before recovery cuts anything.
struct Inspect(Vec<u8>);

impl Disk for Inspect {
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        Ok(self.0.clone())
    }
    fn append(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn truncate(&mut self, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    async fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    async fn rewrite(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    type Staged = ();
    fn stage<T: Send + 'static, B: FnOnce() -> (Vec<u8>, T) + Send + 'static>(
        &self,
        build: B,
    ) -> impl Future<Output = std::io::Result<((), T)>> + 'static + use<T, B> {
        async move { Ok(((), build().1)) }
    }
    async fn install_staged(&mut self, (): (), _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::now;
    use crate::raft::{Entry, EntryKind, HardState, Index, NodeId, Term};

    fn who(member: &str) -> MemberIdentity {
        MemberIdentity {
            cluster: "c1".into(),
            member: member.into(),
            name: format!("node-{member}"),
        }
    }

    fn empty() -> MemDataDir {
        MemDataDir {
            name: "test dir".into(),
            meta: MemDisk::new(),
            log: MemDisk::new(),
        }
    }

    /// A log of `n` synced one-entry batches.
    fn write_log(disk: &MemDisk, n: u64) {
        let (mut wal, _) = now(Wal::open(disk.clone())).expect("MemDisk never fails");
        for i in 1..=n {
            let entry = Entry {
                term: Term(1),
                index: Index(i),
                kind: EntryKind::Command(vec![b'x'; 40].into()),
            };
            let hs = HardState {
                term: Term(1),
                voted_for: Some(NodeId(1)),
                commit: Index(i),
            };
            wal.append(Some(&hs), &[entry]).expect("valid batch");
            now(wal.sync()).expect("sync");
        }
    }

    #[test]
    fn a_first_start_writes_the_meta_record_and_a_restart_accepts_it() {
        let mut dir = empty();
        assert_eq!(now(check(&mut dir, &who("a"), "new", false)), Ok(0));
        assert_eq!(
            dir.read_meta().expect("read"),
            Some(who("a").meta().into_bytes())
        );
        write_log(&dir.log, 3);
        assert_eq!(now(check(&mut dir, &who("a"), "new", false)), Ok(0));
        assert_eq!(now(check(&mut dir, &who("a"), "existing", false)), Ok(0));
    }

    #[test]
    fn another_members_dir_is_refused() {
        let mut dir = empty();
        now(check(&mut dir, &who("a"), "new", false)).expect("first start");
        let err = now(check(&mut dir, &who("b"), "new", false)).expect_err("not b's");
        assert!(
            err.0.contains("belongs to another cluster or member"),
            "{err}"
        );
    }

    #[test]
    fn a_log_without_meta_and_an_empty_existing_dir_are_refused() {
        let mut dir = empty();
        let err = now(check(&mut dir, &who("a"), "existing", false)).expect_err("empty");
        assert!(err.0.contains("is empty"), "{err}");
        assert_eq!(dir.read_meta().expect("read"), None, "nothing written");
        write_log(&dir.log, 1);
        let err = now(check(&mut dir, &who("a"), "new", false)).expect_err("no meta");
        assert!(err.0.contains("has a log but no floe.meta"), "{err}");
    }

    #[test]
    fn a_torn_tail_is_accepted_and_damage_before_intact_records_refused() {
        let mut dir = empty();
        now(check(&mut dir, &who("a"), "new", false)).expect("first start");
        write_log(&dir.log, 4);
        // A torn last write: the last record's final byte flipped.
        let torn = MemDataDir {
            name: "torn".into(),
            meta: dir.meta.clone(),
            log: MemDisk::with_durable(dir.log.durable_bytes()),
        };
        torn.log.corrupt_byte(0, 0xff);
        let mut torn = torn;
        let cut = now(check(&mut torn, &who("a"), "new", false)).expect("a torn tail is cut");
        assert!(cut > 0, "the torn record is cut");
        // The same damage in the middle of the log, with intact records after it.
        let middle = dir.log.durable_len() / 2;
        dir.log.corrupt_byte(middle, 0xff);
        let err = now(check(&mut dir, &who("a"), "new", false)).expect_err("corrupt");
        assert!(err.0.contains("is corrupt"), "{err}");
        assert!(err.0.contains("intact records after it"), "{err}");
        // With members to repair from, the node starts and recovers instead.
        let cut = now(check(&mut dir, &who("a"), "new", true)).expect("repairable");
        assert!(
            cut > 0,
            "the damaged part is cut and recorded as a recovering bound"
        );
    }
}
