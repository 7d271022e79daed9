#!/usr/bin/env python3
"""Cold init time and peak RSS of each function's release `bootstrap`, run against a
minimal Lambda Runtime API stub (stdlib only; bench/lambda.sh is the entry point).

Init: the bootstrap is started N times with the function's environment (infra/resources.json
as localstack/provision.py gives it, dummy credentials) and AWS_ENDPOINT_URL pointing at a
closed loopback port, so no AWS call can succeed; cold init is the time from just before
the process is spawned to its first `GET /2018-06-01/runtime/invocation/next`. The peak
RSS (VmHWM) at that moment is reported too.

Invocation (--stack URL): one invocation per function on a local stack where the demo
has run: each step gets the input the state machine gave it in the newest execution
(read from Step Functions' execution history), session-keepalive and position-monitor a
scheduled event, api the lineage request of that execution. Peak RSS is the process's
VmHWM when it polls for its next event, i.e. over init plus the one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEXT = "/2018-06-01/runtime/invocation/next"
REGION = "us-east-1"
ACCOUNT = "000000000000"


# -- the Runtime API stub ---------------------------------------------------------


class Run:
    """One process's life as the stub sees it."""

    def __init__(self, pid_box: list, event: dict | None):
        self.pid_box = pid_box  # [pid] once spawned
        self.event = event
        self.request_id = str(uuid.uuid4())
        self.first_poll_ns: int | None = None
        self.init_hwm_kb: int | None = None
        self.init_cpu_ns: int | None = None
        self.invoke_hwm_kb: int | None = None
        self.handed_off_ns: int | None = None
        self.done_ns: int | None = None
        self.status: str | None = None  # "response" | "error" | "init_error"
        self.body = b""
        self.polled = threading.Event()  # first poll (init done)
        self.finished = threading.Event()  # polled again after the invocation
        self.release = threading.Event()  # the stub may drop held connections


def vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_ns(pid: int) -> int | None:
    """On-CPU time of all the process's threads so far (schedstat, ns): unlike wall
    time, not stretched by other processes on a loaded machine."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


class Stub(ThreadingHTTPServer):
    daemon_threads = True
    run: Run | None = None

    def handle_error(self, request, client_address):
        pass  # a stopped process resets its held poll


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):
        pass

    def _reply(self, code: int, body: bytes = b"", headers: dict | None = None):
        try:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def do_GET(self):
        now = time.monotonic_ns()
        run = self.server.run
        if run is None or self.path != NEXT:
            return self._reply(404)
        pid = run.pid_box[0]
        if run.first_poll_ns is None:
            run.first_poll_ns = now
            run.init_hwm_kb = vm_hwm_kb(pid)
            run.init_cpu_ns = cpu_ns(pid)
            run.polled.set()
            if run.event is not None:
                run.handed_off_ns = time.monotonic_ns()
                deadline = int(time.time() * 1000) + 900_000
                return self._reply(200, json.dumps(run.event).encode(), {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": run.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })
        else:
            run.invoke_hwm_kb = vm_hwm_kb(pid)
            run.finished.set()
        # Hold the poll (as Lambda does between events) until the process is stopped.
        run.release.wait(60)
        self._reply(500)

    def do_POST(self):
        run = self.server.run
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if run is not None:
            if self.path.endswith("/response"):
                run.status, run.body, run.done_ns = "response", body, time.monotonic_ns()
            elif self.path.endswith("/error"):
                run.status, run.body, run.done_ns = "error", body, time.monotonic_ns()
                if "/init/" in self.path:
                    run.status = "init_error"
                    run.polled.set()
                    run.finished.set()
        self._reply(202, b"{}", {"Content-Type": "application/json"})


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- environment ------------------------------------------------------------------


def resources() -> dict:
    with open(ROOT / "infra" / "resources.json") as f:
        return json.load(f)


def base_env() -> dict:
    """What localstack/provision.py gives every function (resource names, resources.json's
    `env`, local credentials), from its --print-env (which only prints: importing the
    module would provision a stack)."""
    out = subprocess.run([sys.executable, str(ROOT / "localstack" / "provision.py"), "--print-env"],
                         check=True, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "TRADEFLOW_ENV_FILE"}).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if line and not line.startswith("#"))


def function_env(base: dict, fn: dict, endpoint: str, stub: str, ibkr_base_url: str | None) -> dict:
    name = fn["name"]
    # provision.function_settings: the memory infra/lib/tradeflow-stack.ts gives the function.
    memory = fn.get("memory") or (1024 if name in ("render-charts", "analyze-chart") else 512)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **base,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_LAMBDA_RUNTIME_API": stub,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "LAMBDA_TASK_ROOT": "/var/task",
        "TZ": ":UTC",
    }
    env.pop("RUST_LOG", None)  # AWS_LAMBDA_LOG_LEVEL, as deployed
    if ibkr_base_url:
        env["IBKR_BASE_URL"] = ibkr_base_url
    return env


# -- one process ------------------------------------------------------------------


def run_once(server: Stub, bootstrap: Path, env: dict, event: dict | None, timeout: float,
             log) -> Run:
    pid_box = [0]
    run = Run(pid_box, event)
    server.run = run
    t0 = time.monotonic_ns()
    proc = subprocess.Popen([str(bootstrap)], env=env, cwd=bootstrap.parent,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    pid_box[0] = proc.pid
    try:
        waited = run.finished if event is not None else run.polled
        if not waited.wait(timeout):
            run.status = run.status or "timeout"
        elif event is not None and run.invoke_hwm_kb is None:
            run.invoke_hwm_kb = vm_hwm_kb(proc.pid)
    finally:
        run.release.set()
        proc.kill()
        proc.wait()
        server.run = None
    run.t0 = t0
    if run.first_poll_ns is None and run.status is None:
        run.status = f"exited ({proc.returncode})"
    return run


def pctl(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(q * (len(xs) - 1))))
    return xs[k]


def bootstrap_of(lambda_dir: Path, name: str, scratch: Path) -> Path:
    """`<dir>/<name>/bootstrap`, or the one inside `bootstrap.zip` (extracted to scratch)."""
    plain = lambda_dir / name / "bootstrap"
    if plain.is_file():
        return plain
    out = scratch / name
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(lambda_dir / name / "bootstrap.zip") as z:
        z.extract("bootstrap", out)
    path = out / "bootstrap"
    path.chmod(0o755)
    return path


def zip_size(lambda_dir: Path, name: str) -> int | None:
    z = lambda_dir / name / "bootstrap.zip"
    return z.stat().st_size if z.is_file() else None


# -- inputs of one demo execution (Step Functions over its JSON protocol, stdlib) ---


def sfn(stack: str, action: str, payload: dict) -> dict:
    req = urllib.request.Request(stack, data=json.dumps(payload).encode(), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"AWSStepFunctions.{action}",
        # LocalStack routes by the credential scope's service; it does not check signatures.
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/states/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    })
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def demo_inputs(stack: str) -> tuple[str, dict[str, dict]]:
    """The newest succeeded execution's ARN and each Lambda's first input in it."""
    machines = sfn(stack, "ListStateMachines", {})["stateMachines"]
    execs = []
    for m in machines:
        execs += sfn(stack, "ListExecutions", {"stateMachineArn": m["stateMachineArn"],
                                               "statusFilter": "SUCCEEDED"})["executions"]
    if not execs:
        sys.exit("no succeeded execution on the stack: run the demo first")
    newest = max(execs, key=lambda e: e["startDate"])
    events, token = [], None
    while True:
        page = sfn(stack, "GetExecutionHistory", {"executionArn": newest["executionArn"],
                                                  "maxResults": 1000,
                                                  **({"nextToken": token} if token else {})})
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            break
    inputs: dict[str, dict] = {}
    for e in events:
        if e["type"] == "LambdaFunctionScheduled":
            d = e["lambdaFunctionScheduledEventDetails"]
            name, payload = d["resource"].split(":")[-1], json.loads(d.get("input") or "{}")
        elif e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == "invoke":
            params = json.loads(e["taskScheduledEventDetails"]["parameters"])
            name, payload = params["FunctionName"].split(":")[-1], params.get("Payload", {})
        else:
            continue
        inputs.setdefault(name, payload)
    return newest["executionArn"], inputs


def scheduled_event() -> dict:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT, "region": REGION,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/bench"], "detail": {}}


def http_event(path: str, api_key: str) -> dict:
    """An HTTP API (payload 2.0) GET, as API Gateway gives it to the api function."""
    return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"x-api-key": api_key, "host": "localhost", "accept": "application/json"},
            "requestContext": {"accountId": ACCOUNT, "apiId": "bench", "domainName": "localhost",
                               "domainPrefix": "localhost", "requestId": str(uuid.uuid4()),
                               "routeKey": "$default", "stage": "$default",
                               "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0,
                               "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                                        "sourceIp": "127.0.0.1", "userAgent": "bench"}},
            "isBase64Encoded": False}


# -- main ---------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lambda-dir", type=Path, required=True)
    p.add_argument("--scratch", type=Path, required=True)
    p.add_argument("-n", type=int, default=20, help="cold starts per function")
    p.add_argument("--stack", help="local stack URL: also measure one invocation per function")
    p.add_argument("--ibkr-base-url", help="IBKR_BASE_URL for --stack runs")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for every run (e.g. SSL_CERT_DIR=...)")
    p.add_argument("functions", nargs="*")
    a = p.parse_args()

    res = resources()
    fns = {f["name"]: f for f in res["functions"]}
    names = a.functions or list(fns)
    unknown = [n for n in names if n not in fns]
    if unknown:
        sys.exit(f"not a function in infra/resources.json: {', '.join(unknown)}")
    base = {**base_env(), **dict(e.split("=", 1) for e in a.env)}
    api_key = res["env"].get("API_KEY", "")

    server = Stub(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stub = f"127.0.0.1:{server.server_address[1]}"
    dead = f"http://127.0.0.1:{closed_port()}"
    a.scratch.mkdir(parents=True, exist_ok=True)

    inputs, execution = {}, None
    if a.stack:
        execution, inputs = demo_inputs(a.stack)
        print(f"inputs from {execution}", file=sys.stderr)

    rows = []
    for name in names:
        boot = bootstrap_of(a.lambda_dir, name, a.scratch)
        log_path = a.scratch / f"{name}.log"
        with open(log_path, "wb") as log:
            env = function_env(base, fns[name], dead, stub, None)
            # One untimed start first: the binary's pages are then in the page cache,
            # as they are on a warm Lambda host (a cold start there still maps them).
            run_once(server, boot, env, None, 30, log)
            inits, cpus, hwms, errors = [], [], [], 0
            for _ in range(a.n):
                r = run_once(server, boot, env, None, 30, log)
                if r.first_poll_ns is None:
                    errors += 1
                    continue
                inits.append((r.first_poll_ns - r.t0) / 1e6)
                hwms.append(r.init_hwm_kb or 0)
                if r.init_cpu_ns is not None:
                    cpus.append(r.init_cpu_ns / 1e6)
            row = {"function": name, "zip_bytes": zip_size(a.lambda_dir, name),
                   "init_ms_median": statistics.median(inits) if inits else None,
                   "init_ms_p90": pctl(inits, 0.9) if inits else None,
                   "init_cpu_ms_median": statistics.median(cpus) if cpus else None,
                   "init_hwm_kb": statistics.median(hwms) if hwms else None,
                   "init_failures": errors}
            if a.stack:
                event = inputs.get(name)
                if name in ("session-keepalive", "position-monitor"):
                    event = scheduled_event()
                elif name == "api" and execution:
                    event = http_event(f"/lineage/execution/{execution.split(':')[-1]}", api_key)
                if event is not None:
                    env = function_env(base, fns[name], a.stack, stub, a.ibkr_base_url)
                    r = run_once(server, boot, env, event, 120, log)
                    row["invoke_hwm_kb"] = r.invoke_hwm_kb
                    row["invoke_status"] = r.status
                    row["invoke_ms"] = ((r.done_ns - r.handed_off_ns) / 1e6
                                        if r.done_ns and r.handed_off_ns else None)
                    if r.status != "response":
                        row["invoke_error"] = r.body[:300].decode(errors="replace")
                else:
                    row["invoke_status"] = "no input in the execution"
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    server.shutdown()

    if a.json:
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
    print_table(rows, a.n, bool(a.stack))


def print_table(rows: list[dict], n: int, stack: bool) -> None:
    mib = lambda kb: f"{kb / 1024:.1f} MiB" if kb else "–"  # noqa: E731
    head = (f"| function | zip | cold init, median / p90 ({n} starts) | init CPU time, median |"
            " RSS at init |")
    sep = "|---|---|---|---|---|"
    if stack:
        head += " peak RSS, init + one invocation | invocation |"
        sep += "---|---|"
    print(head)
    print(sep)
    for r in rows:
        z = f"{r['zip_bytes'] / 1e6:.1f} MB" if r["zip_bytes"] else "–"
        init = (f"{r['init_ms_median']:.1f} / {r['init_ms_p90']:.1f} ms"
                if r["init_ms_median"] is not None else "failed")
        cpu = f"{r['init_cpu_ms_median']:.1f} ms" if r.get("init_cpu_ms_median") else "–"
        line = f"| {r['function']} | {z} | {init} | {cpu} | {mib(r['init_hwm_kb'])} |"
        if stack:
            inv = r.get("invoke_status") or "–"
            if inv == "response" and r.get("invoke_ms") is not None:
                inv = f"ok, {r['invoke_ms']:.0f} ms"
            line += f" {mib(r.get('invoke_hwm_kb'))} | {inv} |"
        print(line)


if __name__ == "__main__":
    main()
