//! Group commit: items submitted at about the same time are written together by one call of
//! a flush function (one statement, one transaction, one commit), and each submitter is
//! answered only after that call returned: with its own result when the group was written,
//! with the group's error when it was not. Nobody is answered before the write is done.
//!
//! No timer: at most [`Limits::in_flight`] groups are written at once; while they are, the
//! items that arrive wait, and the next free writer takes all of them (up to
//! [`Limits::max_group`]). One item alone is written at once; under load, groups grow
//! with the load.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// How groups are formed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Groups being written at once.
    pub(crate) in_flight: usize,
    /// Items in one group.
    pub(crate) max_group: usize,
    /// Items waiting for a writer (more: submitters wait for room).
    pub(crate) queue: usize,
}

/// Why an item was not written (or may not have been).
#[derive(Debug, thiserror::Error)]
pub(crate) enum GroupError<E: std::error::Error + 'static> {
    /// The group's write failed: none of its items was written.
    #[error("{0}")]
    Failed(#[source] Arc<E>),
    /// The committer stopped (or its write panicked) before answering.
    #[error("the group commit stopped before answering")]
    Stopped,
}

type Reply<R, E> = oneshot::Sender<Result<R, GroupError<E>>>;

struct Waiting<T, R, E: std::error::Error + 'static> {
    item: T,
    reply: Reply<R, E>,
}

/// Submits items to a running committer; cheap to clone.
pub(crate) struct GroupCommit<T, R, E: std::error::Error + 'static> {
    sender: mpsc::Sender<Waiting<T, R, E>>,
}

impl<T, R, E: std::error::Error + 'static> Clone for GroupCommit<T, R, E> {
    fn clone(&self) -> Self {
        GroupCommit {
            sender: self.sender.clone(),
        }
    }
}

impl<T, R, E: std::error::Error + 'static> std::fmt::Debug for GroupCommit<T, R, E> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GroupCommit")
            .field(
                "waiting",
                &(self.sender.max_capacity() - self.sender.capacity()),
            )
            .finish()
    }
}

impl<T, R, E> GroupCommit<T, R, E>
where
    T: Send + 'static,
    R: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    /// Starts the committer on the current runtime. `flush` writes a group and returns one
    /// result per item, in their order. The committer stops when every handle is dropped.
    pub(crate) fn start<F, Fut>(limits: Limits, flush: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>, E>> + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel(limits.queue.max(1));
        tokio::spawn(run(limits, receiver, Arc::new(flush)));
        GroupCommit { sender }
    }

    /// Writes `item` with whatever else arrives meanwhile; returns once it is written (or
    /// its group failed).
    pub(crate) async fn submit(&self, item: T) -> Result<R, GroupError<E>> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Waiting { item, reply })
            .await
            .map_err(|_| GroupError::Stopped)?;
        answer.await.unwrap_or(Err(GroupError::Stopped))
    }
}

async fn run<T, R, E, F, Fut>(
    limits: Limits,
    mut receiver: mpsc::Receiver<Waiting<T, R, E>>,
    flush: Arc<F>,
) where
    T: Send + 'static,
    R: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<R>, E>> + Send + 'static,
{
    let in_flight = limits.in_flight.max(1);
    let writers = Arc::new(Semaphore::new(in_flight));
    loop {
        // a free writer first: meanwhile, arriving items wait and form the next group
        let Ok(writer) = writers.clone().acquire_owned().await else {
            return;
        };
        let mut group = Vec::new();
        if receiver
            .recv_many(&mut group, limits.max_group.max(1))
            .await
            == 0
        {
            break;
        }
        let flush = flush.clone();
        tokio::spawn(async move {
            commit(group, flush.as_ref()).await;
            drop(writer);
        });
    }
    // every handle is gone: let the last groups finish
    let _ = writers.acquire_many(saturating_u32(in_flight)).await;
}

fn saturating_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

