//! The report pipes and the control channel the result handler waits on, and the reading
//! state of each pipe: everything the handler and a leading caller share (`handler.rs`), and
//! what the pool's other threads send the handler.
//!
//! A [`Reader`] turns what a worker's pipe delivers, in pieces of any size, into whole
//! records in order; it leaves records its caller declines for later, which is how a leader
//! hands the records of other jobs to the handler.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::PoolError;
use crate::wire::{Next, Record, next_record};

/// What other threads tell the result handler.
pub(crate) enum Control {
    /// A worker started: its id, pid, and the parent's end of its report pipe.
    Worker { id: u32, pid: u32, reports: OwnedFd },
    /// A worker was reaped: how it exited.
    Exited { id: u32, how: String },
    /// Stop the thread.
    Stop,
}

/// The sending side of [`Control`] messages; each send also wakes the handler.
pub(crate) struct ControlTx {
    tx: Sender<Control>,
    wake: OwnedFd,
}

impl ControlTx {
    pub(crate) fn send(&self, message: Control) {
        let _ = self.tx.send(message);
        self.wake();
    }

    /// Wakes the handler (and makes a leading caller step down).
    pub(crate) fn wake(&self) {
        // Non-blocking: a full wake-up pipe already wakes the handler.
        let _ = nix::unistd::write(&self.wake, &[1]);
    }
}

/// The report pipes and their reading state, shared by the handler and leading callers.
pub(crate) struct Reports {
    /// Held by whoever reads the pipes.
    pub(crate) readers: Mutex<Vec<Reader>>,
    /// The wake-up pipe's reading end: readable while the handler has something to do.
    pub(crate) wake: OwnedFd,
    /// Some reader's buffer grew beyond [`KEEP`] since the handler last gave such back.
    pub(crate) hoarding: Arc<AtomicBool>,
}

/// A non-blocking, close-on-exec pipe: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), PoolError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| PoolError::Spawn(format!("pipe: {e}")))
}

/// The control channel: its sending side, the shared reports, and what the handler thread
/// receives.
pub(crate) fn control_channel() -> Result<(ControlTx, Reports, Receiver<Control>), PoolError> {
    let (tx, rx) = channel();
    let (wake_rx, wake_tx) = pipe()?;
    let control = ControlTx { tx, wake: wake_tx };
    let reports = Reports {
        readers: Mutex::new(Vec::new()),
        wake: wake_rx,
        hoarding: Arc::default(),
    };
    Ok((control, reports, rx))
}

/// Bytes read from a pipe at a time (a pipe's default capacity).
const READ_SIZE: usize = 64 * 1024;

/// The largest reading buffer always kept. One that grew beyond for a large record is kept
/// while results keep coming (the next large record is likely to need as much, and fresh
/// memory costs more than reading into it), and given back once the result handler was
/// idle for a while (`handler.rs`).
pub(crate) const KEEP: usize = 1 << 20;

/// One worker's report pipe, and what has been read from it.
pub(crate) struct Reader {
    pub(crate) id: u32,
    pub(crate) pid: u32,
    pub(crate) pipe: OwnedFd,
    /// `buf[start..filled]` was read and not yet handled (a record cut by a read, or records
    /// a leader left to the handler).
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// Bytes the record at `start` needs in all.
    need: usize,
    /// The (job, chunk) it reported starting and has not finished.
    pub(crate) inflight: Option<(u64, u32)>,
    /// Its pipe reached end of file: nothing more to read, its exit status is coming.
    pub(crate) eof: bool,
    /// Set when its buffer grows beyond [`KEEP`] ([`Reports::hoarding`]).
    hoarding: Arc<AtomicBool>,
}

pub(crate) enum Fill {
    /// Read this many bytes; true if they filled all the room there was (more may wait).
    Read(usize, bool),
    /// Nothing to read now.
    Empty,
    /// End of file.
    Ended,
}

/// What a reader does with the outcome of a task: `Ok(body)` or `Err(error body)`.
pub(crate) type Outcome<'a> = Result<&'a [u8], &'a [u8]>;

impl Reader {
    pub(crate) fn new(id: u32, pid: u32, pipe: OwnedFd, hoarding: Arc<AtomicBool>) -> Reader {
        Reader {
            id,
            pid,
            pipe,
            buf: vec![0; READ_SIZE],
            start: 0,
            filled: 0,
            need: 0,
            inflight: None,
            eof: false,
            hoarding,
        }
    }

    /// Gives back a large buffer whose records were all handled.
    pub(crate) fn release(&mut self) {
        if self.start == self.filled && self.buf.len() > KEEP {
            (self.start, self.filled) = (0, 0);
            self.buf = vec![0; READ_SIZE];
        }
    }

    /// One read from the pipe into the buffer, after the bytes not yet handled.
    pub(crate) fn fill(&mut self) -> Fill {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let room = self.need.max(self.filled + 1).max(READ_SIZE);
        if self.buf.len() < room {
            // Fresh zeroed memory instead of `resize`: not written twice (once with zeros).
            let mut bigger = vec![0; room];
            bigger[..self.filled].copy_from_slice(&self.buf[..self.filled]);
            self.buf = bigger;
            if room > KEEP {
                self.hoarding.store(true, Ordering::Relaxed);
            }
        }
        loop {
            match nix::unistd::read(&self.pipe, &mut self.buf[self.filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.filled += n;
                    return Fill::Read(n, self.filled == self.buf.len());
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Fill::Empty,
                Err(_) => break,
            }
        }
        self.eof = true;
        Fill::Ended
    }

    /// Handles the whole records read so far, in order: `started` here, results by
    /// `handle(job, index, outcome)`. When `handle` declines one (returns false), that record
    /// and those after it stay for later, and this returns false.
    pub(crate) fn decode(&mut self, mut handle: impl FnMut(u64, u32, Outcome<'_>) -> bool) -> bool {
        loop {
            let (record, len) = match next_record(&self.buf[self.start..self.filled]) {
                Next::Partial(need) => {
                    self.need = need;
                    return true;
                }
                Next::Record(record, len) => (record, len),
            };
            match record {
                Some(Record::Started { job, index }) => self.inflight = Some((job, index)),
                Some(Record::Ok { job, index, body }) => {
                    if !handle(job, index, Ok(body)) {
                        return false;
                    }
                    self.inflight = None;
                }
                Some(Record::Err { job, index, body }) => {
                    if !handle(job, index, Err(body)) {
                        return false;
                    }
                    self.inflight = None;
                }
                Some(Record::Fatal { why }) => eprintln!(
                    "pool-ref: worker {}: {}",
                    self.id,
                    String::from_utf8_lossy(why)
                ),
                None => {}
            }
            self.start += len;
        }
    }
}
