#!/usr/bin/env bash
# Queue benchmark on PostgreSQL: with 100,000 finished and 10,000 queued tasks,
#   1. claim latency of the service's own JobQueue::claim (each claimed job is then completed,
#      one in ten failed, so the queue drains as it does in service): p50/p99 over CLAIMS;
#   2. listing a user's tasks as GET /api/tasks?max=100 does (TaskRepo::list_tasks, keyset
#      pagination, newest first): the first page and page 10 (by cursor), p50/p99 over LISTS.
# Targets: claim p99 < 5 ms, list p99 < 10 ms. Also prints the plans of the real statements
# (auto_explain: EXPLAIN ANALYZE, BUFFERS of exactly what the code sent) and the table sizes.
#
# The client is examples/queue_bench.rs (release build), which calls the library's repository
# directly: no HTTP, so the figures are the database path alone.
#
#   bench/queue/run.sh
#   CLAIMS=5000 LISTS=2000 bench/queue/run.sh
#   FINISHED=10000 QUEUED=2000 CLAIMS=1000 LISTS=200 bench/queue/run.sh   # a quick check
#   PG_OPTS="-c synchronous_commit=off" bench/queue/run.sh                 # no commit flush wait
#
# A throw-away PostgreSQL cluster is started for the run (fsync on, durable commits by default)
# and removed at exit.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

FINISHED="${FINISHED:-100000}"
QUEUED="${QUEUED:-10000}"
USERS="${USERS:-100}"
CLAIMS="${CLAIMS:-2000}"
LISTS="${LISTS:-1000}"

log "building examples/queue_bench (release)"
(cd "$ROOT" && cargo build --release --quiet --example queue_bench)
QB="$TARGET_DIR/release/examples/queue_bench"

start_postgres
psql_do postgres -c "CREATE DATABASE bench"
DB_URL="${PG_URL%/*}/bench"

log "populating: $USERS users, $FINISHED finished + $QUEUED queued tasks"
"$QB" populate "$DB_URL" "$FINISHED" "$QUEUED" "$USERS"
[ $((FINISHED + QUEUED)) -ge $((USERS * 1001)) ] ||
    { echo "need at least 1001 tasks per user for page 10 (FINISHED + QUEUED >= USERS * 1001)" >&2; exit 1; }
psql_do bench -c "SELECT 'tasks' AS table, (SELECT count(*) FROM tasks) AS rows, pg_size_pretty(pg_total_relation_size('tasks')) AS size_with_indexes
    UNION ALL SELECT 'jobs', (SELECT count(*) FROM jobs), pg_size_pretty(pg_total_relation_size('jobs'))"
psql_do bench -c "SELECT status, count(*) FROM tasks GROUP BY 1 ORDER BY 1"
psql_do bench -Atc "SELECT indexdef FROM pg_indexes WHERE tablename IN ('tasks', 'jobs') ORDER BY tablename, indexname" |
    sed 's/^/index: /'

# ---------------------------------------------------------------- plans of the real statements
# auto_explain in the sessions of one `explain` run: one claim + complete, a first page and
# pages 2..10. The plans come from the server log.
psql_do bench -c "ALTER DATABASE bench SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER DATABASE bench SET auto_explain.log_min_duration = 0" \
    -c "ALTER DATABASE bench SET auto_explain.log_analyze = on" \
    -c "ALTER DATABASE bench SET auto_explain.log_buffers = on" \
    -c "ALTER DATABASE bench SET auto_explain.log_timing = on"
LOG_FROM=$(wc -l <"$PG_LOG")
"$QB" explain "$DB_URL"
psql_do bench -c "ALTER DATABASE bench RESET ALL"
sleep 0.5 # the server log is written asynchronously
# plan_of TITLE PATTERN [N]: the Nth (default first) logged plan whose query text matches
# PATTERN.
plan_of() {
    echo "--- plan: $1"
    tail -n +"$((LOG_FROM + 1))" "$PG_LOG" | awk -v pat="$2" -v want="${3:-1}" '
        function flush() { if (keep && ++seen == want) { print block; exit } }
        /LOG:  duration: .* plan:/ { if (inplan) flush(); block = $0; inplan = 1; keep = 0; next }
        inplan && /^\t/ { block = block "\n" $0; if ($0 ~ pat) keep = 1; next }
        inplan { inplan = 0; flush() }
        END { if (inplan) flush() }' | sed -E 's/^.*LOG:  //; s/^\t/    /'
}
plan_of "claim (jobs)" "UPDATE jobs SET state = 'running'"
plan_of "claim (its task)" "UPDATE tasks SET status = 'running'"
# One statement serves both pages: the first page passes the largest UUID as its cursor.
plan_of "list, first page" "ORDER BY id DESC LIMIT" 1
plan_of "list, by cursor (page 10)" "ORDER BY id DESC LIMIT" 10

# ---------------------------------------------------------------- measure
wait_quiet
machine_line
echo "data: $USERS users, $FINISHED finished + $QUEUED queued tasks; $CLAIMS claims, $LISTS lists of each kind"
"$QB" measure "$DB_URL" "$CLAIMS" "$LISTS"
echo "queue left: $(psql_do bench -Atc "SELECT count(*) FROM jobs WHERE state = 'queued'") queued jobs"
echo "loadavg_after: $(cut -d' ' -f1-3 /proc/loadavg)"
