//! Locking that survives a panic: the one way every pool-ref module takes a mutex.
//!
//! A callback or task body that panics while some thread holds a pool lock poisons it; the
//! pool's state stays consistent (every critical section is short and finishes its update
//! before it can panic), so the pool goes on rather than turning one panic into a panic of
//! every later call.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks `m`, whether or not a thread panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `cv` while `condition` holds, whether or not a thread panicked while holding
/// the lock.
pub(crate) fn wait_while<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    condition: impl FnMut(&mut T) -> bool,
) -> MutexGuard<'a, T> {
    cv.wait_while(guard, condition)
        .unwrap_or_else(|e| e.into_inner())
}
