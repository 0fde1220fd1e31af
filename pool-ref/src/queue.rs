//! The sending side of the shared task queue: submitting threads send task frames
//! themselves while they can, and hand them to the feeder thread when they cannot.
//!
//! Submitting never blocks and keeps submission order. A frame is sent directly, without
//! blocking, from the submitting thread, which saves a thread hop per task; but only while
//! the feeder has nothing queued (or it would overtake those frames). When the socket is
//! full, that frame and all after it go to the feeder thread, which sends them in order,
//! blocking as needed, several per system call. The feeder also fails, in order, the chunks
//! whose arguments could not be encoded, as CPython's task handler does: their error
//! callbacks run on that thread, never on the submitting one.

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

/// What a submission asks for, in order.
pub(crate) enum Feed {
    /// Send this frame to the workers.
    Frame(Vec<u8>),
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
        for feed in feeds {
            if self.queued.load(Ordering::Acquire) == 0
                && let Feed::Frame(frame) = &feed
                && self.try_send(frame)
            {
                continue;
            }
            self.queued.fetch_add(1, Ordering::AcqRel);
            // The feeder only stops once the socket is shut down: the frame is moot then.
            let _ = feeder.send(feed);
        }
        true
    }

    /// Sends `frame` now if the socket has room.
    fn try_send(&self, frame: &[u8]) -> bool {
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        loop {
            match nix::sys::socket::send(self.socket.as_raw_fd(), frame, flags) {
                Ok(_) => return true,
                Err(Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
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
        let mut frames: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
        let mut headers = MultiHeaders::<()>::preallocate(BATCH, None);
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            while let Some(feed) = next.take() {
                match feed {
                    Feed::Frame(frame) => frames.push(frame),
                    Feed::Fail { job, index, error } => {
                        if !self.send_batch(&mut headers, &mut frames) {
                            return;
                        }
                        fail(job, index, error);
                        self.queued.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                if frames.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !self.send_batch(&mut headers, &mut frames) {
                return;
            }
        }
    }

    /// Sends all of `frames` (blocking while the socket is full), and empties it. False if
    /// the socket was shut down.
    fn send_batch(&self, headers: &mut MultiHeaders<()>, frames: &mut Vec<Vec<u8>>) -> bool {
        let mut sent = 0;
        while sent < frames.len() {
            let slices: Vec<[IoSlice<'_>; 1]> =
                frames[sent..].iter().map(|f| [IoSlice::new(f)]).collect();
            let addresses = vec![None; slices.len()];
            match sendmmsg(
                self.socket.as_raw_fd(),
                headers,
                &slices,
                addresses,
                [],
                MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(results) => {
                    let n = results.count();
                    sent += n;
                    // Only now may a submitter send behind these frames.
                    self.queued.fetch_sub(n, Ordering::AcqRel);
                }
                Err(Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
        frames.clear();
        true
    }
}
