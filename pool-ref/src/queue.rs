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
//!
//! A frame whose payload is attached (see [`crate::wire`]) is sent on its own, by whoever
//! sends it, with the memory file of its payload: written when the arguments were encoded
//! if they hold a large byte string (straight from the caller's value), otherwise made from
//! the frame's buffer just before it is sent. The pool keeps its descriptor of a few files
//! until the chunk's outcome shows the worker read them, and then writes such a file again
//! for the next large payload ([`Files`]): rewriting pages costs less than making new ones.
//! Where the kernel refuses more descriptors for now (a per-user limit on those in flight,
//! or the process's own) the feeder retries a little later; a payload that cannot be
//! written at all (out of memory) fails its chunk, as an argument that does not serialize
//! does.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, Shutdown, sendmmsg, sendmsg, shutdown,
};

use crate::error::PoolError;
use crate::lock::lock;
use crate::memfile::payload_file;
use crate::wire::{Attachment, TaskFrame, decode_task};

/// Task frames stored back to back, and how many of them were sent.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    bytes: Vec<u8>,
    /// Where each frame ends in `bytes`.
    ends: Vec<usize>,
    /// The frames whose payload is attached, in order.
    attached: Vec<Attached>,
    /// How many of `attached` were sent.
    attached_sent: usize,
    sent: usize,
}

/// A frame whose payload goes in a file: the message is the frame's bytes before `payload`,
/// and the payload what follows (nothing when the file was made with the frame).
#[derive(Debug)]
struct Attached {
    frame: usize,
    /// Where the payload starts in `bytes`.
    payload: usize,
    /// The file, once made: with the frame, or by a send that then found the socket full.
    file: Option<OwnedFd>,
}

impl Frames {
    /// Room for `frames` frames of `bytes` bytes in all, to start with.
    pub(crate) fn with_capacity(frames: usize, bytes: usize) -> Frames {
        Frames {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(frames),
            ..Frames::default()
        }
    }

    /// Appends the frame `write` writes to the buffer it is given, which says where its
    /// payload went (see [`crate::wire::encode_task`]); when `write` fails, the bytes it
    /// wrote are dropped and there is no frame.
    pub(crate) fn push<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<Attachment, E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(attachment) => {
                let frame = self.ends.len();
                let end = self.bytes.len();
                let attached = match attachment {
                    Attachment::Inline => None,
                    Attachment::Buffer(payload) => Some((payload, None)),
                    Attachment::File(file) => Some((end, Some(file))),
                };
                if let Some((payload, file)) = attached {
                    self.attached.push(Attached {
                        frame,
                        payload,
                        file,
                    });
                }
                self.ends.push(end);
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

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    fn frame(&self, i: usize) -> &[u8] {
        &self.bytes[self.start(i)..self.ends[i]]
    }

    /// The next frame to send whose payload is attached, if any.
    fn next_attached(&self) -> Option<usize> {
        self.attached.get(self.attached_sent).map(|a| a.frame)
    }
}

/// Why frames were left unsent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unsent {
    /// The socket is full (only when not blocking), or it was shut down, or some other
    /// error of the socket: `errno`.
    Socket(Errno),
    /// The payload of the next frame could not be put in a file, or the kernel refused to
    /// pass one more: `errno`.
    Attachment(Errno),
}

