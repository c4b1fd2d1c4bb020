"""`make soak`: a bounded, local soak and chaos run of the supervised stack (issue 14).

`python -m bench.soak --minutes 30` starts `make up` itself on free ports with its own var
directory (var/soak/, wiped first), adds a second iris version and a key with high limits, then
runs the load of bench/soak_load.py (sync predictions on /v1, V2 REST, V2 gRPC and
/invocations; CSV jobs; key churn; a promotion or rollback every `--promote-every` seconds)
while it SIGKILLs the worker, the gateway and the durable Redis in turn (a random order, each
round), one at a time, at random intervals of `--kill-every` seconds. Nothing but supervisord
restarts them. A kill window runs from the kill until the victim runs again with a new pid,
`/readyz` answers 200 and reports the durable Redis up, plus 5 s. Then the load stops, every job
is checked (every row exactly once, in order), the stack is stopped with `make down` (its log
is var/soak/make-up.log), and the durable-Redis restart test runs `--restart-rounds` times
(`MODELGATE_SOAK_RESTARTS`, in its own pytest process: bench never imports tests). The report
is printed and written as JSON (bench/soak_report.py says what each figure is).

The stack runs with short job timeouts, so that a chunk lost with a killed worker comes back in
seconds rather than minutes: a 30 s visibility timeout (20 s task limit), chunks of 500 rows,
and room for 50 running jobs per owner.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from redis import Redis

from bench.soak_load import Load, check_job
from bench.soak_report import Kill, build_report, render_report
from devstack.processes import free_port
from devstack.supervised import Supervised
from gateway.guard.keys import KeyStore

ROOT = Path(__file__).resolve().parent.parent
VICTIMS = ("worker", "gateway", "redis")
PROGRAMS = ("redis", "cache", "mlflow", "gateway", "worker")
KEY_PREFIX = "modelgate:"
SETTINGS = {
    "MODELGATE_VISIBILITY_TIMEOUT_SECONDS": "30",
    "MODELGATE_TASK_TIME_LIMIT_SECONDS": "20",
    "MODELGATE_UNACKED_RESTORE_INTERVAL_SECONDS": "5",
    "MODELGATE_CHUNK_SIZE": "500",
    "MODELGATE_MAX_RUNNING_JOBS_PER_OWNER": "50",
}
WINDOW_TAIL_SECONDS = 5.0
RECOVERY_TIMEOUT_SECONDS = 180.0
#: After the load stops, how long the jobs still running have to finish, all together.
JOBS_TIMEOUT_SECONDS = 240.0


class Stack:
    """`make up` in `var_dir` on free ports, run and stopped as a developer would."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        redis = free_port()
        while _taken(redis + 1):
            redis = free_port()
        self.ports = {"GATEWAY_PORT": free_port(), "MLFLOW_PORT": free_port(),
                      "REDIS_PORT": redis, "GRPC_PORT": free_port()}  # fmt: skip
        self.url = f"http://127.0.0.1:{self.ports['GATEWAY_PORT']}"
        self.redis_url = f"redis://127.0.0.1:{redis}/0"
        self.supervised = Supervised(var_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = var_dir / "make-up.log"

    def env(self) -> dict[str, str]:
        """The CLI's environment: this stack's addresses, none of the caller's MODELGATE_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELGATE_", "MAKE"))}
        env.update(
            MODELGATE_MLFLOW_TRACKING_URI=f"http://127.0.0.1:{self.ports['MLFLOW_PORT']}",
            MODELGATE_REDIS_URL=self.redis_url,
            MODELGATE_GATEWAY_URL=self.url,
        )
        return env

    def start(self) -> None:
        env = {k: v for k, v in self.env().items() if not k.startswith("MODELGATE_")}
        env.update(SETTINGS)
        args = [f"{name}={value}" for name, value in self.ports.items()]
        log = os.fdopen(os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "wb")
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "up", f"VENV={sys.prefix}",
             f"VAR_DIR={self.var_dir}", *args],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not ready(self.url):
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stack did not get ready; see {self.log}")
            time.sleep(1)

    def stop(self) -> int | None:
        """`make down`; returns make's exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        self.supervised.ctl("shutdown")
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None


def ready(url: str) -> bool:
    """`/readyz` is 200 and reports the durable Redis up."""
    try:
        answer = httpx.get(f"{url}/readyz", timeout=3, trust_env=False)
    except httpx.HTTPError:
        return False
    deps = answer.json().get("dependencies", {}) if answer.status_code == 200 else {}
    return answer.status_code == 200 and deps.get("redis", {}).get("ok") is True


def _taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def kill_and_recover(stack: Stack, victim: str, started: float) -> Kill:
    """SIGKILL `victim`'s process and wait for the stack to recover; what happened."""
    before = stack.supervised.pids()
    pid = before[victim]
    assert pid is not None, f"{victim} is not running: {stack.supervised.states()}"
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while True:
        new = stack.supervised.pid(victim)
        if new not in (None, pid) and ready(stack.url):
            break
        if time.monotonic() - killed > RECOVERY_TIMEOUT_SECONDS:
            break
        time.sleep(0.25)
    recovered = time.monotonic()
    after = stack.supervised.pids()
    others = [n for n in PROGRAMS if n != victim and after.get(n) != before.get(n)]
    at, took = round(killed - started, 2), round(recovered - killed, 2)
    return Kill(victim, at, took, WINDOW_TAIL_SECONDS, others)


def sample_rss(stack: Stack, stop: threading.Event, samples: list[tuple[float, int, int]]) -> None:
    """(time, pid, RSS in KiB) of the gateway every 5 s."""
    while not stop.wait(5.0):
        pid = stack.supervised.pid("gateway")
        try:
            status = Path(f"/proc/{pid}/status").read_text() if pid else ""
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:") and pid:
                samples.append((time.monotonic(), pid, int(line.split()[1])))


def restart_test(rounds: int) -> dict[str, object]:
    """The durable-Redis restart test, `rounds` times, in a pytest process of its own."""
    if rounds <= 0:
        return {"rounds": 0}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
         "tests/integration/test_jobs.py", "-k", "test_durable_redis_restarted_mid_job"],
        cwd=ROOT, env={**os.environ, "MODELGATE_SOAK_RESTARTS": str(rounds)},
        capture_output=True, text=True,
    )  # fmt: skip
    summary = [line for line in done.stdout.splitlines() if " passed" in line or " failed" in line]
    return {"rounds": rounds, "exit_status": done.returncode, "summary": summary[-1:],
            "seconds": round(time.monotonic() - started)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--kill-every", default="45-120", help="seconds between kills: MIN-MAX")
    parser.add_argument(
        "--victims",
        default=",".join(VICTIMS),
        help="what to kill, in a random order each round (leave the gateway out to watch its "
        "RSS over the whole run)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s per protocol")
    parser.add_argument("--job-every", type=float, default=5.0, help="seconds between jobs")
    parser.add_argument("--promote-every", type=float, default=120.0)
    parser.add_argument("--restart-rounds", type=int, default=10)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "soak")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    low, high = (float(part) for part in args.kill_every.split("-"))
    victims = [name for name in args.victims.split(",") if name]
    if not set(victims) <= set(VICTIMS):
        parser.error(f"--victims: of {', '.join(VICTIMS)}")
    var_dir = args.var_dir.resolve()
    if var_dir.exists():
        if not (var_dir / ".soak").exists():
            raise SystemExit(f"{var_dir} exists and is not a soak's: not deleting it")
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True, mode=0o700)
    (var_dir / ".soak").touch()

    stack = Stack(var_dir)
    stack.start()
    stop = threading.Event()
    try:
        stack.wait_ready()
        cli = str(Path(sys.prefix) / "bin" / "modelgate")
        trained = subprocess.run([cli, "train", "--seed", "7"], env=stack.env(),
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-2000:]
        _, key = KeyStore(Redis.from_url(stack.redis_url), KEY_PREFIX).create(
            name="soak", owner="soak", scopes=["predict", "jobs"],
            predict_limit="100000000/minute", reads_limit="100000000/minute",
            jobs_limit="100000/hour",
        )  # fmt: skip
        grpc_target = f"127.0.0.1:{stack.ports['GRPC_PORT']}"
        load = Load(stack.url, grpc_target, key, stack.redis_url, KEY_PREFIX, cli, stack.env(),
                    args.rate)  # fmt: skip
        time.sleep(3)  # the gateway's key snapshot (refreshed every 2 s) learns the key
        samples: list[tuple[float, int, int]] = []
        threads = load.threads(args.promote_every, args.job_every)
        threads.append(threading.Thread(target=sample_rss, args=(stack, stop, samples)))
        started = time.monotonic()
        for thread in threads:
            thread.start()
        end = started + args.minutes * 60
        kills: list[Kill] = []
        order: list[str] = []
        while time.monotonic() + low < end:
            time.sleep(min(rng.uniform(low, high), max(0.0, end - time.monotonic())))
            if time.monotonic() >= end:
                break
            order = order or rng.sample(victims, len(victims))
            kills.append(kill_and_recover(stack, order.pop(), started))
            print(f"soak: {kills[-1].line()}", flush=True)
        time.sleep(max(0.0, end - time.monotonic()))
        load.stop.set()
        stop.set()
        for thread in threads:
            thread.join(timeout=200)
        checked_by = time.monotonic() + JOBS_TIMEOUT_SECONDS
        with httpx.Client(base_url=stack.url, timeout=30, trust_env=False) as client:
            for job in load.jobs:
                left = max(5.0, checked_by - time.monotonic())
                job.verdict = check_job(client, key, job, timeout=left)
        states = stack.supervised.states()
        report = build_report(load, kills, samples, started, args.minutes, states)
    finally:
        stop.set()
        make_status = stack.stop()
    report["make_up_exit_status_after_make_down"] = make_status
    report["restart_test"] = restart_test(args.restart_rounds)
    print(render_report(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
