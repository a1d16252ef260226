//! Writing a file the router or its CLI owns without ever writing through a symlink
//! (docs/access-and-security.md#safe-file-writes): the access file (`hero_router access …`) and
//! every `--out` page of `hero_router markdown|html`.
//!
//! The bytes go to a fresh temporary file in the target's directory, created by the `tempfile`
//! crate with `O_CREAT|O_EXCL` under a random name: a name that already exists (a file, or a
//! symlink someone planted, dangling or not) is never opened, another name is drawn instead.
//! The temporary file is synced, renamed over the target, and the directory is synced, so a
//! reader sees the old file or the new one, never half of one, and the new one survives a crash.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// The mode of a file that did not exist before: what `std::fs::write` gives under the usual
/// umask 022 (the pages and the access file are meant to be readable, not secret).
const NEW_FILE_MODE: u32 = 0o644;

/// Replaces the file at `path` with `contents`, atomically and durably.
///
/// A symlink at `path` is replaced by the new regular file, not written through: the rename
/// swaps the directory entry, whatever it was, and the symlink's target is left untouched. That
/// is intended (the file that was written is the one at `path`, and nothing outside its
/// directory is ever changed). The new file keeps the mode of the regular file it replaces, else
/// gets 0644. The directory must exist. On an error the target is unchanged and the temporary
/// file is removed.
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    // `symlink_metadata`: the mode of a symlink's target is not ours to copy.
    let mode = fs::symlink_metadata(path)
        .ok()
        .filter(fs::Metadata::is_file)
        .map_or(NEW_FILE_MODE, |m| m.permissions().mode() & 0o7777);
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // Set on the open file (fchmod): the umask does not narrow it, and no path is followed.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename itself is durable once the directory is synced.
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
