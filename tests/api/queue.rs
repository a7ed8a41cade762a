//! The repository and queue rules, on `Db` directly. Every test in `on_both_backends!` runs
//! once on SQLite (`NAME::sqlite`) and once on PostgreSQL (`NAME::postgres`, see
//! `reelforge_testkit::pg`); the tests at the end are about one backend only.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reelforge::db::{
    Db, Lease, ListQuery, NewTask, NewUser, RepoError, RetryOutcome, SessionTimeouts,
};
use reelforge::domain::{
    EmailAddress, OutputFile, Profile, Source, Stage, TaskError, TaskStatus, Username,
};
use reelforge::media::probe::{AudioStream, MediaInfo, VideoStream};
use reelforge_db_postgres as sql;
use reelforge_testkit::on_both_backends;
use reelforge_testkit::pg::TestDb;
use uuid::Uuid;

on_both_backends!(
    one_claim_per_job_and_expired_leases_are_reclaimed,
    a_claim_made_again_returns_the_job_it_took,
    retries_wait_their_backoff_and_stop_at_max_attempts,
    cancel_ends_the_lease_and_release_requeues_at_once,
    recovery_requeues_expired_leases,
    users_conflicts_logins_and_disabling,
    tasks_are_scoped_listed_by_keyset_and_found_by_file,
    progress_input_commands_and_result_round_trip,
    retry_and_delete_follow_the_status,
    writes_after_claim_need_the_lease,
    a_release_gives_the_attempt_back_and_attempts_never_exceed_the_maximum,
    a_task_waiting_to_retry_shows_the_error_and_when_it_runs_next,
    sessions_expire_idle_or_absolute_and_end_with_a_password_change,
    shares_are_owner_scoped_expire_and_go_with_their_task,
    the_oldest_due_job_is_the_one_waiting_longest,
    deletes_racing_claims_all_succeed,
);

/// The same job as `lease`, as another worker would name it.
fn as_owner(lease: &Lease, owner: &str) -> Lease {
    Lease {
        owner: owner.to_string(),
        ..lease.clone()
    }
}

async fn user(db: &Db) -> Uuid {
    // The random end of a v7 id: its start is the time, shared within a millisecond.
    let id = Uuid::now_v7().simple().to_string();
    db.create_user(NewUser {
        username: Username::parse(&format!("u{}", &id[id.len() - 19..])).unwrap(),
        email: EmailAddress::parse(&format!("{}@example.com", Uuid::now_v7().simple())).unwrap(),
        password_hash: "x".into(),
        admin: false,
        invite_hash: None,
    })
    .await
    .unwrap()
    .id
}

async fn task_for(db: &Db, user: Uuid, source: Source, max_attempts: u32) -> Uuid {
    db.create_task(
        NewTask {
            id: Uuid::now_v7(),
            user_id: user,
            profile: Profile::Idrl(Default::default()),
            source,
            input_key: None,
            webhook_url: None,
            keep_seconds: None,
        },
        max_attempts,
    )
    .await
    .unwrap()
    .id
}

fn url_source() -> Source {
    Source::Url {
        url: "http://93.184.216.34/a.mp4".into(),
    }
}

async fn task(db: &Db, max_attempts: u32) -> (Uuid, Uuid) {
    let user = user(db).await;
    let id = task_for(db, user, url_source(), max_attempts).await;
    (user, id)
}

fn err() -> TaskError {
    TaskError {
        code: "fetch_failed".into(),
        message: "connection reset".into(),
    }
}

fn output(name: &str) -> OutputFile {
    OutputFile {
        name: name.into(),
        key: format!("tasks/x/out/1/{name}"),
        size: 1,
        duration: Some(1.0),
        width: Some(2),
        height: Some(2),
        video_codec: None,
        audio_codec: None,
    }
}

fn list(limit: u32, descending: bool, after: Option<Uuid>) -> ListQuery {
    ListQuery {
        limit,
        descending,
        status: None,
        after,
    }
}

