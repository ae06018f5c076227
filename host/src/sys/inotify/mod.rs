//! The file watch hub: one inotify instance that tells resources the moment a path they
//! care about may have changed (DESIGN.md §3, "Host-driven watch").
//!
//! This module owns every inotify watch the engine places on the file system. Resources do not
//! talk to inotify themselves; they [`WatchHub::subscribe`] to a path with a `Waker` and keep
//! the returned [`Subscription`] for as long as they want to hear about it.
//!
//! # Design
//!
//! * **Parent watches, filtered by name.** An inotify watch on a single file follows the inode, so
//!   it dies when the file is replaced by a rename (editors, `sed -i`, our own atomic writer). The
//!   hub therefore never watches files: it watches the *directory containing* the target,
//!   non-recursively, and routes each event by the name it carries. A directory is watched once,
//!   however many subscribers need it (10 000 files in one directory cost one watch); directory
//!   watches are reference-counted and removed with their last user.
//! * **Missing paths.** A target whose parent (or several ancestors) does not exist yet is
//!   anchored at its nearest existing ancestor directory. When a directory on the way appears
//!   (or a symbolic link, which may lead to one), the anchor moves down (repeatedly, as deep
//!   as the file system now allows); when an anchor directory disappears or is renamed away,
//!   it moves back up. After every move the subscriber is
//!   woken once more, because the file system may have changed while no watch covered it.
//! * **Recursive subscriptions** also watch the target directory and every directory below it
//!   (one non-recursive watch each, shared with other subscribers); directories created or moved
//!   in later are added, removed ones are dropped. Symbolic links inside the tree are not
//!   followed.
//! * **Routing is by target path.** Subscribers are kept in a `BTreeMap` keyed by their target
//!   (its bytes: byte order is cheaper than comparing components).
//!   An event for path `P` wakes the subscribers of exactly `P`, the subscribers of paths below
//!   `P` when `P` itself was created, removed or renamed (a contiguous range of the map), and the
//!   recursive subscribers of ancestors of `P` (one lookup per ancestor). Nothing scans all
//!   subscribers, except an inotify queue overflow, after which everyone is woken because events
//!   were lost.
//! * **Threads.** Wakers run directly on the inotify event thread (`inotify`), without
//!   debouncing (the engine coalesces). A lone event is read the moment it arrives; under a
//!   burst the thread reads the queue at most every 0.5 ms (`inotify::COALESCE`), so a cold
//!   run does not wake it once per written file. Watch placement runs on a separate control
//!   thread, so that the `stat`s and path resolution it does never hold up events. No lock is
//!   held while a waker runs, so a waker may subscribe or drop subscriptions; called from a
//!   waker, those calls do not wait for the control thread (and errors of such a `subscribe`
//!   are only logged).
//! * **Mounts.** A mount over (or under) a watched directory changes what a path means
//!   without an event; a thread watches the mount table (`/proc/self/mountinfo`) and, when
//!   mount points appear or go, the watches at and below them are placed again and their
//!   subscribers woken.
//! * **`/proc`.** inotify sees nothing in procfs. The few files there the kernel signals
//!   through `poll` (the mount table, the kernel's host and domain name: see
//!   [`crate::sys::proc_poll`]) are watched that way instead, so a subscription to one
//!   works like any other; other `/proc` files never wake.
//! * **Aliases.** Watched directories are keyed by canonical path and by device and inode, so two
//!   spellings of one directory (a symbolic link such as `/lib -> usr/lib`, a bind mount) share
//!   one inotify watch and both see its events.
//! * **Own changes.** A subscriber may give the hub an [`Echo`] for its path; the changes it
//!   makes through [`Echo::own`] (the `fs` capability's link or rename of a resource's
//!   written file into place) do not wake it, while they still wake every other subscriber
//!   of the path. Exactly as many events as own changes are dropped, so an outside change
//!   arriving at the same time still wakes it; see [`Echo`] for when nothing is counted.
//!
//! Wakes mean "look again", not "it changed": they can repeat (every `write(2)` is one event)
//! and can be spurious (an ancestor directory was created, a watch moved, events were lost).
//! Opening or reading a file does not wake: the watches do not ask for those events, so the
//! engine's own checks cost no event at all. Nor do entries named like the host's own staging
//! files (`.NAME.homeostat-` and 12 hex digits, see [`crate::sys::temp_name`]): a durable
//! write over an existing file creates, fills and renames one, and only the rename matters,
//! reported under the target's name. (A new file is written unnamed and linked into place:
//! its writes are reported under a `#INODE` name nobody subscribes to, its link as the
//! target's creation.)
//!
//! # Limits
//!
//! * A target that is itself a symbolic link is watched as a link: replacing or re-pointing the
//!   link wakes, writes to the file it points to do not (subscribe to that file as well).
//! * Symbolic links in the ancestors of a target are resolved when the watch is placed;
//!   re-pointing such a link later is not noticed.
//! * inotify does not see changes made through another mount of an overlay file system's lower
//!   layer, nor on most network file systems.
//! * Relative paths are made absolute against the current directory, and `..` is resolved
//!   lexically.
//!
//! # Files
//!
//! `hub` is the public face ([`WatchHub`], [`Subscription`]); `routes` decides which
//! subscribers an event concerns; `control` is the thread that places and moves watches;
//! `reader` is the inotify instance and its event thread; `echo` keeps a subscriber from
//! waking at its own changes; `event` and `error` are what they pass around.

mod control;
mod echo;
mod error;
mod event;
mod hub;
mod mounts;
mod reader;
mod routes;
#[cfg(test)]
mod tests;

pub use echo::Echo;
pub use error::WatchError;
pub use hub::{Request, Subscription, WatchHub};
