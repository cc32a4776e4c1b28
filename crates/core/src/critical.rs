//! Stretches of work that must not be cut short, such as the renames of a restore's swap:
//! between them the target is neither the old nor the new one. Binaries that handle
//! interrupts ask [`in_progress`] and let such a stretch finish before they exit.
//!
//! ```
//! use lifeboat_core::critical::{CriticalSection, in_progress};
//! {
//!     let _swap = CriticalSection::enter();
//!     assert!(in_progress());
//! }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// Marks a critical stretch of this process for as long as it lives.
#[derive(Debug)]
#[must_use = "the stretch ends when this guard is dropped"]
pub struct CriticalSection(());

impl CriticalSection {
    /// Starts a critical stretch; it ends when the guard drops.
    pub fn enter() -> Self {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        CriticalSection(())
    }
}

impl Drop for CriticalSection {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether any critical stretch is running in this process.
pub fn in_progress() -> bool {
    ACTIVE.load(Ordering::SeqCst) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_stretches_end_with_the_last_guard() {
        let outer = CriticalSection::enter();
        let inner = CriticalSection::enter();
        drop(outer);
        assert!(in_progress());
        drop(inner);
        // Other tests of this crate take no guards, so none is left.
        assert!(!in_progress());
    }
}
