#!/usr/bin/env bash
# The compose stack (deploy/docker-compose.yml), run for real under Docker with no image
# registry, reached only through ports published on 127.0.0.1:
#
#   1. Docker from Debian (docker.io, docker-compose; dockerd started if it is not running)
#      and a base image made here: `debootstrap --variant=minbase bookworm`, imported as
#      reelforge-base:bookworm (kept between runs; REBUILD_BASE=1 makes it again).
#   2. Images: Reelforge from deploy/Dockerfile with BASE_IMAGE=that base and
#      BINARY_FROM=prebuilt (the release binary built on this Debian host), and the stand-ins
#      for the public images from deploy/offline/Dockerfile (postgres, moto as the S3 server,
#      nginx, prometheus, a tools image for the one-shot setup services).
#   3. The stack: docker-compose.yml + docker-compose.offline.yml, fresh secrets in a temp env
#      file, one worker.
#   4. Through nginx: sign up, log in, upload a clip as an idrl task, wait, download every
#      output (302 to the objects listener, then the bytes) and check it with ffprobe.
#   5. A second, longer task: its worker container is killed (docker kill) mid-job, workers are
#      scaled to 3; the job is taken over when its lease ends and succeeds with attempts = 2.
#   6. Prometheus (published on 127.0.0.1) scrapes both API processes and the 3 workers.
#   7. `down -v`: containers, network and volumes removed (also on failure; KEEP=1 keeps them).
#
#   bash tests/compose/run.sh
#   REELFORGE_BIN=target/release/reelforge bash tests/compose/run.sh   # skip cargo build
#
# Needs root (or a user in the docker group), the Debian mirror, and ffmpeg, curl, jq on the
# host. Prints the time of each phase; docs/deploy.md has the figures.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo=$(pwd)

RELEASE=${DEBIAN_RELEASE:-bookworm}
BASE=reelforge-base:$RELEASE
PROJECT=rfcompose$$
COMPOSE_FILES=(-f deploy/docker-compose.yml -f deploy/docker-compose.offline.yml)