async fn commit<T, R, E, F, Fut>(group: Vec<Waiting<T, R, E>>, flush: &F)
where
    E: std::error::Error + 'static,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, E>>,
{
    let (items, replies): (Vec<T>, Vec<Reply<R, E>>) = group
        .into_iter()
        .map(|waiting| (waiting.item, waiting.reply))
        .unzip();
    match flush(items).await {
        Ok(results) if results.len() == replies.len() => {
            for (reply, result) in replies.into_iter().zip(results) {
                // a submitter that went away (its request was dropped) needs no answer
                let _ = reply.send(Ok(result));
            }
        }
        Ok(results) => {
            tracing::error!(
                items = replies.len(),
                results = results.len(),
                "a group commit answered for a different number of items: none is acknowledged"
            );
            // dropped replies: every submitter gets `Stopped`
        }
        Err(error) => {
            let error = Arc::new(error);
            for reply in replies {
                let _ = reply.send(Err(GroupError::Failed(error.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;
    use tokio::task::JoinHandle;

    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refused;

    /// A writer that counts the groups it started, waits for `release` before writing,
    /// keeps the groups it got and fails every group holding an odd number.
    #[derive(Default)]
    struct Gate {
        started: AtomicUsize,
        release: Notify,
        groups: Mutex<Vec<Vec<u32>>>,
    }

    type Answer = JoinHandle<Result<u32, GroupError<Refused>>>;

    fn committer(gate: Arc<Gate>) -> GroupCommit<u32, u32, Refused> {
        let limits = Limits {
            in_flight: 1,
            max_group: 64,
            queue: 1024,
        };
        GroupCommit::start(limits, move |items: Vec<u32>| {
            let gate = gate.clone();
            async move {
                gate.started.fetch_add(1, Ordering::SeqCst);
                gate.release.notified().await;
                gate.groups.lock().unwrap().push(items.clone());
                if items.iter().any(|item| item % 2 == 1) {
                    Err(Refused)
                } else {
                    Ok(items.iter().map(|item| item * 10).collect())
                }
            }
        })
    }

    fn submit(commit: &GroupCommit<u32, u32, Refused>, item: u32) -> Answer {
        let commit = commit.clone();
        tokio::spawn(async move { commit.submit(item).await })
    }

    /// Submits `item` and waits until the writer holds it (its group started).
    async fn submit_written(
        commit: &GroupCommit<u32, u32, Refused>,
        gate: &Gate,
        item: u32,
    ) -> Answer {
        let before = gate.started.load(Ordering::SeqCst);
        let answer = submit(commit, item);
        while gate.started.load(Ordering::SeqCst) == before {
            tokio::task::yield_now().await;
        }
        answer
    }

    /// Submits `items` and waits until all of them wait for a writer.
    async fn submit_queued(commit: &GroupCommit<u32, u32, Refused>, items: &[u32]) -> Vec<Answer> {
        let answers: Vec<Answer> = items.iter().map(|&item| submit(commit, item)).collect();
        while commit.sender.max_capacity() - commit.sender.capacity() < items.len() {
            tokio::task::yield_now().await;
        }
        answers
    }

    #[tokio::test]
    async fn items_arriving_while_a_group_is_written_form_the_next_group_and_get_their_own_results()
    {
        let gate = Arc::new(Gate::default());
        let commit = committer(gate.clone());
        let first = submit_written(&commit, &gate, 0).await;
        let items: Vec<u32> = (1..=10).map(|n| n * 2).collect();
        let rest = submit_queued(&commit, &items).await;
        tokio::task::yield_now().await;
        assert!(
            !first.is_finished(),
            "answered before its group was written"
        );
        gate.release.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 0);
        while gate.started.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        for answer in &rest {
            assert!(
                !answer.is_finished(),
                "answered before its group was written"
            );
        }
        gate.release.notify_one();
        for (item, answer) in items.iter().zip(rest) {
            assert_eq!(answer.await.unwrap().unwrap(), item * 10);
        }
        let mut groups = gate.groups.lock().unwrap().clone();
        groups[1].sort_unstable();
        assert_eq!(groups, vec![vec![0], items]);
    }

    #[tokio::test]
    async fn a_failed_group_answers_every_item_of_it_with_the_error() {
        let gate = Arc::new(Gate::default());
        let commit = committer(gate.clone());
        let first = submit_written(&commit, &gate, 0).await;
        // 3 is refused: its whole group fails
        let group = submit_queued(&commit, &[2, 3, 4, 6]).await;
        gate.release.notify_one();
        first.await.unwrap().unwrap();
        gate.release.notify_one();
        for answer in group {
            assert!(matches!(
                answer.await.unwrap(),
                Err(GroupError::Failed(error)) if error.to_string() == "refused"
            ));
        }
        let mut second = gate.groups.lock().unwrap()[1].clone();
        second.sort_unstable();
        assert_eq!(second, vec![2, 3, 4, 6]);
        // the next group is written again
        let later = submit(&commit, 8);
        gate.release.notify_one();
        assert_eq!(later.await.unwrap().unwrap(), 80);
    }
}
