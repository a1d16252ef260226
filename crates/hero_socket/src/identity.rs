//! File identity without following symlinks.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, StatxFlags, statx};

/// What kind of file a path names, as `lstat` sees it (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A Unix-domain socket.
    Socket,
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// Anything else: FIFO, device node.
    Other,
}

/// The instance of a file a path named when it was looked at.
///
/// Two identities are equal only if they name the same inode *and* that inode was not changed
/// (ctime) in between. On ext4 an unlink followed by an immediate re-bind usually gets the same
/// inode number back, so `(dev, ino)` alone cannot tell a respawned socket from the old one; the
/// nanosecond ctime can.
///
/// It is 24 bytes: the scanner, the table, the catalog and the upstream pool each hold one or
/// two per socket, and an `i128` time made it 32 bytes aligned to 16 (48 as an `Option`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Device number (`st_dev`), as `(major << 32) | minor`.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Change time, nanoseconds since the Unix epoch (an `i64` spans the years 1677 to 2262;
    /// a time outside is clamped to the nearest end).
    pub ctime_ns: i64,
}

/// The result of [`stat_nofollow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// What the path is.
    pub kind: FileKind,
    /// Which instance it is.
    pub identity: Identity,
    /// Birth time in nanoseconds, where the filesystem records it. Unlike ctime it survives a
    /// rename, so it tells "the same inode, renamed" from "a new inode with a reused number".
    pub btime_ns: Option<i128>,
    /// Permission bits.
    pub mode: u32,
}

/// `statx(path, AT_SYMLINK_NOFOLLOW)`: never follows a symlink at the last component.
pub fn stat_nofollow(path: &Path) -> io::Result<Stat> {
    stat_at(CWD, path)
}

/// Like [`stat_nofollow`], relative to an open directory: the answer is about that directory's
/// entry even if the directory's own path has been swapped for a symlink since it was opened.
pub fn stat_at<Fd: AsFd>(dir: Fd, name: &Path) -> io::Result<Stat> {
    let stx = statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )?;
    let kind = match FileType::from_raw_mode(u32::from(stx.stx_mode)) {
        FileType::Socket => FileKind::Socket,
        FileType::RegularFile => FileKind::Regular,
        FileType::Directory => FileKind::Directory,
        FileType::Symlink => FileKind::Symlink,
        _ => FileKind::Other,
    };
    let ns = |t: rustix::fs::StatxTimestamp| {
        i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
    };
    let has_btime = StatxFlags::from_bits_retain(stx.stx_mask).contains(StatxFlags::BTIME);
    Ok(Stat {
        kind,
        identity: Identity {
            dev: (u64::from(stx.stx_dev_major) << 32) | u64::from(stx.stx_dev_minor),
            ino: stx.stx_ino,
            ctime_ns: clamp_ns(ns(stx.stx_ctime)),
        },
        btime_ns: has_btime.then(|| ns(stx.stx_btime)),
        mode: u32::from(stx.stx_mode) & 0o7777,
    })
}

/// `ns` as an `i64`, clamped to its range.
fn clamp_ns(ns: i128) -> i64 {
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

impl Stat {
    /// True if `other` is the same inode instance as `self`, even across a rename (which
    /// changes ctime). Needs birth time on both sides; without it the answer is `None`.
    pub fn same_instance(&self, other: &Stat) -> Option<bool> {
        let (a, b) = (self.btime_ns?, other.btime_ns?);
        Some(
            self.identity.dev == other.identity.dev
                && self.identity.ino == other.identity.ino
                && a == b,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_three_words() {
        assert_eq!(std::mem::size_of::<Identity>(), 24);
        assert_eq!(std::mem::size_of::<Option<Identity>>(), 32);
    }

    #[test]
    fn times_outside_an_i64_are_clamped() {
        assert_eq!(clamp_ns(0), 0);
        assert_eq!(clamp_ns(-5), -5);
        assert_eq!(clamp_ns(i128::from(i64::MAX)), i64::MAX);
        assert_eq!(clamp_ns(i128::from(i64::MAX) + 1), i64::MAX);
        assert_eq!(clamp_ns(i128::from(i64::MIN) - 1), i64::MIN);
        // A statx time of today, in range.
        let now = 1_796_601_600_i128 * 1_000_000_000 + 123;
        assert_eq!(i128::from(clamp_ns(now)), now);
    }

    #[test]
    fn kinds_are_seen_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let sock = dir.path().join("s.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();

        assert_eq!(stat_nofollow(&file).unwrap().kind, FileKind::Regular);
        assert_eq!(stat_nofollow(&link).unwrap().kind, FileKind::Symlink);
        assert_eq!(stat_nofollow(dir.path()).unwrap().kind, FileKind::Directory);
        assert_eq!(stat_nofollow(&sock).unwrap().kind, FileKind::Socket);
        let err = stat_nofollow(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn rebind_at_same_path_changes_identity() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let first = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let a = stat_nofollow(&sock).unwrap();
        drop(first);
        std::fs::remove_file(&sock).unwrap();
        let _second = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let b = stat_nofollow(&sock).unwrap();
        assert_ne!(
            a.identity, b.identity,
            "inode may be reused, ctime must differ"
        );
        assert_ne!(a.same_instance(&b), Some(true));
    }

    #[test]
    fn rename_keeps_instance_but_changes_ctime() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let a = stat_nofollow(&sock).unwrap();
        let moved = dir.path().join("moved");
        std::fs::rename(&sock, &moved).unwrap();
        let b = stat_nofollow(&moved).unwrap();
        assert_eq!(a.identity.ino, b.identity.ino);
        if a.btime_ns.is_some() {
            assert_eq!(a.same_instance(&b), Some(true));
        }
    }
}