say() { printf 'compose: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
started=$SECONDS
phase_start=$SECONDS
phase() { # phase NAME: the time since the previous phase ended
    say "$(printf '%-34s %4d s' "$1" $((SECONDS - phase_start)))"
    phase_start=$SECONDS
}

apt_updated=
apt_install() {
    [ "$(id -u)" -eq 0 ] || die "missing $*: install it (apt-get install $*) or run as root"
    if [ -z "$apt_updated" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
        apt_updated=1
    fi
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" </dev/null >/dev/null
}

for prog in ffmpeg ffprobe curl jq; do
    command -v "$prog" >/dev/null 2>&1 || die "$prog is not installed"
done

# --- 1. Docker and the base image ---------------------------------------------------------
[ -x /usr/sbin/dockerd ] || apt_install docker.io
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
# BuildKit is needed (RUN --mount, build secrets, only the stages a target needs). Debian's
# docker client has it built in; a newer client found first on the PATH needs the buildx
# plugin for that, so use Debian's when there is no plugin.
docker=docker
if ! docker buildx version >/dev/null 2>&1 && [ -x /usr/bin/docker ]; then
    docker=/usr/bin/docker
fi
export DOCKER_BUILDKIT=1
if ! "$docker" info >/dev/null 2>&1; then
    say "starting dockerd (log: /var/log/reelforge-dockerd.log)"
    nohup /usr/sbin/dockerd >/var/log/reelforge-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        "$docker" info >/dev/null 2>&1 && break
        sleep 0.5
    done
    "$docker" info >/dev/null 2>&1 || die "dockerd did not start (see /var/log/reelforge-dockerd.log)"
fi
if [ -n "${REBUILD_BASE:-}" ] || ! "$docker" image inspect "$BASE" >/dev/null 2>&1; then
    root=$(mktemp -d "${TMPDIR:-/tmp}/reelforge-base.XXXXXX")
    say "debootstrap --variant=minbase $RELEASE (the base image $BASE)"
    debootstrap --variant=minbase "$RELEASE" "$root" http://deb.debian.org/debian >/dev/null
    rm -f "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | "$docker" import - "$BASE" >/dev/null
    rm -rf "$root"
fi
phase "docker and the base image"

# --- 2. Images --------------------------------------------------------------------------------
bin=${REELFORGE_BIN:-}
if [ -z "$bin" ]; then
    say "cargo build --release --bin reelforge"
    cargo build --release --locked --quiet --bin reelforge
    target=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    bin=$target/release/reelforge
fi
[ -x "$bin" ] || die "no reelforge binary at $bin"
mkdir -p target/docker
strip -o target/docker/reelforge "$bin" # what deploy/Dockerfile's `prebuilt` stage copies
image=reelforge:compose-test
build() { # build LOG ARGS…: quiet unless it fails
    local log=$1
    shift
    "$docker" build --build-arg "BASE_IMAGE=$BASE" "$@" >"$log" 2>&1 ||
        {
            tail -n 30 "$log" >&2
            die "docker build $* failed"
        }
}
logs=$(mktemp -d "${TMPDIR:-/tmp}/reelforge-compose.XXXXXX")
build "$logs/reelforge.build" -f deploy/Dockerfile --build-arg BINARY_FROM=prebuilt -t "$image" .
for stage in postgres s3 nginx prometheus tools; do
    # pip-ca: the host's CA bundle for pip, where a proxy inspects TLS (see the Dockerfile).
    build "$logs/$stage.build" -f deploy/offline/Dockerfile --target "$stage" \
        --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt \
        -t "reelforge-offline/$stage:local" deploy/offline
done
phase "images"

# --- 3. The stack -----------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
objects_port=$(free_port)
prometheus_port=$(free_port)
grafana_port=$(free_port)
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
env_file=$logs/env # secrets for this run only, removed at exit with $logs
cat >"$env_file" <<EOF
REELFORGE_IMAGE=$image
REELFORGE_JWT_SECRET=$(secret)
POSTGRES_PASSWORD=$(secret)
S3_ACCESS_KEY=reelforge
S3_SECRET_KEY=$(secret)
GRAFANA_ADMIN_PASSWORD=$(secret)
REELFORGE_HTTP_BIND=127.0.0.1
REELFORGE_HTTP_PORT=$http_port
REELFORGE_OBJECTS_PORT=$objects_port
REELFORGE_OBJECTS_URL=http://127.0.0.1:$objects_port
REELFORGE_PROMETHEUS_PORT=$prometheus_port
REELFORGE_GRAFANA_PORT=$grafana_port
EOF
compose() { docker-compose -p "$PROJECT" "${COMPOSE_FILES[@]}" --env-file "$env_file" "$@"; }
cleanup() {
    local rc=$?
    if [ -n "${KEEP:-}" ]; then
        say "KEEP: the stack is still up (project $PROJECT, env file $env_file)"
        return
    fi
    [ $rc -eq 0 ] || compose logs --no-color --tail=40 >"$logs/stack.log" 2>&1 || true
    [ $rc -eq 0 ] || say "the stack's last log lines: $logs/stack.log"
    compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
    [ $rc -ne 0 ] || rm -rf "$logs"
}
trap cleanup EXIT

say "docker-compose up (project $PROJECT; nginx on 127.0.0.1:$http_port)"
compose up -d --no-build --scale worker=1 nginx worker prometheus >"$logs/up.log" 2>&1 ||
    {
        cat "$logs/up.log" >&2
        die "docker-compose up failed"
    }
API=http://127.0.0.1:$http_port
for _ in $(seq 1 120); do
    curl -fsS -m 2 "$API/readyz" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -fsS -m 2 "$API/readyz" >/dev/null || die "the stack is not ready through nginx"
phase "stack up and ready"

# --- 4. Sign up, upload, download --------------------------------------------------------------
clip() { # clip SECONDS FILE
    ffmpeg -nostdin -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=$1" \
        -f lavfi -i "sine=duration=$1" -c:v libx264 -preset veryfast -c:a aac -shortest "$2"
}
clip 25 "$logs/short.mp4"
clip 90 "$logs/long.mp4"
curl -fsS "$API/api/auth/signup" -H 'Content-Type: application/json' \
    -d '{"username":"compose","email":"compose@example.com","password1":"Secret123","password2":"Secret123"}' >/dev/null
token=$(curl -fsS "$API/api/auth/login" -H 'Content-Type: application/json' \
    -d '{"username":"compose","password":"Secret123"}' | jq -r .token)
auth="Authorization: Bearer $token"
upload() { curl -fsS "$API/api/tasks" -H "$auth" -F "file=@$1" | jq -r .id; }
task_json() { curl -fsS "$API/api/tasks/$1" -H "$auth"; }
wait_ended() { # wait_ended TASK SECONDS: its final status on stdout
    local end=$((SECONDS + $2)) status
    while [ $SECONDS -lt $end ]; do
        status=$(task_json "$1" | jq -r .status)
        case $status in queued | running) sleep 1 ;; *)
            echo "$status"
            return
            ;;
        esac
    done
    die "task $1 did not end within $2 s"
}
first=$(upload "$logs/short.mp4")
[ "$(wait_ended "$first" 300)" = succeeded ] || die "task $first: $(task_json "$first")"
outputs=$(task_json "$first" | jq -r '.outputs[].name')
[ "$(wc -w <<<"$outputs")" -eq 2 ] || die "expected 2 parts, got: $outputs"
for name in $outputs; do
    # The API answers 302 with a presigned URL at REELFORGE_OBJECTS_URL (nginx's objects
    # listener in front of the S3 server); the bytes come from there, without the token.
    location=$(curl -fsS -o /dev/null -w '%{redirect_url}' -H "$auth" \
        "$API/api/tasks/$first/outputs/$name")
    case $location in "http://127.0.0.1:$objects_port/"*) ;; *) die "download of $name redirected to '$location'" ;; esac
    curl -fsS -o "$logs/$name" "$location"
    duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$logs/$name")
    say "downloaded $name: $(stat -c %s "$logs/$name") bytes, ${duration%.*} s"
