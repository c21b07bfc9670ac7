//! A file that starts the disk on its data while more is still being written. The daily files
//! are synced before they count as written; asking the kernel to begin writeback every few
//! hundred KiB lets the disk work while rows are still being formatted, so the closing sync
//! waits for the tail only. A hint: where the file system ignores it, nothing changes.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// Bytes written between two writeback requests.
const STEP: u64 = 512 * 1024;
/// The unit the kernel writes.
const PAGE: u64 = 4096;

pub struct Writeback {
    file: File,
    /// Bytes written so far, and where the last request ended.
    written: u64,
    requested: u64,
}

impl Writeback {
    /// `file` positioned where writing begins (`written` bytes already before it).
    pub fn new(file: File, written: u64) -> Writeback {
        Writeback {
            file,
            written,
            requested: written / PAGE * PAGE,
        }
    }

    pub fn into_inner(self) -> File {
        self.file
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        // Whole pages only: a page still being filled, written now, would be written again
        // (twice the wear for it).
        let upto = self.written / PAGE * PAGE;
        if upto - self.requested >= STEP {
            // SAFETY: a plain system call on our own descriptor; it reads no memory of ours.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.requested as libc::off64_t,
                    (upto - self.requested) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.requested = upto;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
