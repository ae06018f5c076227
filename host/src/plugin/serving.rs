//! The serve call's part of an instance's store (see [`crate::plugin::serve`]): its
//! sockets, the channel its new params arrive on, the status it reports, and one *turn*
//! of its loop (`ServeCtx::wait`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::plugin::types::ResourceRef;
use crate::sys::footprint::Footprint;
use crate::sys::net::{self, NetHost};
use crate::sys::waker::Waker;

/// Where a server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Instantiating, or `serve` has not waited for events yet.
    Starting,
    /// `serve` is waiting on its sockets.
    Serving,
    /// `serve` returned or trapped; why.
    Ended(String),
}

/// A server's state and how many times it was started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Starts so far (the first is 1).
    pub attempt: u64,
    /// Where the latest start is.
    pub state: State,
}

/// What `net.wait` returns to the guest.
#[derive(Debug)]
pub enum Event {
    /// Something happened on a socket.
    Net(net::Event),
    /// New params (the footprint is already in place).
    Reconfigured(Arc<str>),
}

/// The params and footprint a server runs with; a new value is a reconfiguration.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) params: Arc<str>,
    pub(crate) footprint: Arc<Footprint>,
}

/// What one turn of the serve loop brought.
pub(crate) struct Turn {
    /// For the guest.
    pub(crate) events: Vec<Event>,
    /// The new footprint, when the params changed.
    pub(crate) footprint: Option<Arc<Footprint>>,
    /// The CPU budget of the next turn, in epoch ticks.
    pub(crate) ticks: u64,
}

/// The serve call's part of the store (set only in the instance running `serve`).
pub(crate) struct ServeCtx {
    pub(crate) id: ResourceRef,
    pub(crate) net: NetHost,
    pub(crate) config: watch::Receiver<Config>,
    pub(crate) status: Arc<watch::Sender<Status>>,
    pub(crate) wake: Arc<Mutex<Waker>>,
    /// The CPU budget of one turn, in epoch ticks.
    pub(crate) ticks: u64,
}

impl ServeCtx {
    /// Wake the resource (its check-apply runs).
    pub(crate) fn wake(&self) {
        let wake = self.wake.lock().expect("wake lock").clone();
        wake();
    }

    /// One turn: a reconfiguration if one is pending, else socket events or nothing after
    /// `timeout`. The first turn reports the server as serving (it has bound its sockets).
    pub(crate) async fn wait(&mut self, timeout: Duration) -> Turn {
        self.status.send_if_modified(|st| {
            let first = st.state == State::Starting;
            if first {
                st.state = State::Serving;
            }
            first
        });
        // `changed()` marks the value seen, so remember that it fired.
        let reconfigured = if self.config.has_changed().unwrap_or(false) {
            true
        } else {
            tokio::select! {
                events = self.net.wait(timeout) => {
                    return Turn {
                        events: events.into_iter().map(Event::Net).collect(),
                        footprint: None,
                        ticks: self.ticks,
                    };
                }
                r = self.config.changed() => r.is_ok(),
            }
        };
        if !reconfigured {
            return Turn {
                events: Vec::new(),
                footprint: None,
                ticks: self.ticks,
            };
        }
        let c = self.config.borrow_and_update().clone();
        Turn {
            events: vec![Event::Reconfigured(c.params)],
            footprint: Some(c.footprint),
            ticks: self.ticks,
        }
    }
}
