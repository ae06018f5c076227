//! How the OS services tell their users that something may have changed.

use std::sync::Arc;

/// Called whenever something a resource watches may have changed (a path, the kernel log,
/// a server's state).
///
/// Wakers run on the services' own threads (mostly the inotify event thread) and must
/// return quickly and never block: send on a channel, notify a `tokio::sync::Notify`, set a
/// flag. A waker may call [`WatchHub::subscribe`](crate::sys::inotify::WatchHub::subscribe)
/// or drop a [`Subscription`](crate::sys::inotify::Subscription).
pub type Waker = Arc<dyn Fn() + Send + Sync>;
