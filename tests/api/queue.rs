//! The queue's rules, on the repository directly (the same suite will run on PostgreSQL).

use std::time::Duration;

use reelforge::db::{Db, NewTask, NewUser};
use reelforge::domain::{
    EmailAddress, OutputFile, Profile, Source, TaskError, TaskStatus, Username,
};
use uuid::Uuid;

async fn db() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    (reelforge::db::connect(&url).await.unwrap(), dir)
}

async fn task(db: &Db, max_attempts: u32) -> (Uuid, Uuid) {
    let user = db
        .create_user(NewUser {
            username: Username::parse(&format!("u{}", Uuid::now_v7().simple())[..20]).unwrap(),
            email: EmailAddress::parse(&format!("{}@example.com", Uuid::now_v7().simple()))
                .unwrap(),
            password_hash: "x".into(),
        })
        .await
        .unwrap();
    let t = db
        .create_task(
            NewTask {
                id: Uuid::now_v7(),
                user_id: user.id,
                profile: Profile::Idrl(Default::default()),
                source: Source::Url {
                    url: "http://93.184.216.34/a.mp4".into(),
                },
                input_key: None,
            },
            max_attempts,
        )
        .await
        .unwrap();
    (user.id, t.id)
}

fn err() -> TaskError {
    TaskError {
        code: "fetch_failed".into(),
        message: "connection reset".into(),
    }
}

#[tokio::test]
async fn one_claim_per_job_and_expired_leases_are_reclaimed() {
    let (db, _d) = db().await;
    let (user, id) = task(&db, 3).await;
    let lease = Duration::from_millis(300);
    let a = db.claim("a", lease).await.unwrap().unwrap();
    assert_eq!((a.task_id, a.attempt, a.run), (id, 1, 1));
    assert!(db.claim("b", lease).await.unwrap().is_none(), "held lease");
    assert!(db.heartbeat(a.job_id, "a", lease).await.unwrap());
    assert!(
        !db.heartbeat(a.job_id, "b", lease).await.unwrap(),
        "not b's lease"
    );
    // "a" stops renewing (dies): after the lease, "b" gets the job.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = db.claim("b", lease).await.unwrap().unwrap();
    assert_eq!((b.job_id, b.attempt, b.run), (a.job_id, 2, 2));
    // "a" comes back: every write it tries is refused.
    assert!(!db.heartbeat(a.job_id, "a", lease).await.unwrap());
    assert!(!db.complete(&a, "a", &[], None).await.unwrap());
    assert!(!db.fail(&a, "a", &err()).await.unwrap());
    let out = OutputFile {
        name: "x_part_001.mp4".into(),
        key: "k".into(),
        size: 1,
        duration: Some(1.0),
        width: Some(2),
        height: Some(2),
        video_codec: None,
        audio_codec: None,
    };
    assert!(
        db.complete(&b, "b", std::slice::from_ref(&out), None)
            .await
            .unwrap()
    );
    let t = db.get_task(user, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(t.attempts, 2);
    assert_eq!(t.outputs, vec![out]);
    assert!(
        db.claim("c", lease).await.unwrap().is_none(),
        "done jobs stay done"
    );
}

#[tokio::test]
async fn retries_wait_their_backoff_and_stop_at_max_attempts() {
    let (db, _d) = db().await;
    let (user, id) = task(&db, 2).await;
    let lease = Duration::from_secs(30);
    let j = db.claim("w", lease).await.unwrap().unwrap();
    assert!(
        db.retry_later(&j, "w", &err(), Duration::from_millis(300))
            .await
            .unwrap()
    );
    assert_eq!(
        db.get_task(user, id).await.unwrap().unwrap().status,
        TaskStatus::Queued
    );
    assert!(db.claim("w", lease).await.unwrap().is_none(), "not due yet");
    let due = db.next_due_in().await.unwrap().unwrap();
    assert!(due <= Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let j2 = db.claim("w", lease).await.unwrap().unwrap();
    assert_eq!((j2.attempt, j2.max_attempts), (2, 2));
    assert!(db.fail(&j2, "w", &err()).await.unwrap());
    let t = db.get_task(user, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.unwrap().code, "fetch_failed");
}

#[tokio::test]
async fn cancel_ends_the_lease_and_recovery_requeues_running_jobs() {
    let (db, _d) = db().await;
    let (user, id) = task(&db, 3).await;
    let lease = Duration::from_secs(30);
    let j = db.claim("w", lease).await.unwrap().unwrap();
    let (t, changed) = db.cancel_task(user, id).await.unwrap().unwrap();
    assert!(changed);
    assert_eq!(t.status, TaskStatus::Cancelled);
    assert!(
        !db.heartbeat(j.job_id, "w", lease).await.unwrap(),
        "the worker must stop"
    );
    assert!(!db.complete(&j, "w", &[], None).await.unwrap());
    assert_eq!(
        db.get_task(user, id).await.unwrap().unwrap().status,
        TaskStatus::Cancelled
    );

    let (user2, id2) = task(&db, 3).await;
    let j2 = db.claim("dead", lease).await.unwrap().unwrap();
    assert_eq!(j2.task_id, id2);
    assert_eq!(db.recover_running().await.unwrap(), 1);
    assert_eq!(
        db.get_task(user2, id2).await.unwrap().unwrap().status,
        TaskStatus::Queued
    );
    let again = db.claim("alive", lease).await.unwrap().unwrap();
    assert_eq!((again.task_id, again.attempt), (id2, 2));
    // Shutdown release: back to the queue at once, claimable by the next worker.
    assert!(db.release(&again, "alive").await.unwrap());
    assert_eq!(db.claim("next", lease).await.unwrap().unwrap().attempt, 3);
}
