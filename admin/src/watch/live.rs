//! One log bus subscription per live build, however many clients watch it: the events are
//! read from the bus and decoded once, converted to their protobuf form once, and kept in a
//! list that every watcher of the build reads at its own pace from the first event (what a
//! subscription of its own would have given it). The list lives while someone watches the
//! build; the subscription ends with the last watcher.

use ocelot_core::events::BuildEvent;
use ocelot_core::ids::BuildId;
use ocelot_core::queue::{Bus, EventSubscription, QueueError};
use ocelot_proto::v1 as pb;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use tokio::sync::Notify;

/// An event of the bus, with its protobuf form.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) event: BuildEvent,
    pub(crate) message: pb::BuildEvent,
}

/// The live builds being watched, each with its one subscription.
#[derive(Debug)]
pub(crate) struct LiveLogs {
    bus: Bus,
    tails: Mutex<HashMap<BuildId, Weak<Tail>>>,
}

#[derive(Debug, Default)]
struct TailState {
    received: Vec<Arc<Received>>,
    /// Why the subscription ended (a bus error, or the stream ending).
    ended: Option<String>,
}

/// One build's events so far.
#[derive(Debug)]
struct Tail {
    state: RwLock<TailState>,
    grown: Notify,
    reading: tokio::task::JoinHandle<()>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.reading.abort();
    }
}

/// A watcher's place in a build's events.
#[derive(Debug)]
pub(crate) struct TailReader {
    tail: Arc<Tail>,
    next: usize,
}

impl LiveLogs {
    pub(crate) fn new(bus: Bus) -> Self {
        LiveLogs {
            bus,
            tails: Mutex::new(HashMap::new()),
        }
    }

    fn shared(&self, build_id: BuildId) -> Option<Arc<Tail>> {
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        tails.retain(|_, tail| tail.strong_count() > 0);
        tails.get(&build_id).and_then(Weak::upgrade)
    }

    /// `build_id`'s events from the first: the subscription another watcher of the build
    /// already has, or a new one.
    pub(crate) async fn follow(&self, build_id: BuildId) -> Result<TailReader, QueueError> {
        if let Some(tail) = self.shared(build_id) {
            return Ok(TailReader { tail, next: 0 });
        }
        let subscription = self.bus.subscribe_events(build_id).await?;
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        // another watcher may have subscribed meanwhile: one subscription is kept
        if let Some(tail) = tails.get(&build_id).and_then(Weak::upgrade) {
            return Ok(TailReader { tail, next: 0 });
        }
        let tail = Arc::new_cyclic(|weak: &Weak<Tail>| Tail {
            state: RwLock::new(TailState::default()),
            grown: Notify::new(),
            reading: tokio::spawn(read(subscription, weak.clone())),
        });
        tails.insert(build_id, Arc::downgrade(&tail));
        Ok(TailReader { tail, next: 0 })
    }
}

/// Reads the subscription into the tail until it ends or nobody watches any more.
async fn read(mut subscription: EventSubscription, tail: Weak<Tail>) {
    loop {
        let next = subscription.next().await;
        let Some(tail) = tail.upgrade() else { return };
        let ended = {
            let mut state = tail.state.write().unwrap_or_else(PoisonError::into_inner);
            match next {
                Some(Ok(event)) => {
                    let message = pb::BuildEvent::from(&event);
                    state.received.push(Arc::new(Received { event, message }));
                    false
                }
                Some(Err(error)) => {
                    state.ended = Some(error.to_string());
                    true
                }
                None => {
                    state.ended = Some("the log stream ended".to_string());
                    true
                }
            }
        };
        tail.grown.notify_waiters();
        if ended {
            return;
        }
    }
}

impl TailReader {
    /// The next event, waiting for it; `Err` when the subscription ended. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Result<Arc<Received>, String> {
        loop {
            let grown = self.tail.grown.notified();
            tokio::pin!(grown);
            // registered before looking, so that an event pushed meanwhile wakes it
            grown.as_mut().enable();
            {
                let state = self
                    .tail
                    .state
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some(received) = state.received.get(self.next) {
                    self.next += 1;
                    return Ok(received.clone());
                }
                if let Some(ended) = &state.ended {
                    return Err(ended.clone());
                }
            }
            grown.await;
        }
    }
}