impl Unsent {
    /// Worth trying again a little later: a limit on descriptors, not a lack of memory.
    fn transient(self) -> bool {
        matches!(
            self,
            Unsent::Attachment(Errno::EMFILE | Errno::ENFILE | Errno::ETOOMANYREFS)
                | Unsent::Socket(Errno::ETOOMANYREFS)
        )
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
    /// The socket was shut down: the feeder stops trying.
    shut: AtomicBool,
    /// The memory files of attached payloads.
    pub(crate) files: Files,
}

/// The memory files of attached payloads: those lent to workers with their frames, by
/// (job, chunk), until the chunk's outcome shows the file was read; and one given back, to
/// be written again for the next large payload (rewriting a file's pages costs less than
/// making new ones and freeing them).
#[derive(Debug, Default)]
pub(crate) struct Files {
    lent: Mutex<HashMap<(u64, u32), OwnedFd>>,
    /// How many are lent: read without the lock, on every delivery.
    lending: AtomicUsize,
    spare: Mutex<Option<OwnedFd>>,
}

impl Files {
    /// Keeps `file` until chunk `index` of `job` has its outcome; unless [`LENT_MAX`] are
    /// kept already (only one is kept beyond that, and descriptors are the program's to
    /// use): then it is closed.
    fn lend(&self, job: u64, index: u32, file: OwnedFd) {
        if self.lending.load(Ordering::Acquire) < LENT_MAX {
            lock(&self.lent).insert((job, index), file);
            self.lending.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Chunk `index` of `job` has its outcome: its worker read its file, if it had one
    /// (or died).
    pub(crate) fn returned(&self, job: u64, index: u32) {
        if self.lending.load(Ordering::Acquire) == 0 {
            return;
        }
        let file = lock(&self.lent).remove(&(job, index));
        if let Some(file) = file {
            self.lending.fetch_sub(1, Ordering::AcqRel);
            *lock(&self.spare) = Some(file);
        }
    }

    /// The file given back last, if any, for the caller to write.
    pub(crate) fn spare(&self) -> Option<OwnedFd> {
        lock(&self.spare).take()
    }

    /// A file is kept for the next payload.
    pub(crate) fn has_spare(&self) -> bool {
        lock(&self.spare).is_some()
    }
}

impl TaskQueue {
    /// The queue over `socket`, and what the feeder thread ([`TaskQueue::feed`]) receives.
    pub(crate) fn new(socket: OwnedFd) -> (TaskQueue, Receiver<Feed>) {
        let (tx, rx) = channel();
        let queue = TaskQueue {
            socket,
            feeder: Mutex::new(Some(tx)),
            queued: AtomicUsize::new(0),
            shut: AtomicBool::new(false),
            files: Files::default(),
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

    /// Sends the unsent frames of `frames`, in batches, and each frame with an attached
    /// payload on its own; with `MSG_DONTWAIT`, only while the socket has room. `Err` if
    /// some are left unsent.
    fn send(&self, frames: &mut Frames, flags: MsgFlags) -> Result<(), Unsent> {
        let flags = flags | MsgFlags::MSG_NOSIGNAL;
        while frames.unsent() > 0 {
            let next = frames.next_attached();
            if next == Some(frames.sent) {
                self.send_attached(frames, flags)?;
            } else {
                let upto = next.unwrap_or(frames.len());
                self.send_inline(frames, upto, flags)
                    .map_err(Unsent::Socket)?;
            }
        }
        Ok(())
    }

    /// Sends the frames before frame `upto`, whose payloads are all inline.
    fn send_inline(&self, frames: &mut Frames, upto: usize, flags: MsgFlags) -> Result<(), Errno> {
        if upto - frames.sent == 1 {
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
        let mut headers = MultiHeaders::<()>::preallocate(BATCH.min(upto - frames.sent), None);
        while frames.sent < upto {
            let batch = frames.sent..frames.sent + BATCH.min(upto - frames.sent);
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

    /// Sends the next frame, whose payload is attached: the message, with the file of its
    /// payload (made now, unless an earlier attempt made it).
    fn send_attached(&self, frames: &mut Frames, flags: MsgFlags) -> Result<(), Unsent> {
        let i = frames.sent;
        let start = frames.start(i);
        let end = frames.ends[i];
        let a = &mut frames.attached[frames.attached_sent];
        let file = match a.file.take() {
            Some(file) => file,
            None => payload_file(&frames.bytes[a.payload..end], self.files.spare())
                .map_err(Unsent::Attachment)?,
        };
        let message = [IoSlice::new(&frames.bytes[start..a.payload])];
        let fds = [file.as_fd().as_raw_fd()];
        let rights = [ControlMessage::ScmRights(&fds)];
        loop {
            match sendmsg::<()>(self.socket.as_raw_fd(), &message, &rights, flags, None) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    a.file = Some(file);
                    return Err(Unsent::Socket(e));
                }
            }
        }
        // The receiver has its own descriptor now; this one is kept until the chunk's
        // outcome shows the file was read, to be written again for another payload.
        if let Some(TaskFrame::Task { head, .. }) = decode_task(&frames.bytes[start..a.payload]) {
            self.files.lend(head.job, head.index, file);
        }
        frames.attached_sent += 1;
        frames.sent += 1;
        Ok(())
    }

    /// No more submissions; the feeder thread ends once it sent what it holds.
    pub(crate) fn close(&self) {
        lock(&self.feeder).take();
    }

    /// Makes every send fail from now on, so a feeder blocked on a full socket that nobody
    /// reads any more (the workers were killed) returns.
    pub(crate) fn shut_down_socket(&self) {
        self.shut.store(true, Ordering::Release);
        let _ = shutdown(self.socket.as_raw_fd(), Shutdown::Write);
    }

    /// The feeder thread: sends the frames it is handed and runs `fail` for the chunks that
    /// could not be encoded, or whose attached payload could not be sent, all in submission
    /// order, until the queue is closed or the socket shut down.
    pub(crate) fn feed(&self, rx: Receiver<Feed>, fail: impl Fn(u64, u32, PoolError)) {
        for feed in rx {
            match feed {
                Feed::Frames(mut frames) => {
                    if !self.send_all(&mut frames, &fail) {
                        return;
                    }
                }
                Feed::Fail { job, index, error } => fail(job, index, error),
            }
            // Only now may a submitter send behind this feed.
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Sends all of `frames`, blocking as needed; false once the socket is shut down.
    fn send_all(&self, frames: &mut Frames, fail: &impl Fn(u64, u32, PoolError)) -> bool {
        loop {
            let unsent = match self.send(frames, MsgFlags::empty()) {
                Ok(()) => return true,
                Err(unsent) => unsent,
            };
            if self.shut.load(Ordering::Acquire) {
                return false;
            }
            match unsent {
                // Descriptors in flight are taken as workers take their tasks.
                _ if unsent.transient() => std::thread::sleep(RETRY),
                Unsent::Attachment(errno) => {
                    let i = frames.sent;
                    let size = frames.ends[i] - frames.attached[frames.attached_sent].payload;
                    if let Some(TaskFrame::Task { head, .. }) =
                        decode_task(&frames.bytes[frames.start(i)..frames.ends[i]])
                    {
                        let why = format!("cannot pass arguments of {size} bytes: {errno}");
                        fail(head.job, head.index, PoolError::Serialization(why));
                    }
                    frames.attached_sent += 1;
                    frames.sent += 1;
                }
                Unsent::Socket(_) => return false,
            }
        }
    }
}

/// Memory files kept for a rewrite, at most.
const LENT_MAX: usize = 4;

/// How long the feeder waits before trying again to pass an attached payload the kernel
/// refused for now (a poll interval for back-pressure; no result depends on it).
const RETRY: Duration = Duration::from_millis(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Payload;
    use crate::wire::{INLINE_PAYLOAD, MAX_MESSAGE, TaskHead, encode_task};
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    use std::mem::MaybeUninit;
    use std::os::unix::fs::FileExt;

    fn push(frames: &mut Frames, index: u32, size: usize) {
        let head = TaskHead {
            job: 1,
            index,
            listed: false,
            more: false,
            attached: false,
            name: "t",
        };
        frames
            .push(|out| {
                encode_task(out, &head, |out| {
                    out.extend((0..size).map(|i| (i % 253) as u8));
                    Ok::<_, ()>(Payload::Buffer)
                })
            })
            .unwrap();
    }

    /// Frames of every size go out in order, small ones in the message, large ones with a
    /// file that holds exactly their payload.
    #[test]
    fn frames_go_in_order_with_large_payloads_attached() {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (queue, _rx) = TaskQueue::new(ours);
        let sizes = [
            3,
            INLINE_PAYLOAD,
            INLINE_PAYLOAD + 1,
            5,
            7,
            1 << 20,
            1 << 20,
            0,
        ];
        let mut frames = Frames::default();
        for (i, &size) in sizes.iter().enumerate() {
            push(&mut frames, i as u32, size);
        }
        assert_eq!(frames.attached.len(), 3);
        queue.send(&mut frames, MsgFlags::MSG_DONTWAIT).unwrap();
        assert_eq!(frames.unsent(), 0);
        let mut buf = vec![0u8; MAX_MESSAGE];
        for (i, &size) in sizes.iter().enumerate() {
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = recvmsg(
                &theirs,
                &mut [std::io::IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::DONTWAIT,
            )
            .unwrap();
            let file = control.drain().find_map(|m| match m {
                RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
                _ => None,
            });
            let Some(TaskFrame::Task { head, payload }) = decode_task(&buf[..got.bytes]) else {
                panic!("frame {i} is no task");
            };
            assert_eq!(head.index, i as u32);
            let payload = if head.attached {
                let file = std::fs::File::from(file.expect("a file"));
                let mut content = vec![0; file.metadata().unwrap().len() as usize];
                file.read_exact_at(&mut content, 0).unwrap();
                content
            } else {
                assert!(file.is_none());
                payload.to_vec()
            };
            assert_eq!(head.attached, size > INLINE_PAYLOAD, "frame {i}");
            assert_eq!(payload.len(), size, "frame {i}");
            assert!(
                payload
                    .iter()
                    .enumerate()
                    .all(|(j, &b)| b == (j % 253) as u8)
            );
        }
    }
}
