//! The file disk: one append-only file, made durable by `fdatasync`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::log::Disk;

/// One append-only file. Appends go to the OS at once; `sync` is one `fdatasync` for all of
/// them (the node loop batches many proposals into one sync: group commit).
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    path: PathBuf,
    faults: DiskFaults,
    /// Syncs that succeeded, for [`DiskFaults::sync_error_after`].
    syncs: u64,
}

/// Disk failures a test can ask of the file disk (`floe --unsafe-disk-faults`), to see the real
/// node meet a failing `fdatasync` or a full disk: both must end in a clear message and leave a
/// data directory that recovers. Never for production use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// Every sync after this many succeeded fails with EIO, as a dying disk's would.
    pub sync_error_after: Option<u64>,
    /// The log may not grow past this many bytes: a write beyond fails with ENOSPC.
    pub space_bytes: Option<u64>,
}

impl DiskFaults {
    /// Parses `sync-error-after=N` and `space=BYTES`, comma-separated (empty: no faults).
    pub fn parse(spec: &str) -> Result<DiskFaults, String> {
        let mut faults = DiskFaults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("disk fault {part:?}: want NAME=NUMBER"))?;
            let value: u64 = value
                .parse()
                .map_err(|_| format!("disk fault {part:?}: {value:?} is not a number"))?;
            match name {
                "sync-error-after" => faults.sync_error_after = Some(value),
                "space" => faults.space_bytes = Some(value),
                _ => {
                    return Err(format!(
                        "disk fault {name:?}: want sync-error-after or space"
                    ));
                }
            }
        }
        Ok(faults)
    }

    fn sync_fails(&self, syncs: u64) -> bool {
        self.sync_error_after.is_some_and(|n| syncs >= n)
    }

    /// Fails with ENOSPC if a file of `len` bytes does not fit.
    fn check_space(&self, len: u64) -> std::io::Result<()> {
        match self.space_bytes {
            Some(space) if len > space => Err(std::io::Error::from_raw_os_error(28)),
            _ => Ok(()),
        }
    }
}

