//! Per-resource event sources on top of the OS services: a resource's watch command (every
//! line it prints is an event), its systemd units' D-Bus signals, and the supervision that
//! restarts either when it stops, per the resource's `retry` and `delay`. (Path watches and
//! the kernel log are the OS services' own subscriptions: [`crate::sys::inotify`],
//! [`crate::sys::kmsg`].)

pub mod process;
pub mod supervise;
pub mod systemd;