async fn one_claim_per_job_and_expired_leases_are_reclaimed(db: Db) {
    let (user, id) = task(&db, 3).await;
    let lease = Duration::from_millis(300);
    let a = db.claim("a", lease).await.unwrap().unwrap();
    assert_eq!((a.task_id, a.attempt, a.run), (id, 1, 1));
    assert!(db.claim("b", lease).await.unwrap().is_none(), "held lease");
    assert!(db.heartbeat(&a, lease).await.unwrap());
    assert!(
        !db.heartbeat(&as_owner(&a, "b"), lease).await.unwrap(),
        "not b's lease"
    );
    // "a" stops renewing (dies): after the lease, "b" gets the job.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = db.claim("b", lease).await.unwrap().unwrap();
    assert_eq!((b.job_id, b.attempt, b.run), (a.job_id, 2, 2));
    // "a" comes back: every write it tries is refused.
    assert!(!db.heartbeat(&a, lease).await.unwrap());
    assert!(!db.complete(&a, &[], None).await.unwrap());
    assert!(!db.fail(&a, &err()).await.unwrap());
    let out = output("x_part_001.mp4");
    assert!(
        db.complete(&b, std::slice::from_ref(&out), None)
            .await
            .unwrap()
    );
    let t = db.get_task(user, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(t.attempts, 2);
    assert_eq!(t.percent, Some(100.0));
    assert_eq!(t.outputs, vec![out]);
    assert!(t.started_at.is_some() && t.finished_at >= t.started_at);
    assert!(
        db.claim("c", lease).await.unwrap().is_none(),
        "done jobs stay done"
    );
}

/// A claim whose reply was lost (the database committed it) and that the worker makes again
/// gets the same job, with no attempt or run spent; other workers still get other jobs.
async fn a_claim_made_again_returns_the_job_it_took(db: Db) {
    let (user, first) = task(&db, 3).await;
    let (_, second) = task(&db, 3).await;
    let lease = Duration::from_secs(30);
    let a = db.claim("w:0", lease).await.unwrap().unwrap();
    let before = db.get_task(user, first).await.unwrap().unwrap();
    let again = db.claim("w:0", lease).await.unwrap().unwrap();
    assert_eq!(again, a);
    let after = db.get_task(user, first).await.unwrap().unwrap();
    assert_eq!(
        (after.attempts, after.started_at, after.status),
        (before.attempts, before.started_at, TaskStatus::Running)
    );
    let b = db.claim("w:1", lease).await.unwrap().unwrap();
    assert_eq!((a.task_id, b.task_id), (first, second));
    // Once its job is done, the owner claims anew.
    assert!(db.complete(&a, &[], None).await.unwrap());
    assert!(
        db.claim("w:0", lease).await.unwrap().is_none(),
        "nothing else due"
    );
}

async fn retries_wait_their_backoff_and_stop_at_max_attempts(db: Db) {
    let (user, id) = task(&db, 2).await;
    let lease = Duration::from_secs(30);
    let j = db.claim("w", lease).await.unwrap().unwrap();
    assert!(
        db.retry_later(&j, &err(), Duration::from_millis(300))
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
    assert!(due >= Duration::from_millis(100), "{due:?}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let j2 = db.claim("w", lease).await.unwrap().unwrap();
    assert_eq!((j2.attempt, j2.max_attempts), (2, 2));
    assert!(db.next_due_in().await.unwrap().is_none(), "nothing queued");
    assert!(db.fail(&j2, &err()).await.unwrap());
    let t = db.get_task(user, id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error, Some(err()));
    assert!(t.finished_at.is_some());
}

async fn cancel_ends_the_lease_and_release_requeues_at_once(db: Db) {
    let (user, id) = task(&db, 3).await;
    let lease = Duration::from_secs(30);
    let j = db.claim("w", lease).await.unwrap().unwrap();
    let (t, changed) = db.cancel_task(user, id).await.unwrap().unwrap();
    assert!(changed);
    assert_eq!(t.status, TaskStatus::Cancelled);
    assert!(
        !db.heartbeat(&j, lease).await.unwrap(),
        "the worker must stop"
    );
    assert!(!db.complete(&j, &[], None).await.unwrap());
    assert_eq!(
        db.get_task(user, id).await.unwrap().unwrap().status,
        TaskStatus::Cancelled
    );
    let (_, again) = db.cancel_task(user, id).await.unwrap().unwrap();
    assert!(!again, "already cancelled");
    assert!(
        db.cancel_task(user, Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.claim("w", lease).await.unwrap().is_none());

    // Shutdown release: back to the queue at once, claimable by the next worker, the
    // attempt given back (a new run all the same).
    let (_, id2) = task(&db, 3).await;
    let j2 = db.claim("w", lease).await.unwrap().unwrap();
    assert_eq!(j2.task_id, id2);
    assert!(db.release(&j2).await.unwrap());
    assert!(!db.release(&j2).await.unwrap(), "released once");
    let next = db.claim("next", lease).await.unwrap().unwrap();
    assert_eq!((next.task_id, next.attempt, next.run), (id2, 1, 2));
}

async fn recovery_requeues_expired_leases(db: Db) {
    // What both backends do at start-up of `serve`: a job whose holder died (lease
    // expired) goes back to the queue and its task reads `queued`.
    let (user, id) = task(&db, 3).await;
    let j = db
        .claim("dead", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(db.recover_running().await.unwrap(), 1);
    assert_eq!(
        db.get_task(user, id).await.unwrap().unwrap().status,
        TaskStatus::Queued
    );
    assert!(!db.heartbeat(&j, Duration::from_secs(30)).await.unwrap());
    let again = db
        .claim("alive", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.task_id, again.attempt, again.run), (id, 2, 2));
}

async fn users_conflicts_logins_and_disabling(db: Db) {
    let new = |username: &str, email: &str| NewUser {
        username: Username::parse(username).unwrap(),
        email: EmailAddress::parse(email).unwrap(),
        password_hash: "$argon2id$hash".into(),
        admin: false,
        invite_hash: None,
    };
    let alice = db
        .create_user(new("alice", "Alice@Example.com"))
        .await
        .unwrap();
    assert_eq!(
        (
            alice.username.as_str(),
            alice.email.as_str(),
            alice.disabled
        ),
        ("alice", "Alice@Example.com", false)
    );
    assert_eq!(alice.created_at.timestamp_subsec_micros() % 1000, 0, "ms");
    assert!(matches!(
        db.create_user(new("alice", "other@example.com")).await,
        Err(RepoError::Conflict("username"))
    ));
    assert!(matches!(
        db.create_user(new("alice2", "alice@EXAMPLE.com")).await,
        Err(RepoError::Conflict("email"))
    ));
    let bob = db.create_user(new("bob", "bob@example.com")).await.unwrap();

    // What was returned is what is stored.
    assert_eq!(db.user_by_id(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(db.user_by_id(Uuid::now_v7()).await.unwrap(), None);
    let by_name = db.user_for_login("alice").await.unwrap().unwrap();
    assert_eq!(
        (&by_name.user, by_name.password_hash.as_str()),
        (&alice, "$argon2id$hash")
    );
    let by_email = db
        .user_for_login("ALICE@example.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.user, alice);
    // User names are case-insensitive; the stored spelling is the one given.
    for typed in ["Alice", "ALICE"] {
        let found = db.user_for_login(typed).await.unwrap().unwrap();
        assert_eq!(found.user, alice, "{typed}");
    }
    assert!(matches!(
        db.create_user(new("ALICE", "third@example.com")).await,
        Err(RepoError::Conflict("username"))
    ));
    assert!(
        db.user_for_login("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(db.list_users().await.unwrap(), vec![alice.clone(), bob]);

    assert!(db.set_user_disabled("alice", true).await.unwrap());
    assert!(db.user_by_id(alice.id).await.unwrap().unwrap().disabled);
    assert!(db.set_user_disabled("ALICE", false).await.unwrap());
    assert!(!db.user_by_id(alice.id).await.unwrap().unwrap().disabled);
    assert!(!db.set_user_disabled("nobody", true).await.unwrap());
}

async fn tasks_are_scoped_listed_by_keyset_and_found_by_file(db: Db) {
    let a = user(&db).await;
    let b = user(&db).await;
    let mut ids = vec![];
    for i in 0..5 {
        let source = Source::Upload {
            filename: format!("clip{i}.mp4"),
            size: 10 + i,
        };
        ids.push(task_for(&db, a, source, 3).await);
    }
    let other = task_for(&db, b, url_source(), 3).await;

    // What create returned is what is stored.
    let created = db
        .create_task(
            NewTask {
                id: Uuid::now_v7(),
                user_id: b,
                profile: Profile::Idrl(Default::default()),
                source: url_source(),
                input_key: Some("tasks/k/input/a.mp4".into()),
                webhook_url: None,
                keep_seconds: None,
            },
            3,
        )
        .await
        .unwrap();
    assert_eq!(
        db.get_task(b, created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(db.task_for_job(created.id).await.unwrap(), Some(created));

    // Scoped to the owner: another user's id is unknown.
    assert!(db.get_task(b, ids[0]).await.unwrap().is_none());
    assert!(db.get_task(a, other).await.unwrap().is_none());

    // Keyset pages, both directions.
    let page = |l: Vec<reelforge::domain::TaskRecord>| l.iter().map(|t| t.id).collect::<Vec<_>>();
    let first = page(db.list_tasks(a, &list(2, false, None)).await.unwrap());
    assert_eq!(first, ids[..2]);
    let second = page(
        db.list_tasks(a, &list(2, false, Some(ids[1])))
            .await
            .unwrap(),
    );
    assert_eq!(second, ids[2..4]);
    let newest = page(db.list_tasks(a, &list(3, true, None)).await.unwrap());
    assert_eq!(newest, vec![ids[4], ids[3], ids[2]]);
    let older = page(
        db.list_tasks(a, &list(3, true, Some(ids[2])))
            .await
            .unwrap(),
    );
    assert_eq!(older, vec![ids[1], ids[0]]);

    // Status filter.
    let j = db
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.task_id, ids[0], "oldest first");
    let mut running = list(10, false, None);
    running.status = Some(TaskStatus::Running);
    assert_eq!(
        page(db.list_tasks(a, &running).await.unwrap()),
        vec![ids[0]]
    );
    running.status = Some(TaskStatus::Queued);
    assert_eq!(
        page(db.list_tasks(a, &running).await.unwrap()),
        ids[1..].to_vec()
    );

    // Found by the upload's name or by an output's name; newest first.
    let found = |name: &'static str, who: Uuid| {
        let db = db.clone();
        async move { db.task_with_file(who, name).await.unwrap().map(|t| t.id) }
    };
    assert_eq!(found("clip3.mp4", a).await, Some(ids[3]));
    assert_eq!(found("clip3.mp4", b).await, None);
    assert!(
        db.complete(&j, &[output("clip0_part_001.mp4")], None)
            .await
            .unwrap()
    );
    assert_eq!(found("clip0_part_001.mp4", a).await, Some(ids[0]));
    assert_eq!(found("clip0_part_002.mp4", a).await, None);
    assert_eq!(found("clip", a).await, None, "whole names only");

    let counts = db.count_by_status().await.unwrap();
    assert_eq!(counts.len(), TaskStatus::ALL.len());
    let n = |s: TaskStatus| counts.iter().find(|(st, _)| *st == s).unwrap().1;
    assert_eq!(
        (
            n(TaskStatus::Queued),
            n(TaskStatus::Succeeded),
            n(TaskStatus::Failed)
        ),
        (6, 1, 0)
    );
    db.ping().await.unwrap();
}

async fn progress_input_commands_and_result_round_trip(db: Db) {
    let (user, id) = task(&db, 3).await;
    let j = db
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let t = db.get_task(user, id).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.percent, t.attempts),
        (TaskStatus::Running, Some(0.0), 1)
    );

    assert!(
        db.set_progress(&j, Stage::Processing, 40.5, Some(12.25))
            .await
            .unwrap()
    );
    // Progress never goes backwards, and is clamped.
    assert!(
        db.set_progress(&j, Stage::Processing, 20.0, None)
            .await
            .unwrap()
    );
    let t = db.get_task(user, id).await.unwrap().unwrap();
    assert_eq!(
        (t.stage, t.percent, t.eta_seconds),
        (Some(Stage::Processing), Some(40.5), None)
    );
    assert!(
        db.set_progress(&j, Stage::Storing, 250.0, None)
            .await
            .unwrap()
    );
    assert_eq!(
        db.get_task(user, id).await.unwrap().unwrap().percent,
        Some(100.0)
    );

    let info = MediaInfo {
        duration: 61.433_333_333_333_33,
        format_name: "mov,mp4,m4a,3gp,3g2,mj2".into(),
        size: Some(u64::from(u32::MAX) * 3),
        video: Some(VideoStream {
            index: 0,
            codec: "h264".into(),
            width: 1920,
            height: 1080,
            fps: Some(30000.0 / 1001.0),
            pix_fmt: Some("yuv420p".into()),
            rotation: 90,
        }),
        audio: Some(AudioStream {
            index: 1,
            codec: "aac".into(),
            channels: 2,
            sample_rate: 48_000,
        }),
        stream_count: 3,
    };
    assert!(
        db.set_input(&j, &info, "tasks/x/input/a.mp4")
            .await
            .unwrap()
    );
    let commands = vec![
        "ffmpeg -i input/a.mp4 -c:v libx264 'out/a b.mp4'".to_string(),
        "ffmpeg -i \"quoted\" ünïcödé".to_string(),
    ];
    assert!(db.set_commands(&j, &commands).await.unwrap());
    let result = serde_json::json!({"input_size": 1_000_000_000_000u64, "ratio": 0.125,
        "ladder": [{"height": 720, "bitrate": "2800k"}], "note": null});
    let outs = vec![output("a_part_001.mp4"), output("a_part_002.mp4")];
    assert!(db.complete(&j, &outs, Some(&result)).await.unwrap());

    let t = db.get_task(user, id).await.unwrap().unwrap();
    assert_eq!(t.input, Some(info));
    assert_eq!(t.input_key.as_deref(), Some("tasks/x/input/a.mp4"));
    assert_eq!(t.commands, commands);
    assert_eq!(t.result, Some(result));
    assert_eq!(t.outputs, outs, "in order");
    assert_eq!((t.stage, t.eta_seconds), (None, None));
    for time in [Some(t.created_at), t.started_at, t.finished_at] {
        assert_eq!(time.unwrap().timestamp_subsec_micros() % 1000, 0, "ms");
    }
}

async fn retry_and_delete_follow_the_status(db: Db) {
    let (user, id) = task(&db, 1).await;
    assert!(matches!(
        db.retry_task(user, id, 3).await.unwrap(),
        RetryOutcome::NotRetryable(TaskStatus::Queued)
    ));
    assert!(matches!(
        db.retry_task(user, Uuid::now_v7(), 3).await.unwrap(),
        RetryOutcome::NotFound
    ));
    let j = db
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(
        db.set_progress(&j, Stage::Fetching, 3.0, None)
            .await
            .unwrap()
    );
    assert!(db.fail(&j, &err()).await.unwrap());
    let RetryOutcome::Requeued(t) = db.retry_task(user, id, 3).await.unwrap() else {
        panic!("failed tasks can be retried")
    };
    assert_eq!(
        (t.status, t.error, t.percent, t.finished_at),
        (TaskStatus::Queued, None, None, None)
    );
    // The attempt count restarts; the run count (output keys) does not.
    let j2 = db
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((j2.attempt, j2.max_attempts, j2.run), (1, 3, 2));

    let other = self::user(&db).await;
    assert!(
        db.delete_task(other, id).await.unwrap().is_none(),
        "not theirs"
    );
    let gone = db.delete_task(user, id).await.unwrap().unwrap();
    assert_eq!(gone.id, id);
    assert!(db.get_task(user, id).await.unwrap().is_none());
    assert!(db.task_for_job(id).await.unwrap().is_none());
    // The job went with it: the worker's writes are refused, nothing is claimable.
    assert!(!db.heartbeat(&j2, Duration::from_secs(30)).await.unwrap());
    assert!(!db.complete(&j2, &[], None).await.unwrap());
    assert!(
        db.claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.delete_task(user, id).await.unwrap().is_none());
}

async fn writes_after_claim_need_the_lease(db: Db) {
    let (user, id) = task(&db, 3).await;
    let j = db
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let info = MediaInfo {
        duration: 1.0,
        format_name: "wav".into(),
        size: None,
        video: None,
        audio: None,
        stream_count: 0,
    };
    let x = as_owner(&j, "x");
    assert!(
        !db.set_progress(&x, Stage::Probing, 5.0, None)
            .await
            .unwrap()
    );
    assert!(!db.set_input(&x, &info, "k").await.unwrap());
    assert!(!db.set_commands(&x, &["c".into()]).await.unwrap());
    assert!(!db.retry_later(&x, &err(), Duration::ZERO).await.unwrap());
    assert!(!db.release(&x).await.unwrap());
    assert!(!db.fail(&x, &err()).await.unwrap());
    assert!(!db.complete(&x, &[], None).await.unwrap());
    let t = db.get_task(user, id).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.input, t.commands.len()),
        (TaskStatus::Running, None, 0)
    );
    // The holder's retry puts it back with its note; a zero delay is due at once.
    assert!(db.retry_later(&j, &err(), Duration::ZERO).await.unwrap());
    assert_eq!(
        db.claim("w2", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap()
            .attempt,
        2
    );
}

async fn a_release_gives_the_attempt_back_and_attempts_never_exceed_the_maximum(db: Db) {
    let (user, id) = task(&db, 3).await;
    let shown = |db: Db| async move {
        let t = db.get_task(user, id).await.unwrap().unwrap();
        (t.status, t.attempts)
    };
    // Three rolling restarts, each releasing the run at shutdown: no attempt is used up.
    for run in 1..=3 {
        let j = db
            .claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((j.attempt, j.run), (1, run));
        assert_eq!(shown(db.clone()).await, (TaskStatus::Running, 1));
        assert!(db.release(&j).await.unwrap());
        assert_eq!(shown(db.clone()).await, (TaskStatus::Queued, 0));
    }
    // Holders that die (lease expired, nothing released) do use their attempts; the one
    // claim past the maximum (which the worker turns into `too_many_attempts`) still reads
    // 3 of 3.
    let lease = Duration::from_millis(50);
    let mut last = None;
    for attempt in 1..=4 {
        let j = db.claim("dying", lease).await.unwrap().unwrap();
        assert_eq!(
            (j.attempt, j.max_attempts, j.run),
            (attempt, 3, attempt + 3)
        );
        assert_eq!(
            shown(db.clone()).await,
            (TaskStatus::Running, attempt.min(3))
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        last = Some(j);
    }
    let last = last.unwrap();
    assert!(db.heartbeat(&last, Duration::from_secs(30)).await.unwrap());
    assert!(db.fail(&last, &err()).await.unwrap());
    assert_eq!(shown(db.clone()).await, (TaskStatus::Failed, 3));
    // A retry by the user starts the count again.
    assert!(matches!(
        db.retry_task(user, id, 3).await.unwrap(),
        RetryOutcome::Requeued(_)
    ));
    assert_eq!(shown(db.clone()).await, (TaskStatus::Queued, 0));
    let j = db
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((j.attempt, j.run), (1, 8));
    assert_eq!(shown(db.clone()).await, (TaskStatus::Running, 1));
}

async fn a_task_waiting_to_retry_shows_the_error_and_when_it_runs_next(db: Db) {
    let (user, id) = task(&db, 3).await;
    let lease = Duration::from_secs(30);
    let get = |db: Db| async move { db.get_task(user, id).await.unwrap().unwrap() };
    let j = db.claim("w", lease).await.unwrap().unwrap();
    let delay = Duration::from_millis(400);
    let before = chrono::Utc::now();
    assert!(db.retry_later(&j, &err(), delay).await.unwrap());
    let after = chrono::Utc::now();
    let t = get(db.clone()).await;
    assert_eq!(
        (t.status, &t.error, t.attempts),
        (TaskStatus::Queued, &Some(err()), 1)
    );
    let next = t.next_attempt_at.expect("when the next attempt is due");
    // Millisecond times (PostgreSQL's from its own clock, on this machine).
    let slack = chrono::TimeDelta::milliseconds(5);
    let delay = chrono::TimeDelta::from_std(delay).unwrap();
    assert!(
        next >= before + delay - slack && next <= after + delay + slack,
        "{before} + 400 ms <= {next} <= {after} + 400 ms"
    );
    // The API object says the same.
    let view = t.view();
    assert_eq!(
        (view.next_attempt_at, view.error),
        (Some(next), Some(err()))
    );
    // Not claimable before that time; when it runs again, the wait is over.
    assert!(db.claim("w", lease).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(450)).await;
    let j = db.claim("w", lease).await.unwrap().unwrap();
    let t = get(db.clone()).await;
    assert_eq!(
        (t.status, t.error, t.next_attempt_at, t.attempts),
        (TaskStatus::Running, None, None, 2)
    );
    // A cancel while waiting ends the wait too.
    assert!(
        db.retry_later(&j, &err(), Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(get(db.clone()).await.next_attempt_at.is_some());
    let (t, _) = db.cancel_task(user, id).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.error, t.next_attempt_at),
        (TaskStatus::Cancelled, None, None)
    );
    // A release (shutdown) is no failure: nothing to show.
    let (user2, id2) = task(&db, 3).await;
    let j = db.claim("w", lease).await.unwrap().unwrap();
    assert!(db.release(&j).await.unwrap());
    let t = db.get_task(user2, id2).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.error, t.next_attempt_at),
        (TaskStatus::Queued, None, None)
    );
    // A success clears the last failure.
    let j = db.claim("w", lease).await.unwrap().unwrap();
    assert!(db.retry_later(&j, &err(), Duration::ZERO).await.unwrap());
    let j = db.claim("w", lease).await.unwrap().unwrap();
    assert!(db.complete(&j, &[], None).await.unwrap());
    let t = db.get_task(user2, id2).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.error, t.next_attempt_at),
        (TaskStatus::Succeeded, None, None)
    );
}

// --- One backend only ---------------------------------------------------------------------

/// Embedded mode: one process owns the database, so at start-up every `running` job is an
/// orphan, whatever its lease says.
#[tokio::test]
async fn sqlite_recovery_requeues_every_running_job() {
    let t = TestDb::sqlite().await;
    let db = t.db.clone();
    let (user, id) = task(&db, 3).await;
    db.claim("dead", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db.recover_running().await.unwrap(), 1);
    assert_eq!(
        db.get_task(user, id).await.unwrap().unwrap().status,
        TaskStatus::Queued
    );
}

/// PostgreSQL: other live processes hold leases; recovery must leave them alone.
#[tokio::test]
async fn postgres_recovery_leaves_live_leases_alone() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let db = t.db.clone();
    let (user, id) = task(&db, 3).await;
    let j = db
        .claim("alive", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db.recover_running().await.unwrap(), 0);
    assert_eq!(
        db.get_task(user, id).await.unwrap().unwrap().status,
        TaskStatus::Running
    );
    assert!(db.heartbeat(&j, Duration::from_secs(30)).await.unwrap());
}

/// Claimers racing over one queue, through two pools (two "processes"): every job is handed
/// out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_claimers_never_share_a_job() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let other = t.second_pool().await;
    let user = user(&t.db).await;
    let mut tasks = HashSet::new();
    for _ in 0..50 {
        tasks.insert(task_for(&t.db, user, url_source(), 3).await);
    }
    let mut claimers = vec![];
    for i in 0..8 {
        let db = if i % 2 == 0 {
            t.db.clone()
        } else {
            other.clone()
        };
        claimers.push(tokio::spawn(async move {
            // An owner holds one job at a time (a claim again would return it): each claim
            // stands for a worker loop of its own.
            let mut got = vec![];
            loop {
                let owner = format!("claimer-{i}-{}", got.len());
                match db.claim(&owner, Duration::from_secs(60)).await.unwrap() {
                    Some(j) => got.push(j),
                    None => break got,
                }
            }
        }));
    }
    let mut claimed = vec![];
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    let distinct: HashSet<Uuid> = claimed.iter().map(|j| j.task_id).collect();
    assert_eq!(claimed.len(), 50, "one claim per job");
    assert_eq!(distinct, tasks);
    assert!(claimed.iter().all(|j| (j.attempt, j.run) == (1, 1)));
    assert!(
        t.db.claim("late", Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
}

/// An idle worker waiting in `wait_for_job` wakes on an enqueue made through another pool,
/// well before its polling timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_wakes_an_idle_waiter_quickly() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let waiter = t.db.clone();
    // The first call starts the listener and returns at once (it may have missed a job).
    assert!(waiter.wait_for_job(Duration::from_secs(5)).await);
    // Nothing queued: the poll timeout ends the wait.
    let started = Instant::now();
    assert!(!waiter.wait_for_job(Duration::from_millis(200)).await);
    assert!(started.elapsed() >= Duration::from_millis(190));

    let other = t.second_pool().await;
    let user = user(&other).await;
    for round in 0..3 {
        let w = waiter.clone();
        let wait = tokio::spawn(async move {
            let woke = w.wait_for_job(Duration::from_secs(5)).await;
            (woke, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let enqueued = Instant::now();
        task_for(&other, user, url_source(), 3).await;
        let (woke, at) = wait.await.unwrap();
        let latency = at.saturating_duration_since(enqueued);
        eprintln!("round {round}: woken {latency:?} after the enqueue started");
        assert!(woke, "round {round}: woken by NOTIFY, not the timeout");
        assert!(
            latency < Duration::from_millis(100),
            "round {round}: woke {latency:?} after the enqueue"
        );
        let j = waiter
            .claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert!(waiter.release(&j).await.unwrap());
        // The release notified too; take that wake-up and the job out of the way.
        assert!(waiter.wait_for_job(Duration::from_secs(1)).await);
        let j = waiter
            .claim("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert!(waiter.fail(&j, &err()).await.unwrap());
    }
}

// --- Lock order: the API's writes against a worker's (PostgreSQL) --------------------------
//
// A worker's transactions lock a job row, then its task (claim, finish, retry_later,
// release). A transaction of the API that locks them the other way round waits on the worker
// while the worker waits on it, until PostgreSQL's deadlock detector aborts one after
// deadlock_timeout (1 s): for a delete, a 500 after more than a second. Each test below holds
// the other transaction open by hand after its first lock, starts the API's call, waits until
// that call is blocked on a lock, then lets the other transaction take its second lock: in
// the wrong order that is a deadlock, and the API's call (the one waiting longest) is aborted
// with 40P01.

/// A connection of the test's own to the test database (another process, to PostgreSQL).
async fn connection(t: &TestDb) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(t.pg_url()).await.unwrap()
}

/// Wait until a session of the test database waits for a lock (the API's call got to it).
/// The claim by worker `w` of `job` (task `task`, first attempt) no longer holds its lease.
async fn assert_claim_lost(t: &TestDb, job: Uuid, task: Uuid) {
    let lease = Lease {
        job_id: job,
        task_id: task,
        owner: "w".into(),
        attempt: 1,
        max_attempts: 3,
        run: 1,
    };
    assert!(
        !t.db
            .heartbeat(&lease, Duration::from_secs(30))
            .await
            .unwrap()
    );
}

async fn until_blocked(watcher: &mut sqlx::PgConnection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *watcher)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the call never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A delete while a claim of the task's job is half-way (job locked, task not yet): the
/// delete waits for the claim, then removes the task it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_delete_racing_a_claim_waits_for_it() {
    use sqlx::Connection;
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let (user, id) = task(&t.db, 3).await;
    let mut watcher = connection(&t).await;
    let mut worker = connection(&t).await;
    let mut claim = worker.begin().await.unwrap();
    let job = sql::claim_job(&mut *claim, "w", 30_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.task_id, Some(id));
    let db = t.db.clone();
    let started = Instant::now();
    let delete = tokio::spawn(async move { db.delete_task(user, id).await });
    until_blocked(&mut watcher).await;
    sql::start_task(&mut *claim, id, 1)
        .await
        .expect("the claim takes the task");
    claim.commit().await.unwrap();
    let deleted = delete.await.unwrap();
    let deleted = deleted.expect("the delete waits for the claim, no deadlock");
    assert_eq!(deleted.map(|t| t.id), Some(id));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no deadlock_timeout went by: {:?}",
        started.elapsed()
    );
    assert!(t.db.task_for_job(id).await.unwrap().is_none());
    assert_claim_lost(&t, job.id, id).await;
}

/// A cancel while a claim is half-way: it waits, then cancels the task the claim started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cancel_racing_a_claim_waits_for_it() {
    use sqlx::Connection;
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let (user, id) = task(&t.db, 3).await;
    let mut watcher = connection(&t).await;
    let mut worker = connection(&t).await;
    let mut claim = worker.begin().await.unwrap();
    let job = sql::claim_job(&mut *claim, "w", 30_000)
        .await
        .unwrap()
        .unwrap();
    let db = t.db.clone();
    let cancel = tokio::spawn(async move { db.cancel_task(user, id).await });
    until_blocked(&mut watcher).await;
    sql::start_task(&mut *claim, id, 1)
        .await
        .expect("the claim takes the task");
    claim.commit().await.unwrap();
    let cancelled = cancel.await.unwrap();
    let (task, changed) = cancelled
        .expect("the cancel waits for the claim, no deadlock")
        .unwrap();
    assert!(changed);
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert!(task.started_at.is_some(), "the claim's start came first");
    assert_claim_lost(&t, job.id, id).await;
}

/// A retry while a delete is half-way (job locked, task not yet deleted): the retry waits and
/// finds nothing left to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_retry_racing_a_delete_waits_for_it() {
    use sqlx::Connection;
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let (user, id) = task(&t.db, 3).await;
    assert!(t.db.cancel_task(user, id).await.unwrap().unwrap().1);
    let mut watcher = connection(&t).await;
    let mut other = connection(&t).await;
    let mut delete = other.begin().await.unwrap();
    assert_eq!(
        sql::lock_job_of_task(&mut *delete, id, user).await.unwrap(),
        1
    );
    let db = t.db.clone();
    let retry = tokio::spawn(async move { db.retry_task(user, id, 3).await });
    until_blocked(&mut watcher).await;
    let gone = sql::delete_task(&mut *delete, id, user)
        .await
        .expect("the delete takes the task");
    assert!(gone.is_some());
    delete.commit().await.unwrap();
    let retried = retry.await.unwrap();
    let retried = retried.expect("the retry waits for the delete, no deadlock");
    assert!(matches!(retried, RetryOutcome::NotFound), "{retried:?}");
}

// --- Upgrades -------------------------------------------------------------------------------

/// The ids of `alice`, then `ALICE`, `Alice` and `bob`, made before user names became
/// case-insensitive: in creation (UUIDv7) order.
const OLD_USERS: [(&str, &str); 4] = [
    ("01900000-0000-7000-8000-000000000001", "alice"),
    ("01900000-0000-7000-8000-000000000002", "ALICE"),
    ("01900000-0000-7000-8000-000000000003", "Alice"),
    ("01900000-0000-7000-8000-000000000004", "bob"),
];

/// A migrator of the first `n` migrations of `backend` (`sqlite` or `postgres`): the schema of
/// an older installation.
async fn first_migrations(backend: &str, n: usize) -> (tempfile::TempDir, sqlx::migrate::Migrator) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut files: Vec<_> = std::fs::read_dir(&from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let dir = tempfile::tempdir().unwrap();
    for f in &files[..n] {
        std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    (dir, migrator)
}

/// After the upgrade: the oldest keeps the name, later case variants get their id's end.
async fn assert_case_duplicates_renamed(db: &Db) {
    let names: Vec<String> = db
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(
        names,
        ["alice", "ALICE-000000000002", "Alice-000000000003", "bob"]
    );
    let found = db.user_for_login("ALICE").await.unwrap().unwrap();
    assert_eq!(found.user.id.to_string(), OLD_USERS[0].0);
    // The renamed keep their e-mail, and the new name works.
    let by_email = db
        .user_for_login("alice2@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email.user.username, "ALICE-000000000002");
    assert!(
        db.user_for_login("alice-000000000002")
            .await
            .unwrap()
            .is_some()
    );
}

fn old_email(i: usize) -> String {
    format!("alice{}@example.com", i + 1)
}

#[tokio::test]
async fn sqlite_upgrade_renames_users_that_differ_only_in_case() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let (_files, old) = first_migrations("sqlite", 3).await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    old.run(&pool).await.unwrap();
    for (i, (id, name)) in OLD_USERS.iter().enumerate() {
        sqlx::query(
            "INSERT INTO users (id, username, email, email_lower, password_hash, created_at) \
             VALUES (?, ?, ?, ?, 'x', 0)",
        )
        .bind(id)
        .bind(name)
        .bind(old_email(i))
        .bind(old_email(i))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let db = reelforge::db::connect(&url).await.unwrap();
    assert_case_duplicates_renamed(&db).await;
}

#[tokio::test]
async fn postgres_upgrade_renames_users_that_differ_only_in_case() {
    let Some(pg) = reelforge_testkit::pg::PgDatabase::create().await else {
        return;
    };
    let (_files, old) = first_migrations("postgres", 2).await;
    let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
    old.run(&pool).await.unwrap();
    for (i, (id, name)) in OLD_USERS.iter().enumerate() {
        sqlx::query(
            "INSERT INTO users (id, username, email, email_lower, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, 'x', now())",
        )
        .bind(Uuid::parse_str(id).unwrap())
        .bind(name)
        .bind(old_email(i))
        .bind(old_email(i))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let db = reelforge::db::connect(&pg.url).await.unwrap();
    assert_case_duplicates_renamed(&db).await;
}

async fn sessions_expire_idle_or_absolute_and_end_with_a_password_change(db: Db) {
    let long = SessionTimeouts {
        idle: Duration::from_secs(3600),
        absolute: Duration::from_secs(3600),
    };
    let alice = user(&db).await;
    let s = db
        .create_session(alice, "hash-a", "csrf-a", long)
        .await
        .unwrap();
    assert_eq!((s.user_id, s.csrf_token.as_str()), (alice, "csrf-a"));
    let live = db.live_session("hash-a", long.idle).await.unwrap().unwrap();
    assert_eq!(live.id, s.id);
    assert!(
        db.live_session("hash-x", long.idle)
            .await
            .unwrap()
            .is_none()
    );
    // Idle: not seen for longer than the idle timeout (it was seen at creation).
    tokio::time::sleep(Duration::from_millis(30)).await;
    let short_idle = Duration::from_millis(10);
    assert!(
        db.live_session("hash-a", short_idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.live_session("hash-a", long.idle)
            .await
            .unwrap()
            .is_some()
    );
    // Absolute: past its end, whatever the activity.
    let brief = SessionTimeouts {
        idle: Duration::from_secs(3600),
        absolute: Duration::from_millis(10),
    };
    db.create_session(alice, "hash-b", "csrf-b", brief)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        db.live_session("hash-b", brief.idle)
            .await
            .unwrap()
            .is_none()
    );
    // The sweep deletes expired sessions only; a new log-in sweeps too.
    assert_eq!(db.delete_expired_sessions(long.idle).await.unwrap(), 1);
    db.create_session(alice, "hash-c", "csrf-c", brief)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    db.create_session(alice, "hash-d", "csrf-d", long)
        .await
        .unwrap();
    assert_eq!(db.delete_expired_sessions(long.idle).await.unwrap(), 0);
    // A disabled user's sessions are not live.
    let name = db.user_by_id(alice).await.unwrap().unwrap().username;
    db.set_user_disabled(&name, true).await.unwrap();
    assert!(
        db.live_session("hash-a", long.idle)
            .await
            .unwrap()
            .is_none()
    );
    db.set_user_disabled(&name, false).await.unwrap();
    // Log-out deletes one session; a password change all of the user's, not others'.
    let bob = user(&db).await;
    db.create_session(bob, "hash-bob", "csrf", long)
        .await
        .unwrap();
    assert!(db.delete_session("hash-d").await.unwrap());
    assert!(!db.delete_session("hash-d").await.unwrap());
    assert!(db.change_password(alice, "new-hash").await.unwrap());
    assert!(
        db.live_session("hash-a", long.idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.live_session("hash-bob", long.idle)
            .await
            .unwrap()
            .is_some()
    );
    let stored = db.user_for_login(&name).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, "new-hash");
    assert!(!db.change_password(Uuid::now_v7(), "h").await.unwrap());
}

async fn shares_are_owner_scoped_expire_and_go_with_their_task(db: Db) {
    let (alice, id) = task(&db, 3).await;
    let bob = user(&db).await;
    let week = Duration::from_secs(7 * 24 * 3600);
    assert!(
        db.create_share(bob, id, "h-bob", week)
            .await
            .unwrap()
            .is_none()
    );
    let share = db
        .create_share(alice, id, "h-1", week)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db.shared_task("h-1").await.unwrap().unwrap().id, id);
    assert!(db.shared_task("h-bob").await.unwrap().is_none());
    assert_eq!(
        db.list_shares(alice, id).await.unwrap(),
        vec![share.clone()]
    );
    assert!(db.list_shares(bob, id).await.unwrap().is_empty());
    assert!(!db.delete_share(bob, id, share.id).await.unwrap());
    // Expired: neither opens nor is listed.
    db.create_share(alice, id, "h-2", Duration::from_millis(10))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(db.shared_task("h-2").await.unwrap().is_none());
    assert_eq!(db.list_shares(alice, id).await.unwrap().len(), 1);
    // Revoked.
    assert!(db.delete_share(alice, id, share.id).await.unwrap());
    assert!(db.shared_task("h-1").await.unwrap().is_none());
    // Gone with the task.
    db.create_share(alice, id, "h-3", week)
        .await
        .unwrap()
        .unwrap();
    db.delete_task(alice, id).await.unwrap().unwrap();
    assert!(db.shared_task("h-3").await.unwrap().is_none());
    assert!(db.list_shares(alice, id).await.unwrap().is_empty());
}

/// What `reelforge_queue_oldest_seconds` is made from: the due time of the queued job that
/// waits longest; claimed jobs and jobs not yet due are not waiting.
async fn the_oldest_due_job_is_the_one_waiting_longest(db: Db) {
    let ms = chrono::Duration::milliseconds(1);
    let before = chrono::Utc::now();
    assert_eq!(
        db.oldest_due_job(before).await.unwrap(),
        None,
        "nothing queued"
    );
    task(&db, 3).await;
    let between = chrono::Utc::now();
    task(&db, 3).await;
    let after = chrono::Utc::now();
    let later = after + chrono::Duration::hours(1);
    let first = db.oldest_due_job(later).await.unwrap().unwrap();
    assert!(
        first >= before - ms && first <= between + ms,
        "{before} {first} {between}"
    );
    assert_eq!(
        db.oldest_due_job(before - chrono::Duration::seconds(1))
            .await
            .unwrap(),
        None
    );

    let j = db
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let second = db.oldest_due_job(later).await.unwrap().unwrap();
    assert!(
        second >= between - ms && second <= after + ms,
        "the claimed one no longer waits"
    );
    assert!(
        db.retry_later(&j, &err(), Duration::from_secs(600))
            .await
            .unwrap()
    );
    assert_eq!(db.oldest_due_job(later).await.unwrap(), Some(second));
    db.claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db.oldest_due_job(after).await.unwrap(),
        None,
        "the retry is not due yet"
    );
    let retry = db.oldest_due_job(later).await.unwrap().unwrap();
    assert!(retry >= after + chrono::Duration::seconds(599), "{retry}");
}

/// Deletes racing claims of the same task: every delete succeeds at once (on PostgreSQL a
/// delete that locked the task before the job deadlocked with a claim that locked the job
/// first), and a claim that won the race holds a lease the delete voided.
async fn deletes_racing_claims_all_succeed(db: Db) {
    let user = user(&db).await;
    for round in 0..50 {
        let id = task_for(&db, user, url_source(), 3).await;
        let owner = format!("w{round}");
        let started = Instant::now();
        let (claimed, deleted) = tokio::join!(
            db.claim(&owner, Duration::from_secs(30)),
            db.delete_task(user, id)
        );
        let deleted = deleted.unwrap_or_else(|e| panic!("round {round}: delete failed: {e}"));
        assert_eq!(deleted.map(|t| t.id), Some(id), "round {round}");
        let claimed = claimed.unwrap_or_else(|e| panic!("round {round}: claim failed: {e}"));
        if let Some(lease) = claimed {
            assert_eq!(lease.task_id, id);
            assert!(!db.heartbeat(&lease, Duration::from_secs(30)).await.unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "round {round}: took {:?}",
            started.elapsed()
        );
    }
}

/// The change feed the read caches follow (`db::cache`): writes of another process are
/// announced, with the owner of a changed task.
#[tokio::test]
async fn postgres_announces_every_change_a_cached_read_could_show() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let mut feed =
        t.db.changes()
            .await
            .unwrap()
            .expect("PostgreSQL has a change feed");
    // Written by another pool: another process, as far as the database can tell.
    let other = t.second_pool().await;
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), feed.recv())
            .await
            .expect("a change within 10 s")
            .unwrap()
    };
    let user = user(&other).await;
    let task = task_for(&other, user, url_source(), 3).await;
    assert_eq!(
        next().await,
        reelforge::db::cache::Change::Task {
            id: task,
            user: Some(user)
        }
    );
    other.cancel_task(user, task).await.unwrap().unwrap();
    assert_eq!(
        next().await,
        reelforge::db::cache::Change::Task {
            id: task,
            user: Some(user)
        }
    );
    let name = other.user_by_id(user).await.unwrap().unwrap().username;
    assert!(other.set_user_disabled(&name, true).await.unwrap());
    assert_eq!(next().await, reelforge::db::cache::Change::User(user));
}
