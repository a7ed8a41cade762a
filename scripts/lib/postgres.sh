# shellcheck shell=bash
# A throw-away PostgreSQL server, for scripts/test.sh (the PostgreSQL tests) and
# scripts/sqlx-prepare.sh (the query caches). Source it; the caller defines `say`, `die` and
# `apt_install`.
#
# PostgreSQL backend tests (tests/api/queue.rs and friends) read REELFORGE_TEST_PG_URL: a
# superuser URL of a throw-away server; each test creates and drops its own database. When the
# variable is already set, that server is used; otherwise a cluster is initdb'd in a temp dir,
# started on a free loopback port (its unix socket in the temp dir too), and stopped and
# removed when this script exits. initdb refuses to run as root: as root, the cluster belongs
# to the `postgres` user (created by Debian's package).
pg_dir=
pg_ctl_bin=
pg_user=
as_pg_user() {
    if [ -n "$pg_user" ]; then
        runuser -u "$pg_user" -- "$@"
    else
        "$@"
    fi
}
stop_postgres() {
    if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
        if [ -f "$pg_dir/data/postmaster.pid" ]; then
            as_pg_user "$pg_ctl_bin" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$pg_dir"
    fi
}
# The newest installed server's programs (Debian: /usr/lib/postgresql/<version>/bin), if any.
pg_bindir() {
    find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1
}
port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
need_postgres() {
    if [ -n "${REELFORGE_TEST_PG_URL:-}" ]; then
        say "PostgreSQL tests use REELFORGE_TEST_PG_URL from the environment"
        return
    fi
    local bindir
    bindir=$(pg_bindir)
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        apt_install postgresql
        bindir=$(pg_bindir)
    fi
    [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] || die "PostgreSQL server binaries not found"
    pg_ctl_bin=$bindir/pg_ctl
    if [ "$(id -u)" -eq 0 ]; then
        pg_user=postgres
        id -u "$pg_user" >/dev/null 2>&1 || pg_user=nobody
    fi
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/reelforge-pg.XXXXXX")
    trap stop_postgres EXIT
    trap 'exit 130' INT TERM
    [ -z "$pg_user" ] || chown "$pg_user" "$pg_dir"
    as_pg_user "$bindir/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --locale=C \
        --no-sync --no-instructions >"$pg_dir/initdb.log" 2>&1 ||
        die "initdb failed: $(tail -n 5 "$pg_dir/initdb.log")"
    local port tries=0
    while :; do
        port=$((20000 + RANDOM % 20000))
        port_in_use "$port" && continue
        # Throw-away data: no fsync, no full-page writes.
        if as_pg_user "$pg_ctl_bin" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
            -o "-h 127.0.0.1 -p $port -k $pg_dir -F -c max_connections=300 -c full_page_writes=off -c synchronous_commit=off" \
            start >/dev/null; then
            break
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 5 ] || die "PostgreSQL did not start: $(tail -n 5 "$pg_dir/server.log")"
    done
    export REELFORGE_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $pg_dir)"
}
