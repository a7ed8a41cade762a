//! A read-through cache of what nearly every authenticated request reads: the caller's
//! account (a JWT's user) or API key, one task, and pages of the task list.
//!
//! Why: those reads are most of the API's traffic (clients poll), and each is a round trip
//! to the database (on SQLite, hops to its worker thread). Served from memory they cost a
//! map look-up.
//!
//! What keeps it correct:
//! - **Age:** an entry is served for at most [`MAX_AGE`] after its read *began*, so nothing
//!   served is older than that, whoever changed the row (another process, the CLI, a
//!   hand-made `UPDATE`).
//! - **Changes this process makes** are applied at once ([`ReadCache::apply`], through
//!   `Signals`), so a client reads its own writes: cancel, then get, shows `cancelled`.
//! - **Changes other processes make** reach it through the database's change feed
//!   (`TaskRepo::changes`: PostgreSQL `NOTIFY` from triggers), in milliseconds.
//! - **No stale refill:** a read that was under way while a change was applied does not
//!   store its (possibly older) answer.
//! - **Scoped keys:** tasks and lists are keyed by their owner as well as their id or query,
//!   exactly as the repository scopes them, so no user can be served another's entry.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{ApiKey, Db, ListQuery, RepoResult, User};
use crate::domain::TaskRecord;

/// The longest an entry is served after its read began.
pub const MAX_AGE: Duration = Duration::from_millis(500);

/// Entries per kind; past it, expired entries go, then all of that kind (a burst of
/// distinct reads costs misses, never memory).
const MAX_ENTRIES: usize = 4096;

/// A change that makes cached reads wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A task, or what its view shows (its notifications), changed; `user` is its owner
    /// when known (else every user's lists are dropped).
    Task { id: Uuid, user: Option<Uuid> },
    /// An account changed (disabled, password, admin, deleted): its user entry, its keys
    /// and its tasks go.
    User(Uuid),
    /// One of the user's API keys changed (revoked, deleted).
    Keys(Uuid),
    /// Unknown changes may have been missed (a dropped change feed): drop everything.
    Everything,
}

/// Hits and misses of one cache (for tests and the metric).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
}

struct Entry<T> {
    value: T,
    read_at: Instant,
}

/// A list page's query, as a map key.
type ListKey = (Uuid, u32, bool, Option<&'static str>, Option<Uuid>);

/// The entries of one kind, and the reads of it under way.
struct Kind<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// A key being read: requests that miss it meanwhile wait for that read (they hold
    /// a receiver; the reader's sender is dropped when it is done) instead of each going
    /// to the database; at an entry's expiry under load that would be every request.
    flights: HashMap<K, watch::Receiver<()>>,
}

impl<K, V> Default for Kind<K, V> {
    fn default() -> Self {
        Kind {
            entries: HashMap::new(),
            flights: HashMap::new(),
        }
    }
}

type Of<K, V> = fn(&mut Maps) -> &mut Kind<K, V>;

#[derive(Default)]
struct Maps {
    users: Kind<Uuid, Option<User>>,
    keys: Kind<String, Option<ApiKey>>,
    tasks: Kind<(Uuid, Uuid), Option<TaskRecord>>,
    lists: Kind<ListKey, Vec<TaskRecord>>,
}

