//! The queue benchmark's client (`bench/queue/run.sh`): the service's own PostgreSQL
//! repository (`reelforge::db::connect`, `JobQueue::claim`/`complete`/`fail`,
//! `TaskRepo::list_tasks`), timed call by call.
//!
//!   queue_bench populate URL FINISHED QUEUED USERS
//!   queue_bench explain  URL          (one claim + complete, a first and a deep list page)
//!   queue_bench measure  URL CLAIMS LISTS
//!
//! `populate` creates the users and one template task through the repository (so the JSON
//! columns are exactly what the service writes), then bulk-inserts the tasks and their jobs
//! with `generate_series` (spread over the last 30 days, ids UUIDv7 of their creation time,
//! like the service's) and runs `VACUUM ANALYZE`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use reelforge::db::{Db, Lease, ListQuery, NewTask, NewUser};
use reelforge::domain::task::parse_profile;
use reelforge::domain::{EmailAddress, OutputFile, Source, TaskError, Username};
use reelforge::media::probe::{AudioStream, MediaInfo, VideoStream};
use reelforge::storage::keys;
use sqlx::Connection;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("queue_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["populate", url, finished, queued, users] => {
                populate(url, finished.parse()?, queued.parse()?, users.parse()?).await
            }
            ["explain", url] => explain(url).await,
            ["measure", url, claims, lists] => measure(url, claims.parse()?, lists.parse()?).await,
            _ => bail!(
                "usage: queue_bench populate URL FINISHED QUEUED USERS | explain URL | \
                 measure URL CLAIMS LISTS"
            ),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("queue_bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Three 22 s parts at 640×360, as an idrl run of a 66 s upload produces.
fn outputs() -> Vec<OutputFile> {
    (1..=3)
        .map(|i| OutputFile {
            name: format!("holiday_part_{i:03}.mp4"),
            key: keys::output(Uuid::nil(), 1, &format!("holiday_part_{i:03}.mp4")),
            size: 4_812_345,
            duration: Some(22.0),
            width: Some(640),
            height: Some(360),
            video_codec: Some("h264".into()),
            audio_codec: Some("aac".into()),
        })
        .collect()
}

fn input() -> MediaInfo {
    MediaInfo {
        duration: 66.0,
        format_name: "mov,mp4,m4a,3gp,3g2,mj2".into(),
        size: Some(48_000_000),
        video: Some(VideoStream {
            index: 0,
            codec: "h264".into(),
            width: 1920,
            height: 1080,
            fps: Some(30.0),
            pix_fmt: Some("yuv420p".into()),
            rotation: 0,
        }),
        audio: Some(AudioStream {
            index: 1,
            codec: "aac".into(),
            channels: 2,
            sample_rate: 48000,
        }),
        stream_count: 2,
    }
}

async fn populate(url: &str, finished: u64, queued: u64, users: u32) -> anyhow::Result<()> {
    let db = reelforge::db::connect(url).await?;
    let started = Instant::now();
    let mut template_user = None;
    for i in 0..users {
        let u = db
            .create_user(NewUser {
                username: Username::parse(&format!("user{i:03}")).map_err(anyhow::Error::msg)?,
                email: EmailAddress::parse(&format!("user{i:03}@example.com"))
                    .map_err(anyhow::Error::msg)?,
                // Nobody logs in as these users.
                password_hash: "not-a-password-hash".into(),
                admin: false,
                invite_hash: None,
            })
            .await?;
        template_user.get_or_insert(u.id);
    }
    let user = template_user.context("no users")?;
    let template = Uuid::now_v7();
    let profile =
        parse_profile(Some("idrl"), None).map_err(|(f, m)| anyhow::anyhow!("{f}: {m}"))?;
    db.create_task(
        NewTask {
            id: template,
            user_id: user,
            profile,
            source: Source::Upload {
                filename: "holiday.mp4".into(),
                size: 48_000_000,
            },
            input_key: Some(keys::input(template, "holiday.mp4")),
            webhook_url: None,
            keep_seconds: None,
        },
        3,
    )
    .await?;
    let commands: Vec<String> = (1..=3)
        .map(|i| {
            format!(
                "ffmpeg -nostdin -y -protocol_whitelist file -i in/holiday.mp4 -ss {} -t 22 \
                 -vf scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:-1:-1,fps=24 \
                 -c:v libx264 -preset veryfast -crf 19 -c:a aac -b:a 128k out/holiday_part_{i:03}.mp4",
                (i - 1) * 22
            )
        })
        .collect();

    let mut conn = sqlx::PgConnection::connect(url).await?;
    // Finished tasks first (oldest), then the queued ones (newest); g orders creation time.
    let total = finished + queued;
    let sql = "
        WITH tpl AS (SELECT profile, source, input_key FROM tasks WHERE id = $1),
             u AS (SELECT array_agg(id ORDER BY id) AS ids FROM users),
             g AS (
               SELECT g, now() - interval '30 days' + (interval '30 days') * g / ($3 + $4) AS at,
                      CASE WHEN g > $3 THEN 'queued'
                           WHEN g % 100 < 90 THEN 'succeeded'
                           WHEN g % 100 < 97 THEN 'failed'
                           ELSE 'cancelled' END AS status
               FROM generate_series(1, $3 + $4) AS g)
        INSERT INTO tasks (id, user_id, status, profile, source, input, input_key, stage, percent,
                           outputs, error_code, error_message, attempts, commands, created_at,
                           started_at, finished_at)
        SELECT (lpad(to_hex((extract(epoch FROM date_trunc('milliseconds', g.at)) * 1000)::bigint), 12, '0')
                  || '7' || substr(md5(g::text), 1, 3) || '8' || substr(md5(g::text || 'x'), 1, 15))::uuid,
               u.ids[1 + g % array_length(u.ids, 1)],
               g.status, tpl.profile, tpl.source,
               CASE WHEN g.status IN ('succeeded', 'failed') THEN $5::jsonb END,
               tpl.input_key, NULL,
               CASE WHEN g.status = 'succeeded' THEN 100 WHEN g.status = 'queued' THEN NULL ELSE 40 END,
               CASE WHEN g.status = 'succeeded' THEN $6::jsonb ELSE '[]'::jsonb END,
               CASE WHEN g.status = 'failed' THEN 'media_invalid' END,
               CASE WHEN g.status = 'failed' THEN 'not a supported media file' END,
               CASE WHEN g.status = 'queued' THEN 0 ELSE 1 END,
               CASE WHEN g.status IN ('succeeded', 'failed') THEN $7::jsonb ELSE '[]'::jsonb END,
               date_trunc('milliseconds', g.at),
               CASE WHEN g.status = 'queued' THEN NULL ELSE date_trunc('milliseconds', g.at) + interval '20 ms' END,
               CASE WHEN g.status = 'queued' THEN NULL ELSE date_trunc('milliseconds', g.at) + interval '41 s' END
        FROM g, tpl, u";
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(template)
        .bind(users as i64)
        .bind(finished as i64)
        .bind(queued as i64)
        .bind(serde_json::to_value(input())?)
        .bind(serde_json::to_value(outputs())?)
        .bind(serde_json::to_value(&commands)?)
        .execute(&mut conn)
        .await?
        .rows_affected();
    anyhow::ensure!(n == total, "inserted {n} tasks, wanted {total}");
    let jobs = sqlx::query(
        "INSERT INTO jobs (id, task_id, kind, state, run_at, attempts, max_attempts, created_at)
         SELECT (lpad(to_hex((extract(epoch FROM created_at) * 1000)::bigint), 12, '0')
                   || '7' || substr(md5(id::text), 1, 3) || '9' || substr(md5(id::text || 'j'), 1, 15))::uuid,
                id, 'process', CASE WHEN status = 'queued' THEN 'queued' ELSE 'done' END,
                created_at, attempts, 3, created_at
         FROM tasks WHERE id <> $1",
    )
    .bind(template)
    .execute(&mut conn)
    .await?
    .rows_affected();
    anyhow::ensure!(jobs == total, "inserted {jobs} jobs, wanted {total}");
    // The template was only there to be copied.
    db.delete_task(user, template)
        .await?
        .context("template task vanished")?;
    sqlx::query("VACUUM ANALYZE").execute(&mut conn).await?;
    conn.close().await?;
    println!(
        "populated: {users} users, {finished} finished + {queued} queued tasks (and jobs) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Claim one job and complete it; list one user's first page and a deep page.
async fn explain(url: &str) -> anyhow::Result<()> {
    let db = reelforge::db::connect(url).await?;
    let job = db
        .claim("bench:explain", LEASE)
        .await?
        .context("nothing to claim")?;
    finish(&db, &job, 0).await?;
    let user = db.list_users().await?.first().context("no users")?.id;
    let (first, deep) = pages(&db, user).await?;
    println!(
        "explain: claimed and completed one job; listed {first} tasks (first page) and {deep} (page 10)"
    );
    Ok(())
}

/// The list call as `GET /api/tasks?max=100` makes it (one more row tells whether a next
/// page exists).
fn page(after: Option<Uuid>) -> ListQuery {
    ListQuery {
        limit: 101,
        descending: true,
        status: None,
        after,
    }
}

/// The first page, then pages 2..=10 by cursor; returns the row counts of pages 1 and 10.
async fn pages(db: &Db, user: Uuid) -> anyhow::Result<(usize, usize)> {
    let first = db.list_tasks(user, &page(None)).await?;
    let mut last = first.clone();
    for _ in 2..=10 {
        let cursor = last
            .get(99)
            .map(|t| t.id)
            .context("user has fewer than 1000 tasks")?;
        last = db.list_tasks(user, &page(Some(cursor))).await?;
    }
    Ok((first.len(), last.len()))
}

/// Complete nine jobs in ten (three outputs), fail the tenth.
async fn finish(db: &Db, job: &Lease, i: usize) -> anyhow::Result<()> {
    let ok = if i % 10 == 9 {
        let err = TaskError {
            code: "media_invalid".into(),
            message: "not a supported media file".into(),
        };
        db.fail(job, &err).await?
    } else {
        db.complete(job, &outputs(), None).await?
    };
    anyhow::ensure!(ok, "lost the lease of {}", job.job_id);
    Ok(())
}

fn report(name: &str, mut samples: Vec<Duration>, target_ms: Option<f64>) {
    samples.sort_unstable();
    let pct = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1000.0 / samples.len() as f64;
    let target = match target_ms {
        Some(t) if pct(0.99) < t => format!("  (target p99 < {t} ms: met)"),
        Some(t) => format!("  (target p99 < {t} ms: NOT MET)"),
        None => String::new(),
    };
    println!(
        "{name}: n={} mean_ms={mean:.3} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3}{target}",
        samples.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
    );
}

async fn measure(url: &str, claims: usize, lists: usize) -> anyhow::Result<()> {
    let db = reelforge::db::connect(url).await?;
    let owner = format!("bench:{}", std::process::id());
    // Warm the pool and the caches a little, like a running service.
    for i in 0..20 {
        let job = db.claim(&owner, LEASE).await?.context("queue empty")?;
        finish(&db, &job, i).await?;
    }
    let mut claim = Vec::with_capacity(claims);
    let mut done = Vec::with_capacity(claims);
    for i in 0..claims {
        let t = Instant::now();
        let job = db.claim(&owner, LEASE).await?.context("queue empty")?;
        claim.push(t.elapsed());
        let t = Instant::now();
        finish(&db, &job, i).await?;
        done.push(t.elapsed());
    }
    report("claim", claim, Some(5.0));
    report("complete_or_fail", done, None);

    let users = db.list_users().await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Each user's cursor for page 10 (the ids after which page 10 starts).
    let mut deep_cursor = Vec::with_capacity(users.len());
    for u in &users {
        let mut last = db.list_tasks(u.id, &page(None)).await?;
        for _ in 2..10 {
            let c = last
                .get(99)
                .map(|t| t.id)
                .context("user has fewer than 1000 tasks")?;
            last = db.list_tasks(u.id, &page(Some(c))).await?;
        }
        deep_cursor.push(last.get(99).map(|t| t.id).context("short page 9")?);
    }
    let mut first = Vec::with_capacity(lists);
    let mut deep = Vec::with_capacity(lists);
    let mut rows = 0usize;
    for _ in 0..lists {
        let i = rng.random_range(0..users.len());
        let t = Instant::now();
        rows += db.list_tasks(users[i].id, &page(None)).await?.len();
        first.push(t.elapsed());
        let t = Instant::now();
        rows += db
            .list_tasks(users[i].id, &page(Some(deep_cursor[i])))
            .await?
            .len();
        deep.push(t.elapsed());
    }
    anyhow::ensure!(rows == lists * 2 * 101, "short pages: {rows} rows");
    report("list_first_page", first, Some(10.0));
    report("list_page_10", deep, Some(10.0));
    Ok(())
}
