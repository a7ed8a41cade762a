//! Signals between the API and the workers of one process: a job was queued (wake an idle
//! worker), a task changed (wake its event streams, drop its cached reads), a task must
//! stop (cancel its run).
//!
//! They only shorten waits inside this process. Other processes learn the same facts from
//! the database (LISTEN/NOTIFY, heartbeats, the event streams' one-second poll), so a lost
//! signal delays, never loses, anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::cache::{Change, ReadCache};

/// Shared by every handler and worker of a process; cloning shares it.
#[derive(Clone)]
pub struct Signals {
    inner: Arc<Inner>,
}

struct Inner {
    queued: Notify,
    /// A message was queued in the outbox.
    message: Notify,
    changed: broadcast::Sender<Uuid>,
    running: Mutex<HashMap<Uuid, CancellationToken>>,
    /// What requests read most, kept fresh by the changes signalled here.
    reads: Arc<ReadCache>,
}

impl Default for Signals {
    fn default() -> Self {
        let (changed, _) = broadcast::channel(1024);
        Signals {
            inner: Arc::new(Inner {
                queued: Notify::new(),
                message: Notify::new(),
                changed,
                running: Mutex::new(HashMap::new()),
                reads: Arc::default(),
            }),
        }
    }
}

impl Signals {
    /// A job was queued: wake one idle worker of this process.
    pub fn job_queued(&self) {
        self.inner.queued.notify_one();
    }

    /// A task (and its job) was created: wake a worker, and drop its owner's cached lists.
    pub fn task_created(&self, task: Uuid, owner: Uuid) {
        self.job_queued();
        self.changed(Change::Task {
            id: task,
            user: Some(owner),
        });
    }

    /// Resolves when [`Signals::job_queued`] is called (or was, since the last wait).
    pub async fn wait_for_job(&self) {
        self.inner.queued.notified().await;
    }

    /// A message was queued in the outbox: wake one idle deliverer of this process.
    pub fn message_queued(&self) {
        self.inner.message.notify_one();
    }

    /// Resolves when [`Signals::message_queued`] is called (or was, since the last wait).
    pub async fn wait_for_message(&self) {
        self.inner.message.notified().await;
    }

    /// A task's state changed: wake its event streams in this process.
    pub fn task_changed(&self, task: Uuid) {
        self.changed(Change::Task {
            id: task,
            user: None,
        });
    }

    /// Data that cached reads show changed (in this process; call it after the commit):
    /// drop the cached copies, and wake the event streams of a changed task.
    pub fn changed(&self, change: Change) {
        self.inner.reads.apply(change);
        if let Change::Task { id, .. } = change {
            // No stream is listening: nothing to do.
            let _ = self.inner.changed.send(id);
        }
    }

    /// The process's cache of what requests read most (`db::cache`).
    pub fn reads(&self) -> &Arc<ReadCache> {
        &self.inner.reads
    }

    /// Ids of tasks that change from now on.
    pub fn task_changes(&self) -> broadcast::Receiver<Uuid> {
        self.inner.changed.subscribe()
    }

    /// Stop the task's run if it runs in this process. Other processes notice at their
    /// next heartbeat (one second).
    pub fn cancel_task(&self, task: Uuid) {
        if let Ok(running) = self.inner.running.lock()
            && let Some(token) = running.get(&task)
        {
            token.cancel();
        }
    }

    /// Make [`Signals::cancel_task`] reach `token` until the returned guard is dropped.
    pub fn register_run(&self, task: Uuid, token: CancellationToken) -> RunRegistration {
        if let Ok(mut running) = self.inner.running.lock() {
            running.insert(task, token);
        }
        RunRegistration {
            signals: self.clone(),
            task,
        }
    }
}

/// Keeps a run reachable by [`Signals::cancel_task`]; unregisters it on drop.
pub struct RunRegistration {
    signals: Signals,
    task: Uuid,
}

impl Drop for RunRegistration {
    fn drop(&mut self) {
        if let Ok(mut running) = self.signals.inner.running.lock() {
            running.remove(&self.task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reaches_a_registered_run_only_while_registered() {
        let signals = Signals::default();
        let (task, other) = (Uuid::now_v7(), Uuid::now_v7());
        let token = CancellationToken::new();
        let registration = signals.register_run(task, token.clone());
        signals.cancel_task(other);
        assert!(!token.is_cancelled());
        signals.cancel_task(task);
        assert!(token.is_cancelled());

        drop(registration);
        let later = CancellationToken::new();
        let _kept = signals.clone().register_run(other, later.clone());
        signals.cancel_task(task);
        assert!(!later.is_cancelled());
    }

    #[tokio::test]
    async fn changes_reach_subscribers_and_a_queued_job_wakes_a_waiter() {
        let signals = Signals::default();
        let mut changes = signals.task_changes();
        let task = Uuid::now_v7();
        signals.task_changed(task);
        assert_eq!(changes.recv().await.ok(), Some(task));
        // A wake-up before the wait is kept for it.
        signals.job_queued();
        tokio::time::timeout(std::time::Duration::from_secs(1), signals.wait_for_job())
            .await
            .unwrap();
    }
}
