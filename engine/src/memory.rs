//! Where a snapshot's bytes live: a file mapping, or a copy in huge pages.
//!
//! This module holds the engine's one `unsafe` block that matters: mapping a
//! file. Its contract is the snapshot's: **a served snapshot file must never
//! be written or truncated in place.** Builders write a temporary file and
//! rename it over the old one, which leaves existing mappings of the old file
//! intact. Breaking the contract is not tolerated: a truncated file kills the
//! server with SIGBUS on the next read past the new end, and bytes rewritten
//! under the mapping give wrong answers, even for a file that
//! [`crate::Snapshot::verify_checksums`] accepted earlier (its checksums
//! vouched for bytes that are gone, and text it found to be UTF-8 is then
//! read without checking again). [`crate::Memory::HugePages`] copies the
//! file and is immune once loaded.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use memmap2::{Mmap, MmapMut};

use crate::error::{Error, Result};

/// How to hold a snapshot in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Memory {
    /// Map the file (zero-copy, shares the page cache, 4 KiB pages); pages
    /// are read from disk on first touch.
    #[default]
    Map,
    /// Map the file and read every page in before serving (Linux's
    /// `MADV_POPULATE_READ`): still zero-copy and shared, but no lookup
    /// waits for the disk on a cold page. At national scale a cold mapping
    /// costs one major fault per random lookup until the file is cached, and
    /// each fault stalls a whole per-core runtime; this costs one sequential
    /// read of the file at open instead. The pages stay evictable page cache.
    Warm,
    /// Copy the file into an anonymous region advised for 2 MiB transparent
    /// huge pages: costs a read of the file at start and private memory, and
    /// roughly halves the cost of a random lookup (fewer TLB misses).
    HugePages,
}

impl std::str::FromStr for Memory {
    type Err = String;
    fn from_str(s: &str) -> Result<Memory, String> {
        match s {
            "map" => Ok(Memory::Map),
            "warm" => Ok(Memory::Warm),
            "hugepages" => Ok(Memory::HugePages),
            _ => Err(format!(
                "{s:?} is not a memory mode (map, warm or hugepages)"
            )),
        }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Memory::Map => "map",
            Memory::Warm => "warm",
            Memory::HugePages => "hugepages",
        })
    }
}

/// The bytes of a snapshot opened from a file.
pub enum SnapshotBytes {
    /// A read-only mapping of the file.
    Mapped(Mmap),
    /// A private copy in (transparent) huge pages.
    HugePages {
        /// The region, at least as long as the file.
        region: Mmap,
        /// The file's length.
        len: usize,
    },
}

impl AsRef<[u8]> for SnapshotBytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        match self {
            SnapshotBytes::Mapped(m) => m,
            SnapshotBytes::HugePages { region, len } => &region[..*len],
        }
    }
}

mod sealed {
    /// Keeps [`super::StableBytes`] to the types listed in this module.
    pub trait Sealed {}
}

/// The engine's own byte holders: their `as_ref` returns the same bytes on
/// every call, and nothing can change those bytes while a
/// [`crate::Snapshot`] owns or immutably borrows the holder (for a mapping,
/// under the contract in this module's docs). Sealed, because the reader
/// relies on it for soundness (see [`crate::Snapshot::open_stable`]); a
/// caller's own `AsRef<[u8]>` goes through [`crate::Snapshot::open`].
pub trait StableBytes: AsRef<[u8]> + sealed::Sealed {}

impl sealed::Sealed for SnapshotBytes {}
impl StableBytes for SnapshotBytes {}
impl sealed::Sealed for Vec<u8> {}
impl StableBytes for Vec<u8> {}
impl sealed::Sealed for Box<[u8]> {}
impl StableBytes for Box<[u8]> {}
impl sealed::Sealed for std::sync::Arc<[u8]> {}
impl StableBytes for std::sync::Arc<[u8]> {}
impl sealed::Sealed for &[u8] {}
impl StableBytes for &[u8] {}

const HUGE_PAGE: usize = 2 << 20;

impl SnapshotBytes {
    /// Loads `path` as `memory` says.
    pub fn load(path: &Path, memory: Memory) -> Result<SnapshotBytes> {
        let file = File::open(path).map_err(Error::io(path))?;
        match memory {
            Memory::Map | Memory::Warm => {
                // SAFETY: the mapping is read-only and a served snapshot file
                // is never written or truncated in place (module docs): new
                // generations are renamed over it, which leaves this mapping's
                // inode untouched. That is the caller's promise, not something
                // this code can check; an in-place change breaks it (SIGBUS,
                // wrong answers).
                let map = unsafe { Mmap::map(&file) }.map_err(Error::io(path))?;
                if memory == Memory::Warm {
                    populate(&map).map_err(Error::io(path))?;
                }
                Ok(SnapshotBytes::Mapped(map))
            }
            Memory::HugePages => {
                let len = file.metadata().map_err(Error::io(path))?.len() as usize;
                let mut region = MmapMut::map_anon(len.next_multiple_of(HUGE_PAGE).max(HUGE_PAGE))
                    .map_err(Error::io(path))?;
                #[cfg(target_os = "linux")]
                region
                    .advise(memmap2::Advice::HugePage)
                    .map_err(Error::io(path))?;
                // Copy in chunks, dropping each from the page cache once
                // copied: at national scale the file and its copy do not both
                // fit in memory, and under that pressure the kernel falls
                // back to 4 KiB pages for much of the copy.
                const CHUNK: usize = 64 << 20;
                let mut at = 0;
                while at < len {
                    let n = CHUNK.min(len - at);
                    (&file)
                        .read_exact(&mut region[at..at + n])
                        .map_err(Error::io(path))?;
                    drop_from_page_cache(&file, at, n);
                    at += n;
                }
                let region = region.make_read_only().map_err(Error::io(path))?;
                Ok(SnapshotBytes::HugePages { region, len })
            }
        }
    }
}

/// Reads every page of `map` into the page cache and maps it, so that later
/// reads do not fault. The kernel reads ahead sequentially, at the disk's
/// streaming rate.
#[cfg(target_os = "linux")]
fn populate(map: &Mmap) -> std::io::Result<()> {
    match map.advise(memmap2::Advice::PopulateRead) {
        // Kernels before 5.14 lack MADV_POPULATE_READ: ask for read-ahead
        // instead (asynchronous, so the first lookups may still fault).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => map.advise(memmap2::Advice::WillNeed),
        other => other,
    }
}

#[cfg(not(target_os = "linux"))]
fn populate(_map: &Mmap) -> std::io::Result<()> {
    Ok(())
}

/// Advises the kernel that `len` bytes of `file` from `offset` are not needed
/// in the page cache any more (pages mapped elsewhere stay).
#[cfg(target_os = "linux")]
pub(crate) fn drop_from_page_cache(file: &File, offset: usize, len: usize) {
    use std::os::fd::AsRawFd;
    // SAFETY: `posix_fadvise` takes a descriptor and three integers and
    // touches no memory of ours; the descriptor is valid for the call because
    // `file` is borrowed across it. It is only advice: whatever it returns,
    // the copy is complete and correct, so the result is ignored.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn drop_from_page_cache(_file: &File, _offset: usize, _len: usize) {}
