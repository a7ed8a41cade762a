//! The cache's own rules, without a database: reads are closures that count their calls.

use std::sync::atomic::AtomicUsize;

use chrono::Utc;

use super::*;
use crate::db::RepoError;

fn user(id: Uuid, disabled: bool) -> User {
    User {
        id,
        username: "ana".into(),
        email: "ana@example.com".into(),
        disabled,
        admin: false,
        created_at: Utc::now(),
        password_version: 0,
    }
}

/// Read `id` through `cache`, as the database would answer `answer`; counts the reads.
async fn read(cache: &ReadCache, id: Uuid, answer: bool, reads: &AtomicUsize) -> Option<User> {
    cache
        .through(
            |m| &mut m.users,
            id,
            || async {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok(Some(user(id, answer)))
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fresh_entry_is_served_without_reading_again() {
    let cache = ReadCache::with_max_age(Duration::from_secs(3600));
    let (id, reads) = (Uuid::now_v7(), AtomicUsize::new(0));
    assert!(!read(&cache, id, false, &reads).await.unwrap().disabled);
    // The database now says otherwise, but nothing told the cache: the entry is served.
    assert!(!read(&cache, id, true, &reads).await.unwrap().disabled);
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats(), Stats { hits: 1, misses: 1 });
    // Told: read again.
    cache.apply(Change::User(id));
    assert!(read(&cache, id, true, &reads).await.unwrap().disabled);
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_entry_past_its_age_is_read_again() {
    let cache = ReadCache::with_max_age(Duration::ZERO);
    let (id, reads) = (Uuid::now_v7(), AtomicUsize::new(0));
    read(&cache, id, false, &reads).await;
    assert!(read(&cache, id, true, &reads).await.unwrap().disabled);
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_read_that_raced_a_change_is_not_kept() {
    let cache = ReadCache::with_max_age(Duration::from_secs(3600));
    let id = Uuid::now_v7();
    // The change lands while the read is under way: its answer may predate the change.
    let answer = cache
        .through(
            |m| &mut m.users,
            id,
            || async {
                cache.apply(Change::User(id));
                Ok(Some(user(id, false)))
            },
        )
        .await
        .unwrap();
    assert!(answer.is_some());
    let reads = AtomicUsize::new(0);
    read(&cache, id, true, &reads).await;
    assert_eq!(reads.load(Ordering::SeqCst), 1, "the raced answer was kept");
}

fn task(id: Uuid, owner: Uuid) -> TaskRecord {
    crate::db::NewTask {
        id,
        user_id: owner,
        profile: crate::domain::Profile::Idrl(Default::default()),
        source: crate::domain::Source::Url {
            url: "http://93.184.216.34/a.mp4".into(),
        },
        input_key: None,
        webhook_url: None,
        keep_seconds: None,
    }
    .queued(Utc::now())
}

/// Fill the cache with a task and a list page of each of two owners.
async fn two_owners(cache: &ReadCache) -> [(Uuid, Uuid); 2] {
    let pairs = [
        (Uuid::now_v7(), Uuid::now_v7()),
        (Uuid::now_v7(), Uuid::now_v7()),
    ];
    for (owner, id) in pairs {
        let t = task(id, owner);
        let (one, page) = (t.clone(), vec![t]);
        cache
            .through(|m| &mut m.tasks, (owner, id), || async { Ok(Some(one)) })
            .await
            .unwrap();
        cache
            .through(|m| &mut m.lists, list_key(owner), || async { Ok(page) })
            .await
            .unwrap();
    }
    pairs
}

fn list_key(owner: Uuid) -> ListKey {
    (owner, 20, true, None, None)
}

fn cached(cache: &ReadCache, owner: Uuid, id: Uuid) -> (bool, bool) {
    let m = cache.maps.lock().unwrap();
    (
        m.tasks.entries.contains_key(&(owner, id)),
        m.lists.entries.contains_key(&list_key(owner)),
    )
}

#[tokio::test]
async fn a_task_change_drops_that_task_and_its_owners_lists_only() {
    let cache = ReadCache::with_max_age(Duration::from_secs(3600));
    let [(a, a_task), (b, b_task)] = two_owners(&cache).await;
    cache.apply(Change::Task {
        id: a_task,
        user: Some(a),
    });
    assert_eq!(cached(&cache, a, a_task), (false, false));
    assert_eq!(cached(&cache, b, b_task), (true, true));
    // Owner unknown (a worker's progress write): every list goes, other tasks stay.
    cache.apply(Change::Task {
        id: Uuid::now_v7(),
        user: None,
    });
    assert_eq!(cached(&cache, b, b_task), (true, false));
}

#[tokio::test]
async fn an_account_change_drops_everything_of_that_user() {
    let cache = ReadCache::with_max_age(Duration::from_secs(3600));
    let [(a, a_task), (b, b_task)] = two_owners(&cache).await;
    cache.apply(Change::User(a));
    assert_eq!(cached(&cache, a, a_task), (false, false));
    assert_eq!(cached(&cache, b, b_task), (true, true));
    cache.apply(Change::Everything);
    assert_eq!(cached(&cache, b, b_task), (false, false));
}

#[tokio::test]
async fn the_entries_of_a_kind_stay_bounded() {
    let cache = ReadCache::with_max_age(Duration::from_secs(3600));
    let reads = AtomicUsize::new(0);
    for _ in 0..MAX_ENTRIES + 10 {
        read(&cache, Uuid::now_v7(), false, &reads).await;
    }
    assert!(cache.maps.lock().unwrap().users.entries.len() <= MAX_ENTRIES);
}

/// Ten requests missing the same key at once, as at an entry's expiry under load; the read
/// yields a few times, so the others arrive while it is under way.
async fn ten_at_once(cache: &ReadCache, id: Uuid, fail: bool) -> (usize, usize) {
    let reads = AtomicUsize::new(0);
    let answers = futures::future::join_all((0..10).map(|_| {
        cache.through(
            |m| &mut m.users,
            id,
            || async {
                let first = reads.fetch_add(1, Ordering::SeqCst) == 0;
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                if fail && first {
                    return Err(RepoError::Corrupt("the database went away".into()));
                }
                Ok(Some(user(id, false)))
            },
        )
    }))
    .await;
    let ok = answers.iter().filter(|a| a.is_ok()).count();
    (reads.load(Ordering::SeqCst), ok)
}

#[tokio::test]
async fn requests_missing_the_same_key_share_one_read() {
    let cache = ReadCache::with_max_age(Duration::from_secs(3600));
    assert_eq!(ten_at_once(&cache, Uuid::now_v7(), false).await, (1, 10));
}

#[tokio::test]
async fn when_the_shared_read_fails_the_others_read_for_themselves() {
    let cache = ReadCache::with_max_age(Duration::from_secs(3600));
    let (reads, ok) = ten_at_once(&cache, Uuid::now_v7(), true).await;
    // The first failed; the nine waiting read again (one of them leading the rest, or each).
    assert_eq!(ok, 9);
    assert!((2..=10).contains(&reads), "{reads} reads");
    assert!(cache.maps.lock().unwrap().users.flights.is_empty());
}

#[tokio::test(start_paused = true)]
async fn past_half_its_age_one_request_reads_again_while_the_others_are_served() {
    let cache = ReadCache::with_max_age(Duration::from_secs(10));
    let (id, reads) = (Uuid::now_v7(), AtomicUsize::new(0));
    read(&cache, id, false, &reads).await;
    tokio::time::advance(Duration::from_secs(6)).await;
    // One of the ten reads again (and waits for it); nine are served the entry at once.
    assert_eq!(ten_at_once(&cache, id, false).await, (1, 10));
    // Read again: young once more.
    tokio::time::advance(Duration::from_secs(4)).await;
    read(&cache, id, false, &reads).await;
    assert_eq!(reads.load(Ordering::SeqCst), 1);
}
