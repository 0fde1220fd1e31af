//! The sending side of the shared task queue: submitting threads send task frames
//! themselves while they can, and hand the rest to the feeder thread.
//!
//! Submitting never blocks and keeps submission order. Frames are sent directly, without
//! blocking, from the submitting thread, which saves a thread hop per task; but only while
//! the feeder has nothing queued (or they would overtake what it holds). When the socket is
//! full, the frames not sent yet, and everything submitted after them, go to the feeder
//! thread, which sends them in order, blocking as needed. The feeder also fails, in order,
//! the chunks whose arguments could not be encoded, as CPython's task handler does: their
//! error callbacks run on that thread, never on the submitting one.
//!
//! A submission's frames lie back to back in one buffer ([`Frames`]) and are sent up to
//! [`BATCH`] per `sendmmsg`: a `map` of many small tasks costs neither an allocation nor a
//! system call per task on this side.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, Shutdown, sendmmsg, shutdown};

use crate::error::PoolError;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Task frames stored back to back, and how many of them were sent.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    bytes: Vec<u8>,
    /// Where each frame ends in `bytes`.
    ends: Vec<usize>,
    sent: usize,
}

impl Frames {
    /// Room for `frames` frames of `bytes` bytes in all, to start with.
    pub(crate) fn with_capacity(frames: usize, bytes: usize) -> Frames {
        Frames {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(frames),
            sent: 0,
        }
    }

    /// Appends the frame `write` writes to the buffer it is given; when `write` fails, the
    /// bytes it wrote are dropped and there is no frame.
    pub(crate) fn push<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => {
                self.ends.push(self.bytes.len());
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    fn unsent(&self) -> usize {
        self.ends.len() - self.sent
    }

    fn frame(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// What a submission asks for, in order.
pub(crate) enum Feed {
    /// Send these frames to the workers.
    Frames(Frames),
    /// Fail chunk `index` of `job`: its arguments could not be encoded. (CPython's task
    /// handler fails the job with the pickling error, and goes on with the next task.)
    Fail {
        job: u64,
        index: u32,
        error: PoolError,
    },
}

/// Frames sent per `sendmmsg` at most.
const BATCH: usize = 64;

pub(crate) struct TaskQueue {
    /// The parent's end of the shared task socket.
    socket: OwnedFd,
    /// To the feeder thread; `None` once the pool shut down. Held while submitting, so
    /// that submissions do not interleave.
    feeder: Mutex<Option<Sender<Feed>>>,
    /// Feeds handed to the feeder and not yet done. Only at zero may a submitter send
    /// directly: everything submitted before has been sent by then.
    queued: AtomicUsize,
}

impl TaskQueue {
    /// The queue over `socket`, and what the feeder thread ([`TaskQueue::feed`]) receives.
    pub(crate) fn new(socket: OwnedFd) -> (TaskQueue, Receiver<Feed>) {
        let (tx, rx) = channel();
        let queue = TaskQueue {
            socket,
            feeder: Mutex::new(Some(tx)),
            queued: AtomicUsize::new(0),
        };
        (queue, rx)
    }

    /// Submits `feeds` in order, after everything submitted before; never blocks on the
    /// socket. False if the queue is closed.
    pub(crate) fn submit(&self, feeds: impl IntoIterator<Item = Feed>) -> bool {
        let feeder = lock(&self.feeder);
        let Some(feeder) = feeder.as_ref() else {
            return false;
        };
        for mut feed in feeds {
            if self.queued.load(Ordering::Acquire) == 0
                && let Feed::Frames(frames) = &mut feed
                && self.send(frames, MsgFlags::MSG_DONTWAIT).is_ok()
            {
                continue;
            }
            self.queued.fetch_add(1, Ordering::AcqRel);
            // The feeder only stops once the socket is shut down: the frames are moot then.
            let _ = feeder.send(feed);
        }
        true
    }

    /// Sends the unsent frames of `frames`, in batches; with `MSG_DONTWAIT`, only while the
    /// socket has room. `Err` if some are left unsent.
    fn send(&self, frames: &mut Frames, flags: MsgFlags) -> Result<(), Errno> {
        let flags = flags | MsgFlags::MSG_NOSIGNAL;
        if frames.unsent() == 1 {
            // The usual `apply`: one frame, one plain `send`.
            let frame = frames.frame(frames.sent);
            loop {
                match nix::sys::socket::send(self.socket.as_raw_fd(), frame, flags) {
                    Ok(_) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e),
                }
            }
            frames.sent += 1;
            return Ok(());
        }
        let mut headers = MultiHeaders::<()>::preallocate(BATCH.min(frames.unsent()), None);
        while frames.unsent() > 0 {
            let batch = frames.sent..frames.sent + BATCH.min(frames.unsent());
            let slices: Vec<[IoSlice<'_>; 1]> =
                batch.map(|i| [IoSlice::new(frames.frame(i))]).collect();
            let addresses = vec![None; slices.len()];
            match sendmmsg(
                self.socket.as_raw_fd(),
                &mut headers,
                &slices,
                addresses,
                [],
                flags,
            ) {
                Ok(results) => frames.sent += results.count(),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// No more submissions; the feeder thread ends once it sent what it holds.
    pub(crate) fn close(&self) {
        lock(&self.feeder).take();
    }

    /// Makes every send fail from now on, so a feeder blocked on a full socket that nobody
    /// reads any more (the workers were killed) returns.
    pub(crate) fn shut_down_socket(&self) {
        let _ = shutdown(self.socket.as_raw_fd(), Shutdown::Write);
    }

    /// The feeder thread: sends the frames it is handed and runs `fail` for the chunks that
    /// could not be encoded, all in submission order, until the queue is closed or the
    /// socket shut down.
    pub(crate) fn feed(&self, rx: Receiver<Feed>, fail: impl Fn(u64, u32, PoolError)) {
        for feed in rx {
            match feed {
                Feed::Frames(mut frames) => {
                    if self.send(&mut frames, MsgFlags::empty()).is_err() {
                        return;
                    }
                }
                Feed::Fail { job, index, error } => fail(job, index, error),
            }
            // Only now may a submitter send behind this feed.
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
