"""N concurrent API reads vs N one after another, on the local runtime (the HTTP front,
LocalStack's Lambda, one process per environment) and, side by side in the same run,
on the old runner (`cargo lambda watch`, one instance per function), both serving the
same debug build of the api function against the same LocalStack.

    localstack/up.sh && source localstack/env.sh
    $LS_VENV/bin/python localstack/executor/bench_api_concurrency.py [--n 30] [--path lineage/recent]

Prints, for each runner: one read (best of 5), N reads one after another, N at once
(median of 3 bursts), and the ratio N-at-once / N-one-after-another, then the ratio of
the two runners. A benchmark, not a test: the numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def read(url: str, key: str) -> float:
    req = urllib.request.Request(url, headers={"x-api-key": key})
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status}")
    return time.monotonic() - t0


def measure(url: str, key: str, n: int) -> dict:
    for _ in range(3):
        read(url, key)  # warm
    one = min(read(url, key) for _ in range(5))
    t0 = time.monotonic()
    for _ in range(n):
        read(url, key)
    sequential = time.monotonic() - t0
    bursts = []
    for _ in range(3):
        t0 = time.monotonic()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda _: read(url, key), range(n)))
        bursts.append(time.monotonic() - t0)
    concurrent = statistics.median(bursts)
    return {"one": one, "sequential": sequential, "concurrent": concurrent, "ratio": concurrent / sequential}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_watch(port: int) -> subprocess.Popen:
    env_text = subprocess.run([sys.executable, str(REPO / "localstack/provision.py"), "--print-env"],
                              capture_output=True, text=True, check=True).stdout
    env_file = Path(tempfile.mkdtemp(prefix="tradeflow-bench-")) / "lambda.env"
    env_file.write_text(env_text)
    cl_bin = Path(os.environ.get("TRADEFLOW_CACHE", Path.home() / ".cache/tradeflow")) / "cargo-lambda-venv/bin"
    proc = subprocess.Popen(
        ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1",
         "--invoke-port", str(port), "--env-file", str(env_file)],
        cwd=REPO, env={**os.environ, "PATH": f"{cl_bin}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("cargo lambda watch did not start")
            time.sleep(0.5)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--path", default="lineage/recent")
    args = p.parse_args()
    api, key = os.environ.get("TRADEFLOW_API_URL"), os.environ.get("TRADEFLOW_API_KEY")
    if not api or not key:
        raise SystemExit("source localstack/env.sh first")
    port = free_port()
    watch = start_watch(port)
    try:
        runners = {"local runtime (HTTP front)": f"{api}/{args.path}",
                   "cargo lambda watch (old)": f"http://127.0.0.1:{port}/lambda-url/api/{args.path}"}
        results = {name: measure(url, key, args.n) for name, url in runners.items()}
    finally:
        os.killpg(watch.pid, 15)
        watch.wait()
    print(f"GET /{args.path}, N = {args.n}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| runner | one read | N one after another | N at once | at once / one after another |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['one'] * 1000:.0f} ms | {r['sequential']:.2f} s | {r['concurrent']:.2f} s | {r['ratio']:.2f} |")
    new, old = results.values()
    print(f"N at once: local runtime / old runner = {new['concurrent'] / old['concurrent']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
