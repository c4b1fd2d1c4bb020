"""The figures of `make soak` (bench/soak.py), from what its load and its chaos recorded.

- requests: every outcome of the load, by kind (a key-churn round and a promotion count one
  each), and how many failed;
- errors outside the kill windows (goal 0): a failure whose [start, end] overlaps no window; a
  window runs from a kill until the victim runs again with a new pid and `/readyz` is 200 with
  the durable Redis up, plus 5 s;
- jobs (goal: all exactly once): every row exactly once, in input order. Under the durability
  guarantee of docs/design.md, a job whose 202 came less than 2 s before a Redis crash may
  vanish whole (404); such a job is counted apart, and none other may fail. A SIGKILL of the
  Redis process is not a machine crash: the AOF is written before any reply, so none should;
- gateway RSS (goal: under 10 % growth): within each gateway process's lifetime (its pid), from
  its first sample at least 60 s after it started (the first loads and caches warm up before)
  to its last; the headline is the longest lifetime. Across restarts each new process starts
  afresh, so the figure that shows a leak is the growth within one;
- unplanned restarts: programs other than the victim whose pid changed across a kill, and
  the supervisord states at the end (none FATAL).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Protocol

#: Samples of a gateway younger than this are its warm-up, not its steady state.
WARMUP_SECONDS = 60.0
GUARANTEE_SECONDS = 2.0


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: the victim, when (seconds from the load's start), how long until recovery."""

    victim: str
    at: float
    recovered_after: float
    tail: float
    others_restarted: list[str]

    @property
    def window(self) -> tuple[float, float]:
        return self.at, self.at + self.recovered_after + self.tail

    def line(self) -> str:
        others = f"; also restarted: {', '.join(self.others_restarted)}" * bool(
            self.others_restarted
        )
        return (
            f"{self.victim} SIGKILLed at {self.at:.0f} s, "
            f"recovered in {self.recovered_after:.1f} s{others}"
        )


class _Outcome(Protocol):
    start: float
    end: float
    what: str
    ok: bool
    detail: str


class _Job(Protocol):
    job_id: str
    ids: list[str]
    accepted_at: float
    verdict: str


class _Load(Protocol):
    outcomes: list[Any]
    jobs: list[Any]


def build_report(
    load: _Load,
    kills: list[Kill],
    samples: list[tuple[float, int, int]],
    started: float,
    minutes: float,
    states: dict[str, str],
) -> dict[str, Any]:
    windows = [kill.window for kill in kills]
    outcomes: list[_Outcome] = load.outcomes
    failures = [o for o in outcomes if not o.ok]
    outside = [o for o in failures if not _in_window(o.start - started, o.end - started, windows)]
    redis_kills = [kill.at for kill in kills if kill.victim == "redis"]
    jobs: list[_Job] = load.jobs
    verdicts = Counter(job.verdict for job in jobs)
    excused = [
        job.job_id
        for job in jobs
        if job.verdict == "vanished (404)"
        and any(0 <= at - (job.accepted_at - started) < GUARANTEE_SECONDS for at in redis_kills)
    ]
    bad = {
        job.job_id: job.verdict
        for job in jobs
        if job.verdict != "exactly once" and job.job_id not in excused
    }
    return {
        "minutes": minutes,
        "requests": {
            "total": len(outcomes),
            "by_kind": dict(Counter(o.what for o in outcomes)),
            "failed": len(failures),
            "failed_by_kind": dict(Counter(o.what for o in failures)),
        },
        "errors_outside_kill_windows": len(outside),
        "errors_outside_examples": [
            {"at": round(o.start - started, 1), "what": o.what, "detail": o.detail}
            for o in outside[:20]
        ],
        "kills": [
            {
                **asdict(kill),
                "failures_in_window": sum(
                    _in_window(o.start - started, o.end - started, [kill.window]) for o in failures
                ),
            }
            for kill in kills
        ],
        "jobs": {
            "total": len(jobs),
            "exactly_once": verdicts.get("exactly once", 0),
            "vanished_within_guarantee_gap": len(excused),
            "not_exactly_once": bad,
            "rows_checked": sum(len(job.ids) for job in jobs if job.verdict == "exactly once"),
        },
        "gateway_rss": _rss(samples),
        "supervisord_states_at_end": states,
    }


def _in_window(start: float, end: float, windows: list[tuple[float, float]]) -> bool:
    return any(start <= w_end and end >= w_start for w_start, w_end in windows)


def _rss(samples: list[tuple[float, int, int]]) -> dict[str, Any]:
    lifetimes: dict[int, list[tuple[float, int]]] = {}
    for at, pid, kib in samples:
        lifetimes.setdefault(pid, []).append((at, kib))
    rows = []
    for pid, points in lifetimes.items():
        born = points[0][0]
        steady = [(at, kib) for at, kib in points if at - born >= WARMUP_SECONDS]
        if len(steady) < 2:
            continue
        (first_at, first), (last_at, last) = steady[0], steady[-1]
        rows.append(
            {
                "pid": pid,
                "seconds": round(last_at - first_at),
                "first_mb": round(first / 1024, 1),
                "last_mb": round(last / 1024, 1),
                "max_mb": round(max(kib for _, kib in steady) / 1024, 1),
                "growth_percent": round(100 * (last - first) / first, 2),
            }
        )
    longest = max(rows, key=lambda row: row["seconds"], default=None)
    return {
        "lifetimes": rows,
        "growth_percent_longest_lifetime": longest["growth_percent"] if longest else None,
    }


def _fields(kill: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in kill.items() if key != "failures_in_window"}


def render_report(report: dict[str, Any]) -> str:
    """The report as a reader takes it in, one figure a line, goals beside."""
    requests, jobs, rss = report["requests"], report["jobs"], report["gateway_rss"]
    lines = [
        f"soak: {report['minutes']:g} minutes, {len(report['kills'])} kills",
        f"  requests              {requests['total']} ({requests['by_kind']})",
        f"  failed, all           {requests['failed']} ({requests['failed_by_kind']})",
        f"  errors outside kills  {report['errors_outside_kill_windows']}   (goal 0)",
        f"  jobs exactly once     {jobs['exactly_once']} of {jobs['total']}   (goal all; "
        f"{jobs['vanished_within_guarantee_gap']} vanished within 2 s of a Redis crash)",
        f"  gateway RSS growth    {rss['growth_percent_longest_lifetime']} % in its longest "
        f"lifetime   (goal < 10 %)",
        f"  states at the end     {report['supervisord_states_at_end']}",
        f"  make down: make up's exit status "
        f"{report.get('make_up_exit_status_after_make_down')}   (0)",
    ]
    lines += [
        f"  kill: {Kill(**_fields(kill)).line()}; {kill['failures_in_window']} failures in its "
        "window"
        for kill in report["kills"]
    ]
    lines += [f"  outside a window: {e}" for e in report["errors_outside_examples"]]
    lines += [f"  not exactly once: {k}: {v}" for k, v in jobs["not_exactly_once"].items()]
    if rss["lifetimes"]:
        lines += [f"  gateway lifetime: {row}" for row in rss["lifetimes"]]
    if "restart_test" in report:
        lines.append(f"  restart test          {report['restart_test']}")
    return "\n".join(lines)
