//! Memory files for task payloads too large for a message (see `wire.rs`), and writing
//! all of a buffer to a descriptor.
//!
//! A payload above the inline limit travels as an anonymous memory file (`memfd`) whose
//! descriptor goes with its frame; files are rewritten for the next large payload rather
//! than made anew, so each is rewound and cut to its new length.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::unistd::{Whence, ftruncate, lseek};

/// Writes all of `bytes` to `fd` (blocking as needed).
pub(crate) fn write_fd(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A memory file for a payload: `spare` (a file used before, whose reader is done with it)
/// rewound, or a new one.
pub(crate) fn memory_file(spare: Option<OwnedFd>) -> Result<OwnedFd, Errno> {
    match spare {
        // The offset is shared with the descriptor its reader had, who left it at the end.
        Some(file) => lseek(&file, 0, Whence::SeekSet).map(|_| file),
        None => memfd_create("pool-ref-payload", MFdFlags::MFD_CLOEXEC),
    }
}

/// Ends a memory file written from its start at `len` bytes: what a former content left
/// beyond is cut off.
pub(crate) fn end_file(file: &OwnedFd, len: u64) -> Result<(), Errno> {
    ftruncate(file, i64::try_from(len).map_err(|_| Errno::EFBIG)?)
}

/// A memory file holding `payload` (see `wire.rs`): `spare`, if given, rewritten.
pub(crate) fn payload_file(payload: &[u8], spare: Option<OwnedFd>) -> Result<OwnedFd, Errno> {
    let fd = memory_file(spare)?;
    write_fd(fd.as_fd(), payload)
        .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    end_file(&fd, payload.len() as u64)?;
    Ok(fd)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::FileExt;

    /// The content of a file.
    pub(crate) fn content(file: &OwnedFd) -> Vec<u8> {
        let file = std::fs::File::from(file.try_clone().unwrap());
        let mut bytes = vec![0; file.metadata().unwrap().len() as usize];
        file.read_exact_at(&mut bytes, 0).unwrap();
        bytes
    }
}
