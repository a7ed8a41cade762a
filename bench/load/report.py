#!/usr/bin/env python3
"""Summarise a bench/load/run.sh results directory (Locust CSVs + per-step .meta.json).

    bench/load/report.py bench/out/load-YYYYmmddTHHMMSSZ

Per target and user step: req/s, p50/p95/p99 and failures per request type (Locust's
`_stats.csv`, the whole step including its ramp), the most frequent failures, and the URL
conversions the database saw finish in the step's window (per minute). Then per target: the
saturation point (the first step where any request type's p95 is over 500 ms or more than 1 %
of all requests failed), the step from which the workers fall behind the submitted
conversions, and our figures against the old systems' published ones.
"""

import csv
import glob
import json
import os
import sys

P95_LIMIT_MS = 500.0  # the old systems' target: p95 <= 0.5 s
FAIL_LIMIT = 0.01
# Published figures of the old systems (JMeter on their cloud deployments).
OLD_GET_RPS = (144.0, 580.0)
OLD_GET_P95_S = (0.56, 1.7)
OLD_UPLOAD_RPS = (2.6, 6.5)

def kind_rank(name: str) -> int:
    if "signup" in name:
        return 0
    if "login" in name:
        return 1
    if name.startswith("GET") and "{id}" not in name:
        return 2
    if name.startswith("GET"):
        return 3
    if "(url)" in name:
        return 4
    if "upload" in name:
        return 5
    if name.startswith("DELETE"):
        return 6
    return 7


