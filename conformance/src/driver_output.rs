//! A driver's stdout, read by a thread of its own in bounded lines, and the alarm that ends a
//! wait for it early.
//!
//! The thread hands over one line at a time through a channel of one slot, so the runner holds
//! at most three lines of [`MAX_STDOUT_LINE`] bytes (one read, one queued, one being judged)
//! whatever the driver writes; a driver that writes faster than the runner reads is blocked on
//! its pipe. A line over the limit ends the reading at once. The [`Alarm`] lets the coordinator
//! end a wait for the driver's answer as soon as the driver goes over one of the coordinator's
//! limits, instead of at the liveness guard.

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crate::bounded_read::{Capped, read_line_capped};
use crate::protocol::MAX_STDOUT_LINE;

/// What the reading thread passes on.
#[derive(Debug)]
enum Item {
    Line(String),
    TooLong,
    /// End of file, a read error, or a line that is not UTF-8: nothing more will come.
    Closed,
    /// Sent by [`Alarm::raise`] so that a waiting [`DriverOutput::next`] looks at the alarm.
    Wake,
}

/// What [`DriverOutput::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Line(String),
    /// A line longer than [`MAX_STDOUT_LINE`]; nothing more is read.
    TooLong,
    /// Stdout closed (or became unreadable).
    Closed,
    /// The alarm was raised, with its reason.
    Alarm(String),
    /// The deadline passed.
    Timeout,
}

/// The reading end of a driver's stdout.
#[derive(Debug)]
pub struct DriverOutput {
    items: Receiver<Item>,
    alarm: Alarm,
    /// Set once the reading thread passed its last item (the alarm's sender keeps the channel
    /// connected after the thread is gone).
    ended: AtomicBool,
}

impl DriverOutput {
    /// Starts the thread that reads `stdout` until end of file, a read error or an overlong
    /// line.
    pub fn spawn(stdout: impl Read + Send + 'static) -> DriverOutput {
        let (tx, items) = sync_channel(1);
        let alarm = Alarm {
            why: Arc::new(Mutex::new(None)),
            wake: tx.clone(),
        };
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let item = match read_line_capped(&mut reader, MAX_STDOUT_LINE) {
                    Ok(Capped::Line(bytes)) => match String::from_utf8(bytes) {
                        Ok(line) => Item::Line(line),
                        Err(_) => Item::Closed,
                    },
                    Ok(Capped::TooLong) => Item::TooLong,
                    Ok(Capped::Eof) | Err(_) => Item::Closed,
                };
                let last = !matches!(item, Item::Line(_));
                if tx.send(item).is_err() || last {
                    return;
                }
            }
        });
        DriverOutput {
            items,
            alarm,
            ended: AtomicBool::new(false),
        }
    }

    /// The alarm that interrupts [`DriverOutput::next`].
    pub fn alarm(&self) -> Alarm {
        self.alarm.clone()
    }

    /// The next line, waiting until `deadline` at most; a raised alarm comes first.
    pub fn next(&self, deadline: Instant) -> Next {
        loop {
            if let Some(why) = self.alarm.take() {
                return Next::Alarm(why);
            }
            if self.ended.load(Ordering::SeqCst) {
                return Next::Closed;
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            return match self.items.recv_timeout(wait) {
                Ok(Item::Line(line)) => Next::Line(line),
                Ok(Item::TooLong) => {
                    self.ended.store(true, Ordering::SeqCst);
                    Next::TooLong
                }
                Ok(Item::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    self.ended.store(true, Ordering::SeqCst);
                    Next::Closed
                }
                Ok(Item::Wake) => continue,
                Err(RecvTimeoutError::Timeout) => Next::Timeout,
            };
        }
    }
}

/// Raised by the coordinator when a driver goes over one of its limits; the runner then
/// ends the cell with that reason at once. The first reason raised is kept.
#[derive(Debug, Clone)]
pub struct Alarm {
    why: Arc<Mutex<Option<String>>>,
    wake: SyncSender<Item>,
}

impl Alarm {
    /// Raises the alarm (kept until taken or cleared) and wakes a waiting reader.
    pub fn raise(&self, why: String) {
        let mut slot = self.why.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(why);
        // A full slot holds an item that wakes the reader anyway.
        let _ = self.wake.try_send(Item::Wake);
    }

    /// The reason, if the alarm was raised since it was last taken or cleared.
    pub fn take(&self) -> Option<String> {
        self.why.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Forgets an alarm raised for an earlier case.
    pub fn clear(&self) {
        self.take();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[test]
    fn lines_then_closed() {
        let out = DriverOutput::spawn(&b"a\nb\n"[..]);
        assert_eq!(out.next(soon()), Next::Line("a".into()));
        assert_eq!(out.next(soon()), Next::Line("b".into()));
        assert_eq!(out.next(soon()), Next::Closed);
    }

    #[test]
    fn an_overlong_line_ends_the_reading() {
        let long = vec![b'x'; MAX_STDOUT_LINE + 1];
        let out = DriverOutput::spawn(std::io::Cursor::new(long));
        assert_eq!(out.next(soon()), Next::TooLong);
        assert_eq!(out.next(soon()), Next::Closed);
    }

    #[test]
    fn invalid_utf8_closes_the_output() {
        let out = DriverOutput::spawn(&b"\xff\xfe\n"[..]);
        assert_eq!(out.next(soon()), Next::Closed);
    }

    #[test]
    fn an_alarm_ends_a_wait_and_a_cleared_one_does_not() {
        let (reader, _writer) = os_pipe::pipe().unwrap();
        let out = DriverOutput::spawn(reader);
        let alarm = out.alarm();
        alarm.raise("stale".into());
        alarm.clear();
        let raiser = thread::spawn(move || alarm.raise("too many connections".into()));
        assert_eq!(out.next(soon()), Next::Alarm("too many connections".into()));
        raiser.join().unwrap();
        // The stale wake-up left in the channel is not an alarm.
        let shortly = Instant::now() + Duration::from_millis(50);
        assert_eq!(out.next(shortly), Next::Timeout);
    }
}