done
phase "signup, upload, idrl, download"

# --- 5. A worker killed mid-job, workers scaled to 3 -------------------------------------------
second=$(upload "$logs/long.mp4")
end=$((SECONDS + 120))
until [ "$(task_json "$second" | jq -r '.progress.stage // empty')" = processing ]; do
    [ $SECONDS -lt $end ] || die "task $second did not reach processing: $(task_json "$second")"
    sleep 0.2
done
victim=$(compose ps -q worker)
"$docker" kill "$victim" >/dev/null
say "killed worker container ${victim:0:12} during task $second"
compose up -d --no-build --no-recreate --scale worker=3 worker >"$logs/scale.log" 2>&1 ||
    {
        cat "$logs/scale.log" >&2
        die "scaling workers to 3 failed"
    }
[ "$(wait_ended "$second" 300)" = succeeded ] || die "task $second: $(task_json "$second")"
attempts=$(task_json "$second" | jq -r .attempts)
[ "$attempts" -eq 2 ] || die "task $second took $attempts attempts, expected 2"
running=$(compose ps -q worker | xargs "$docker" inspect -f '{{.State.Running}}' | grep -c true)
[ "$running" -eq 3 ] || die "$running worker containers running, expected 3"
phase "worker killed, taken over (3 workers)"

# --- 6. Prometheus scrapes every API and worker process --------------------------------------
prom=http://127.0.0.1:$prometheus_port
end=$((SECONDS + 90))
while :; do
    up=$(curl -fsS "$prom/api/v1/query" --data-urlencode 'query=sum by (job) (up)' 2>/dev/null |
        jq -r '[.data.result[] | "\(.metric.job)=\(.value[1])"] | sort | join(" ")' 2>/dev/null || true)
    [ "$up" = "reelforge-api=2 reelforge-worker=3" ] && break
    [ $SECONDS -lt $end ] || die "Prometheus sees '$up', expected reelforge-api=2 reelforge-worker=3"
    sleep 2
done
phase "prometheus scrapes 2 APIs + 3 workers"

compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
trap - EXIT
rm -rf "$logs"
phase "down -v"
say "passed in $((SECONDS - started)) s"
