#!/usr/bin/env bash
# Regenerate, or check, the offline query caches of the two database crates
# (crates/reelforge-db-sqlite/.sqlx and crates/reelforge-db-postgres/.sqlx).
#
#   bash scripts/sqlx-prepare.sh           # after changing a query or a migration; commit .sqlx
#   bash scripts/sqlx-prepare.sh --check   # fail if a committed cache is stale (scripts/test.sh)
#
# Builds never need a database: .cargo/config.toml sets SQLX_OFFLINE=true, so the query
# macros read the committed caches. This script turns that off (SQLX_OFFLINE=false) and gives
# each crate a database built from its migrations, through the variable its sqlx.toml names:
#   SQLITE_DATABASE_URL  a SQLite file in a temp dir, migrations/sqlite/*.sql applied (sqlite3);
#   PG_DATABASE_URL      a fresh database on a throw-away PostgreSQL server, migrations/postgres
#                        applied (psql): the server of REELFORGE_TEST_PG_URL when set (a superuser
#                        URL, as scripts/test.sh exports), else a cluster of its own (need_postgres,
#                        scripts/lib/postgres.sh), stopped and removed at exit.
# Each crate is then checked (`cargo check -p …`) with SQLX_OFFLINE_DIR pointing to an empty
# temp dir: the macros verify every statement against the live database and write one
# query-<sha256 of the SQL>.json per statement there. Write mode replaces the crate's .sqlx
# with it (so entries of deleted statements go too); --check compares. No sqlx-cli needed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'sqlx-prepare.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
apt_install() { die "missing $*; install it first (Debian/Ubuntu: apt-get install $*)"; }

mode="write"
case "${1:-}" in
"") ;;
--check) mode=check ;;
*) die "usage: bash scripts/sqlx-prepare.sh [--check]" ;;
esac

command -v cargo >/dev/null 2>&1 || die "cargo not found"
command -v sqlite3 >/dev/null 2>&1 || apt_install sqlite3

# shellcheck source=scripts/lib/postgres.sh
. scripts/lib/postgres.sh
need_postgres
psql=$(command -v psql || true)
[ -n "$psql" ] || psql=$(pg_bindir)/psql
[ -x "$psql" ] || apt_install postgresql-client

work=$(mktemp -d "${TMPDIR:-/tmp}/reelforge-sqlx.XXXXXX")
admin_url=$REELFORGE_TEST_PG_URL
pg_db=reelforge_sqlx_$$
pg_created=
cleanup() {
    if [ -n "$pg_created" ]; then
        "$psql" -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 ||
            say "could not drop database $pg_db"
    fi
    rm -rf "$work"
    stop_postgres
}
trap cleanup EXIT

# --- The databases, from the migrations -----------------------------------------------------
sqlite_db=$work/schema.db
for f in migrations/sqlite/*.sql; do
    sqlite3 -bail "$sqlite_db" <"$f" || die "$f failed on SQLite"
done

"$psql" -X -q -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE $pg_db" >/dev/null
pg_created=1
# The admin URL with the new database as its path (any ?parameters kept).
base=${admin_url%%\?*}
pg_url="${base%/*}/$pg_db${admin_url#"$base"}"
for f in migrations/postgres/*.sql; do
    "$psql" -X -q -v ON_ERROR_STOP=1 --single-transaction "$pg_url" -f "$f" >/dev/null ||
        die "$f failed on PostgreSQL"
done

# --- Check each crate against its database, writing fresh query data ------------------------
# The macros read these variables while compiling, and cargo does not track them: touching
# the crate makes it compile again (and the next ordinary build recompile it offline).
prepare() { # crate, url-variable, url
    local crate=$1 var=$2 url=$3
    mkdir -p "$work/$crate"
    touch "crates/$crate/src/lib.rs"
    say "checking $crate against migrations (live database)"
    env SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$work/$crate" "$var=$url" \
        cargo check --locked --quiet -p "$crate" --lib ||
        die "$crate: the queries do not check against the migrations (errors above)"
}
prepare reelforge-db-sqlite SQLITE_DATABASE_URL "sqlite://$sqlite_db"
prepare reelforge-db-postgres PG_DATABASE_URL "$pg_url"

stale=()
for crate in reelforge-db-sqlite reelforge-db-postgres; do
    cache=crates/$crate/.sqlx
    if [ "$mode" = check ]; then
        if ! diff -r -q "$cache" "$work/$crate" >"$work/diff" 2>&1; then
            sed "s|$work/$crate|(fresh)|" "$work/diff" >&2
            stale+=("$cache")
        fi
    else
        mkdir -p "$cache"
        rm -f "$cache"/query-*.json
        cp "$work/$crate"/query-*.json "$cache"/
        say "$cache: $(find "$cache" -name 'query-*.json' | wc -l) statements"
    fi
done
if [ ${#stale[@]} -gt 0 ]; then
    die "stale query cache: ${stale[*]}; run bash scripts/sqlx-prepare.sh and commit the result"
fi
[ "$mode" = write ] || say "query caches are up to date"