def num(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def read_step(meta_path: str) -> dict:
    meta = json.load(open(meta_path))
    prefix = meta_path[: -len(".meta.json")]
    rows = {}
    with open(prefix + "_stats.csv", newline="") as f:
        for r in csv.DictReader(f):
            # The locustfile's names carry the method ("GET /api/tasks/{id}").
            label = "all" if r["Name"] == "Aggregated" else r["Name"]
            rows[label] = {
                "n": int(r["Request Count"]),
                "fail": int(r["Failure Count"]),
                "rps": num(r["Requests/s"]),
                "avg": num(r["Average Response Time"]),
                "p50": num(r["50%"]),
                "p95": num(r["95%"]),
                "p99": num(r["99%"]),
            }
    failures = []
    if os.path.exists(prefix + "_failures.csv"):
        with open(prefix + "_failures.csv", newline="") as f:
            failures = [(r["Name"], r["Error"], int(r["Occurrences"])) for r in csv.DictReader(f)]
    failures.sort(key=lambda x: -x[2])
    meta["rows"] = rows
    meta["failures"] = failures
    return meta


def ms(v: float) -> str:
    return "—" if v != v else f"{v:.0f}"


def ratio_range(ours: float, old: tuple) -> str:
    return f"{ours / old[0]:.3g}x–{ours / old[1]:.3g}x"


def think_bound(step: dict) -> bool:
    """Whether the aggregated rate is about what the users' think time allows: then the rate
    measures the load generator's settings, not the service's capacity."""
    agg = step["rows"].get("all")
    wait = [float(x) for x in step.get("wait", "0.5 1.5").split()]
    if not agg or agg["n"] == 0:
        return False
    step_s, ramp = step.get("step_seconds", 0), step.get("ramp_seconds", 0)
    if not step_s:
        return False
    # Users present on average over the step (the ramp is linear), each asking once per
    # (think time + response time).
    think, response = sum(wait) / 2, agg["avg"] / 1000
    # With little or no think time (a closed loop) the cycle is the response time itself: the
    # rate is then what the service (or the load generator) can do, a capacity.
    if think < 4 * response:
        return False
    mean_users = step["users"] * (step_s - ramp / 2) / step_s
    ceiling = mean_users / (think + response)
    return agg["rps"] >= 0.8 * ceiling


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    results = sys.argv[1]
    metas = sorted(glob.glob(os.path.join(results, "*.meta.json")))
    if not metas:
        print(f"no step results (*.meta.json) in {results}", file=sys.stderr)
        return 1
    run_txt = os.path.join(results, "run.txt")
    if os.path.exists(run_txt):
        print(open(run_txt).read().rstrip())
    by_target = {}
    for m in metas:
        step = read_step(m)
        by_target.setdefault(step["target"], []).append(step)

    # In the order the targets ran.
    for target, steps in sorted(by_target.items(), key=lambda kv: min(s["t0"] for s in kv[1])):
        steps.sort(key=lambda s: s["users"])
        print(f"\n== {target} ==")
        saturated = None
        behind = None
        for s in steps:
            rows = s["rows"]
            agg = rows.get("all", {"n": 0, "fail": 0, "rps": 0.0})
            secs = s["t1"] - s["t0"]
            c = s["conversions"]
            bound = think_bound(s)
            print(f"\n{s['users']} users (spawn {s['spawn_rate']:g}/s, {secs:.0f} s, machine {s['machine_busy_pct']}% busy)"
                  + ("  [rate set by the users' think time, not a capacity]" if bound else "")
                  + ("  [Locust's CPU was over 90 %: the load generator limited this step]"
                     if s.get("locust_cpu_over_90") else ""))
            print(f"  {'request':<40} {'count':>7} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'fail':>6}")
            for name in sorted((n for n in rows if n != "all"), key=lambda n: (kind_rank(n), n)):
                r = rows[name]
                print(f"  {name:<40} {r['n']:>7} {r['rps']:>8.2f} {ms(r['p50']):>7} {ms(r['p95']):>7} {ms(r['p99']):>7} {r['fail']:>6}")
            if "all" in rows:
                r = rows["all"]
                print(f"  {'all':<40} {r['n']:>7} {r['rps']:>8.2f} {ms(r['p50']):>7} {ms(r['p95']):>7} {ms(r['p99']):>7} {r['fail']:>6}")
            for name, err, n in s["failures"][:5]:
                print(f"  failure x{n}: {name}: {err[:160]}")
            per_min = c["succeeded"] * 60 / secs if secs > 0 else 0.0
            run_s = f", one run {c['run_seconds']:.2f} s on average" if c.get("run_seconds") else ""
            print(f"  conversions: {per_min:.1f}/min finished in the step ({c['succeeded']} succeeded, {c['failed']} failed"
                  f"{', errors ' + json.dumps(c['errors']) if c.get('errors') else ''}); submitted {c['submitted'] * 60 / secs:.1f}/min;"
                  f" open {s['open_before']} before -> {c['open']} after{run_s}")
            if c.get("uploads_left"):
                print(f"  note: {c['uploads_left']} upload tasks were not deleted (their DELETE failed)")
            s["conv_per_min"] = per_min
            s["think_bound"] = bound

            reasons = [f"{n} p95 {r['p95']:.0f} ms" for n, r in rows.items()
                       if n != "all" and r["p95"] == r["p95"] and r["p95"] > P95_LIMIT_MS]
            if agg["n"] and agg["fail"] / agg["n"] > FAIL_LIMIT:
                reasons.append(f"{100 * agg['fail'] / agg['n']:.1f} % of requests failed")
            if reasons and saturated is None:
                saturated = (s["users"], reasons)
            # The workers fall behind when the open conversions grow over the step by more than
            # a tenth of what was submitted (and more than a couple of tasks).
            if behind is None and c["open"] - s["open_before"] > max(2, 0.1 * c["submitted"]):
                behind = s["users"]

        print()
        if saturated:
            print(f"{target}: saturates at {saturated[0]} users: {'; '.join(saturated[1])}")
        else:
            print(f"{target}: no saturation up to {steps[-1]['users']} users (every p95 <= {P95_LIMIT_MS:.0f} ms, failures <= 1 %)")
        if behind:
            print(f"{target}: the workers fall behind the submitted conversions from {behind} users "
                  f"(open conversions grow); the conversions/min of those steps are the workers' capacity under this load")
        else:
            print(f"{target}: the workers kept up with every step's conversions")

        # Against the old systems: our best GET-task and upload steps.
        def best(pred):
            cands = [(s, n, s["rows"][n]) for s in steps for n in s["rows"] if pred(n) and s["rows"][n]["n"]]
            return max(cands, key=lambda x: x[2]["rps"]) if cands else None

        g = best(lambda n: n.startswith("GET") and n.endswith("/{id}"))
        u = best(lambda n: "upload" in n)
        if g:
            s, n, r = g
            p95_s = r["p95"] / 1000
            print(f"{target} vs old, {n}: {r['rps']:.1f} req/s at {s['users']} users = {ratio_range(r['rps'], OLD_GET_RPS)} "
                  f"of their {OLD_GET_RPS[0]:g}–{OLD_GET_RPS[1]:g} req/s; p95 {p95_s:.3f} s = {ratio_range(p95_s, OLD_GET_P95_S)} "
                  f"of their {OLD_GET_P95_S[0]:g}–{OLD_GET_P95_S[1]:g} s (target <= 0.5 s: {'met' if p95_s <= 0.5 else 'NOT met'})"
                  + ("; rate set by the users' think time" if s["think_bound"] else ""))
        if u:
            s, n, r = u
            print(f"{target} vs old, {n}: {r['rps']:.2f} uploads/s at {s['users']} users = {ratio_range(r['rps'], OLD_UPLOAD_RPS)} "
                  f"of their {OLD_UPLOAD_RPS[0]:g}–{OLD_UPLOAD_RPS[1]:g} req/s; p95 {r['p95'] / 1000:.3f} s"
                  + ("; rate set by the users' think time" if s["think_bound"] else ""))
        peak = max(steps, key=lambda s: s["conv_per_min"])
        print(f"{target}: peak {peak['conv_per_min']:.1f} conversions/min (at {peak['users']} users)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