impl FileDisk {
    /// Opens (or creates, with its parent directories) the file at `path`. A new file's
    /// directory entry is made durable at once.
    pub fn open(path: &Path) -> std::io::Result<FileDisk> {
        let existed = path.exists();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        if !existed && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)?.sync_all()?;
        }
        Ok(FileDisk {
            file,
            path: path.to_path_buf(),
            faults: DiskFaults::default(),
            syncs: 0,
        })
    }

    /// The same disk, failing as `faults` asks (tests only).
    pub fn with_faults(self, faults: DiskFaults) -> FileDisk {
        FileDisk { faults, ..self }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Disk for FileDisk {
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        let mut file = File::open(&self.path)?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.faults.space_bytes.is_some() {
            let len = self.file.metadata()?.len();
            self.faults.check_space(len + bytes.len() as u64)?;
        }
        self.file.write_all(bytes)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> {
        let file = self.file.try_clone();
        let fails = self.faults.sync_fails(self.syncs);
        self.syncs += 1;
        async move {
            if fails {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            let file = file?;
            // fdatasync blocks for a disk round trip: keep it off the runtime's worker.
            match tokio::task::spawn_blocking(move || file.sync_data()).await {
                Ok(result) => result,
                Err(e) => Err(std::io::Error::other(e)),
            }
        }
    }

    /// Writes `<file>.new`, syncs it, renames it over the file and syncs the directory: a
    /// crash leaves the old file or the new one.
    async fn rewrite(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.faults.check_space(bytes.len() as u64)?;
        let path = self.path.clone();
        let bytes = bytes.to_vec();
        let file = tokio::task::spawn_blocking(move || replace_file(&path, &bytes))
            .await
            .map_err(std::io::Error::other)??;
        self.file = file;
        Ok(())
    }

    /// The path of the staged file, `<file>.staged`.
    type Staged = PathBuf;

    /// Builds the bytes and writes and syncs `<file>.staged` on tokio's blocking pool, so
    /// neither the serialisation nor the write runs on the node loop's task.
    fn stage<T: Send + 'static, B: FnOnce() -> (Vec<u8>, T) + Send + 'static>(
        &self,
        build: B,
    ) -> impl std::future::Future<Output = std::io::Result<(PathBuf, T)>> + 'static + use<T, B>
    {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".staged");
        let staged = self.path.with_file_name(name);
        // Started now (the node loop runs on tokio), so the future holds only the handle.
        let staging = tokio::task::spawn_blocking(move || {
            let (bytes, value) = build();
            let mut file = File::create(&staged)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            Ok((staged, value))
        });
        async move { staging.await.map_err(std::io::Error::other)? }
    }

    /// Appends the tail to the staged file, syncs it, renames it over the file and syncs the
    /// directory: a crash leaves the old file or the new one.
    fn install_staged(
        &mut self,
        staged: PathBuf,
        tail: &[u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>> {
        let path = self.path.clone();
        let tail = tail.to_vec();
        let faults = self.faults;
        let installing = tokio::task::spawn_blocking(move || {
            {
                let mut file = OpenOptions::new().append(true).open(&staged)?;
                faults.check_space(file.metadata()?.len() + tail.len() as u64)?;
                file.write_all(&tail)?;
                file.sync_all()?;
            }
            std::fs::rename(&staged, &path)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
            OpenOptions::new().read(true).append(true).open(&path)
        });
        async move {
            self.file = installing.await.map_err(std::io::Error::other)??;
            Ok(())
        }
    }
}

/// Writes a small file atomically: `<file>.new` written and fsynced, renamed over `path`, the
/// directory fsynced. A crash leaves the old content (or no file) or the new, never a mixture;
/// `floe` writes its data dir's `floe.meta` so.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_file(path, bytes).map(drop)
}

/// The blocking part of [`FileDisk::rewrite`]; returns the new file opened for appending.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<File> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let new = path.with_file_name(name);
    {
        let mut file = File::create(&new)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&new, path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    OpenOptions::new().read(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Wal;
    use crate::raft::{Entry, EntryKind, HardState, Index, NodeId, Term};

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("floe-disk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("wal")
    }

    #[test]
    fn write_atomic_replaces_the_whole_file_and_leaves_no_temp() {
        let path = temp_path("atomic").with_file_name("floe.meta");
        write_atomic(&path, b"first").unwrap_err();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_atomic(&path, b"first version").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(!path.with_file_name("floe.meta.new").exists());
    }

    #[tokio::test]
    async fn append_truncate_sync_reopen() {
        let path = temp_path("roundtrip");
        let mut disk = FileDisk::open(&path).unwrap();
        disk.append(b"hello ").unwrap();
        disk.append(b"world").unwrap();
        disk.sync().await.unwrap();
        assert_eq!(disk.read_all().unwrap(), b"hello world");
        disk.truncate(5).unwrap();
        disk.append(b"!").unwrap();
        disk.sync().await.unwrap();
        drop(disk);
        let mut disk = FileDisk::open(&path).unwrap();
        assert_eq!(disk.read_all().unwrap(), b"hello!");
        disk.rewrite(b"new").await.unwrap();
        disk.append(b" tail").unwrap();
        disk.sync().await.unwrap();
        drop(disk);
        let disk = FileDisk::open(&path).unwrap();
        assert_eq!(disk.read_all().unwrap(), b"new tail");
        assert!(!path.with_file_name("wal.new").exists());
    }

    #[tokio::test]
    async fn wal_recovers_after_reopen() {
        let path = temp_path("wal");
        let (mut wal, recovered) = Wal::open(FileDisk::open(&path).unwrap()).await.unwrap();
        assert!(recovered.entries.is_empty());
        let hard = HardState {
            term: Term(3),
            voted_for: Some(NodeId(2)),
            commit: Index(1),
        };
        let entries = vec![Entry {
            index: Index(1),
            term: Term(3),
            kind: EntryKind::Command(b"x"[..].into()),
        }];
        wal.append(Some(&hard), &entries).unwrap();
        wal.sync().await.unwrap();
        drop(wal);
        let (_, recovered) = Wal::open(FileDisk::open(&path).unwrap()).await.unwrap();
        assert_eq!(recovered.hard_state, hard);
        assert_eq!(recovered.entries, entries);
    }
}

/// A member's data directory on the file system: `floe.meta` and the log file `wal`.
#[derive(Clone, Debug)]
pub struct FileDataDir {
    dir: PathBuf,
}

impl FileDataDir {
    /// The data directory at `dir` (it may not exist yet).
    pub fn new(dir: &Path) -> FileDataDir {
        FileDataDir {
            dir: dir.to_path_buf(),
        }
    }

    /// The log file's path.
    pub fn wal_path(&self) -> PathBuf {
        self.dir.join("wal")
    }

    fn meta_path(&self) -> PathBuf {
        self.dir.join("floe.meta")
    }
}

impl crate::server::data_dir::DataDir for FileDataDir {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn read_meta(&self) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.meta_path()) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Temp file, fsync, rename over, directory fsync (`write_atomic`): a crash leaves the old
    /// state or the whole new record.
    async fn write_meta(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&self.meta_path(), bytes)
    }

    fn read_log(&self) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.wal_path()) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