pub struct ReadCache {
    maps: Mutex<Maps>,
    max_age: Duration,
    /// Bumped by every change (under the lock): a read that began under an older count
    /// may have read the state from before the change, so it is not stored.
    generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for ReadCache {
    fn default() -> Self {
        Self::with_max_age(MAX_AGE)
    }
}

impl ReadCache {
    /// A cache whose entries live `max_age` ([`MAX_AGE`] by default; tests pin it).
    pub fn with_max_age(max_age: Duration) -> Self {
        ReadCache {
            maps: Mutex::default(),
            max_age,
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A user by id (`UserRepo::user_by_id`).
    pub async fn user(&self, db: &Db, id: Uuid) -> RepoResult<Option<User>> {
        self.through(|m| &mut m.users, id, || db.user_by_id(id))
            .await
    }

    /// The live API key of `key_hash` (`ApiKeyRepo::live_api_key`). Unknown keys are kept
    /// too (as `None`, within the bound on entries): guessing costs no database read.
    pub async fn api_key(&self, db: &Db, key_hash: &str) -> RepoResult<Option<ApiKey>> {
        let key = key_hash.to_string();
        self.through(|m| &mut m.keys, key, || db.live_api_key(key_hash))
            .await
    }

    /// One task of `user` (`TaskRepo::get_task`).
    pub async fn task(&self, db: &Db, user: Uuid, id: Uuid) -> RepoResult<Option<TaskRecord>> {
        self.through(|m| &mut m.tasks, (user, id), || db.get_task(user, id))
            .await
    }

    /// A page of `user`'s tasks (`TaskRepo::list_tasks`).
    pub async fn tasks(&self, db: &Db, user: Uuid, q: &ListQuery) -> RepoResult<Vec<TaskRecord>> {
        let key = (
            user,
            q.limit,
            q.descending,
            q.status.map(|s| s.as_str()),
            q.after,
        );
        self.through(|m| &mut m.lists, key, || db.list_tasks(user, q))
            .await
    }

    /// Forget what `change` makes wrong. (Reads under way are not stored: `generation`.)
    pub fn apply(&self, change: Change) {
        let Ok(mut m) = self.maps.lock() else { return };
        self.generation.fetch_add(1, Ordering::SeqCst);
        let Maps {
            users,
            keys,
            tasks,
            lists,
        } = &mut *m;
        let (users, keys, tasks, lists) = (
            &mut users.entries,
            &mut keys.entries,
            &mut tasks.entries,
            &mut lists.entries,
        );
        match change {
            Change::Task { id, user } => {
                tasks.retain(|(_, task), _| *task != id);
                match user {
                    Some(user) => lists.retain(|key, _| key.0 != user),
                    None => lists.clear(),
                }
            }
            Change::User(user) => {
                users.remove(&user);
                keys.retain(|_, e| e.value.as_ref().is_none_or(|k| k.user_id != user));
                tasks.retain(|(owner, _), _| *owner != user);
                lists.retain(|key, _| key.0 != user);
            }
            Change::Keys(user) => {
                keys.retain(|_, e| e.value.as_ref().is_none_or(|k| k.user_id != user));
            }
            Change::Everything => {
                users.clear();
                keys.clear();
                tasks.clear();
                lists.clear();
            }
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The entry of `key` if fresh; else the answer of the read of `key` under way, if
    /// one is and its answer was kept; else `read` (stored when no change came meanwhile).
    /// An entry past half its age is read again by the one request that finds it so while
    /// the others are still served it: under steady load no request waits for the database.
    async fn through<K, V, F, Fut>(&self, kind: Of<K, V>, key: K, read: F) -> RepoResult<V>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: FnOnce() -> Fut,
        Fut: Future<Output = RepoResult<V>>,
    {
        if let Some((value, aging)) = self.lookup(kind, &key) {
            if !aging {
                return Ok(value);
            }
            return match self.join_or_lead(kind, &key) {
                Ok(Some(flight)) => {
                    let began = self.begin();
                    match read().await {
                        Ok(fresh) => {
                            self.store(began, kind, key, fresh.clone());
                            drop(flight);
                            Ok(fresh)
                        }
                        // The entry is still within its age: serve it; the next request
                        // past half its age tries again.
                        Err(e) => {
                            tracing::debug!(error = %e, "could not refresh a cached read");
                            Ok(value)
                        }
                    }
                }
                // Being read again already (or the lock is poisoned): still young enough.
                Ok(None) | Err(_) => Ok(value),
            };
        }
        let flight = match self.join_or_lead(kind, &key) {
            Ok(flight) => flight,
            Err(mut under_way) => {
                // Err: the reader's sender is gone, i.e. it is done (it never sends).
                let _ = under_way.changed().await;
                match self.fresh(kind, &key) {
                    Some((value, _)) => return Ok(value),
                    // Its answer was not kept (a change came, or it failed): read anew.
                    None => None,
                }
            }
        };
        let began = self.begin();
        let value = read().await?;
        self.store(began, kind, key, value.clone());
        drop(flight);
        Ok(value)
    }

    /// Lead the read of `key` (the returned guard ends the flight when dropped), or the
    /// receiver of the read already under way.
    fn join_or_lead<'a, K, V>(
        &'a self,
        kind: Of<K, V>,
        key: &K,
    ) -> Result<Option<Flight<'a, K, V>>, watch::Receiver<()>>
    where
        K: Eq + Hash + Clone,
    {
        let Ok(mut m) = self.maps.lock() else {
            return Ok(None);
        };
        let flights = &mut kind(&mut m).flights;
        if let Some(under_way) = flights.get(key) {
            return Err(under_way.clone());
        }
        let (done, under_way) = watch::channel(());
        flights.insert(key.clone(), under_way);
        Ok(Some(Flight {
            cache: self,
            kind,
            key: key.clone(),
            _done: done,
        }))
    }

    fn lookup<K, Q, V>(&self, kind: Of<K, V>, key: &Q) -> Option<(V, bool)>
    where
        K: Eq + Hash + std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
        V: Clone,
    {
        let found = self.fresh(kind, key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::telemetry::READ_CACHE,
            "result" => if found.is_some() { "hit" } else { "miss" })
        .increment(1);
        found
    }

    /// The entry of `key` if it is younger than `max_age`, and whether it is past half of it.
    fn fresh<K, Q, V>(&self, kind: Of<K, V>, key: &Q) -> Option<(V, bool)>
    where
        K: Eq + Hash + std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
        V: Clone,
    {
        let mut m = self.maps.lock().ok()?;
        kind(&mut m)
            .entries
            .get(key)
            .map(|e| (e, e.read_at.elapsed()))
            .filter(|(_, age)| *age < self.max_age)
            .map(|(e, age)| (e.value.clone(), age >= self.max_age / 2))
    }

    /// Taken before a read: the generation then, and when the read began.
    fn begin(&self) -> (u64, Instant) {
        (self.generation.load(Ordering::SeqCst), Instant::now())
    }

    fn store<K: Eq + Hash, V>(
        &self,
        (generation, read_at): (u64, Instant),
        kind: Of<K, V>,
        key: K,
        value: V,
    ) {
        let Ok(mut m) = self.maps.lock() else { return };
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let entries = &mut kind(&mut m).entries;
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.read_at.elapsed() < self.max_age);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { value, read_at });
    }
}

/// A read under way: ends (waking those who wait for it) when dropped, answered or not.
struct Flight<'a, K: Eq + Hash, V> {
    cache: &'a ReadCache,
    kind: Of<K, V>,
    key: K,
    _done: watch::Sender<()>,
}

impl<K: Eq + Hash, V> Drop for Flight<'_, K, V> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.cache.maps.lock() {
            (self.kind)(&mut m).flights.remove(&self.key);
        }
    }
}

/// Apply the database's change feed (`TaskRepo::changes`) to `cache` until `stop`. Each
/// time the feed is (re)joined everything is dropped, since changes may have been missed
/// meanwhile; while it is down, entries still expire by age.
pub async fn follow_changes(db: Db, cache: Arc<ReadCache>, stop: CancellationToken) {
    loop {
        let feed = tokio::select! {
            _ = stop.cancelled() => return,
            feed = db.changes() => feed,
        };
        match feed {
            Ok(None) => return,
            Ok(Some(mut changes)) => {
                cache.apply(Change::Everything);
                loop {
                    let next = tokio::select! {
                        _ = stop.cancelled() => return,
                        next = changes.recv() => next,
                    };
                    match next {
                        Ok(change) => cache.apply(change),
                        Err(RecvError::Lagged(_)) => cache.apply(Change::Everything),
                        Err(RecvError::Closed) => break,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e,
                "change feed unavailable; cached reads expire by age until it is back"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests;
