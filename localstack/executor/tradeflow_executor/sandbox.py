"""One Lambda execution environment on this machine: the function's `bootstrap` as
its own process, served by its own Lambda Runtime API, with Lambda's timeout and
crash semantics.

No LocalStack import here: `plugin.py` adapts this to LocalStack's executor
interface, and the unit tests (`localstack/executor/tests`) drive it directly.

Behaviour copied from AWS Lambda (sources in the comments where it matters):
- Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):
  `GET /2018-06-01/runtime/invocation/next` long-polls and returns the event with
  `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`,
  `-Trace-Id`; `POST .../invocation/{id}/response` and `.../{id}/error` answer
  202; `POST /2018-06-01/runtime/init/error` reports a failed init.
  A response is read *whole* before it is accepted or answered: answering first
  lets a client stop sending (hyper does), which truncated large responses under
  `cargo lambda watch` (localstack/README.md, "the viewer test flake").
- The configured timeout ends the invocation with
  `{"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: <id> Error: Task
  timed out after 3.00 seconds"}`, and the process is killed; the next invocation
  starts a fresh one (Lambda resets the environment).
- A process that exits during an invocation (or before taking it) gives
  `Runtime.ExitError` with `Runtime exited with error: exit status 1` (or
  `signal: killed`), as the provided.al2023 runtimes report it.
- A missing, non-executable or wrong-architecture bootstrap gives
  `Runtime.InvalidEntrypoint`.
- Responses above 6 MB (the synchronous invocation limit) give
  `Function.ResponseSizeTooLarge`.
- Hot reloading (LocalStack's `hot-reload` code, used by the dev stack): when the
  bootstrap file changes, the next invocation starts the new binary.

The environment comes entirely from the caller (LocalStack computes it from the
function's configuration); this module adds only `AWS_LAMBDA_RUNTIME_API`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import http.server
import json
import os
import queue
import signal
import socketserver
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

RUNTIME_API_PREFIX = "/2018-06-01/runtime"
# Synchronous invocation payload limit (Lambda quotas: 6 MB request and response).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
# ELF e_machine values (System V ABI) for the two Lambda architectures.
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}


class SandboxError(Exception):
    """A Lambda error raised before the function could run (bad bootstrap)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclasses.dataclass
class Result:
    """What the invoker gets: the payload, whether it is a function error, the logs."""

    request_id: str
    payload: bytes
    is_error: bool
    logs: str
    # Which process served it (tests use it to tell instances apart).
    pid: int | None = None


def _unread_bytes(gen: "_Generation") -> int:
    """Bytes waiting in the process's output pipe (FIONREAD)."""
    if gen.proc is None or gen.proc.stdout is None or gen.proc.stdout.closed:
        return 0
    try:
        buf = fcntl.ioctl(gen.proc.stdout.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return struct.unpack("i", buf)[0]


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def exit_reason(returncode: int) -> str:
    """How Go's os/exec (Lambda's init) words a process end."""
    if returncode < 0:
        try:
            return f"signal: {signal.strsignal(-returncode).lower()}"
        except (ValueError, AttributeError):
            return f"signal: {-returncode}"
    return f"exit status {returncode}"


def elf_architecture(path: Path) -> str | None:
    """The Lambda architecture an ELF binary is built for; None for scripts and others."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    little = head[5] == 1
    (machine,) = struct.unpack("<H" if little else ">H", head[18:20])
    return ELF_MACHINES.get(machine, f"elf-machine-{machine:#x}")


class Invocation:
    def __init__(self, request_id: str, payload: bytes, function_arn: str, trace_id: str | None,
                 timeout_s: float):
        self.request_id = request_id
        self.payload = payload
        self.function_arn = function_arn
        self.trace_id = trace_id
        self.timeout_s = timeout_s
        self.handed_off_at: float | None = None  # monotonic
        self.deadline_ms: int | None = None  # epoch ms, sent to the runtime
        self.result: tuple[bool, bytes] | None = None  # (is_error, payload)
        self.next_calls_at_handoff = 0


class _Generation:
    """One process and the Runtime API server it talks to. A restarted process gets
    a new generation, so a request still parked by a dead process can never take an
    invocation meant for its successor."""

    def __init__(self, sandbox: "Sandbox"):
        self.sandbox = sandbox
        self.queue: queue.Queue[Invocation | None] = queue.Queue()
        self.closed = threading.Event()
        self.init_done = threading.Event()
        self.init_error: bytes | None = None
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.identity: tuple | None = None
        self.started_at = time.monotonic()
        self.init_duration_ms: float | None = None
        self.next_calls = 0  # GET /next requests so far (the end of an invoke phase)
        self.reader_waiting = False  # the output reader is blocked on an empty pipe
        handler = _make_handler(self)
        self.server = _Server(("127.0.0.1", 0), handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.5},
                         name=f"runtime-api-{sandbox.name}", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.returncode is None

    def close(self) -> None:
        self.closed.set()
        self.queue.put(None)  # wakes a parked GET /next
        if self.proc is not None and self.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.server.shutdown()
        self.server.server_close()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A killed or restarted process drops its connection: expected, not an error.
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError, TimeoutError)):
            super().handle_error(request, client_address)


def _make_handler(gen: _Generation):
    sandbox = gen.sandbox

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the runtime clients expect

        def log_message(self, fmt, *args):  # the function's own output is what matters
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", (headers or {}).get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self):
            if self.path != f"{RUNTIME_API_PREFIX}/invocation/next":
                return self._send(404, error_payload("NotFound", f"no route {self.path}"))
            if not gen.init_done.is_set():
                gen.init_duration_ms = (time.monotonic() - gen.started_at) * 1000
                gen.init_done.set()
            sandbox._next_called(gen)
            # Blocks without polling (many idle environments share LocalStack's
            # interpreter); close() wakes it with None.
            inv = gen.queue.get()
            if inv is not None and not gen.closed.is_set():
                sandbox._handed_off(inv)
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                }
                if inv.trace_id:
                    headers["Lambda-Runtime-Trace-Id"] = inv.trace_id
                return self._send(200, inv.payload, headers)
            gen.queue.put(None)  # for any other request parked here
            # The environment is shutting down: a closed connection ends the runtime.
            self.close_connection = True
            return self._send(410, error_payload("Gone", "execution environment stopped"))

        def do_POST(self):
            # The body is read in full before anything is accepted or answered.
            body = self._read_body()
            parts = self.path[len(RUNTIME_API_PREFIX):].strip("/").split("/")
            if parts == ["init", "error"]:
                gen.init_error = _error_body(body, self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                             "Runtime.InitError")
                sandbox._notify()
                return self._send(202, b'{"status":"OK"}')
            if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                return self._send(404, error_payload("NotFound", f"no route {self.path}"))
            request_id, kind = parts[1], parts[2]
            if kind == "response" and len(body) > MAX_RESPONSE_BYTES:
                sandbox._complete(request_id, True, error_payload(
                    "Function.ResponseSizeTooLarge",
                    f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."))
                return self._send(413, error_payload(
                    "RequestEntityTooLarge", f"response of {len(body)} bytes exceeds {MAX_RESPONSE_BYTES}"))
            if kind == "error":
                body = _error_body(body, self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                   "Runtime.Unknown")
            if not sandbox._complete(request_id, kind == "error", body):
                return self._send(400, error_payload("InvalidRequestID", f"unknown request id {request_id}"))
            return self._send(202, b'{"status":"OK"}')

    return Handler


def _error_body(body: bytes, header_type: str | None, default_type: str) -> bytes:
    """The invoker sees the error document the runtime posted; a body that is not one
    is wrapped, with the type from the Lambda-Runtime-Function-Error-Type header."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and ("errorType" in doc or "errorMessage" in doc):
            return body
    except ValueError:
        pass
    return error_payload(header_type or default_type, body.decode(errors="replace"))


class Sandbox:
    """A Lambda execution environment: invocations one at a time, on a process that is
    started on demand and kept warm between invocations.

    `env` is the process environment (AWS_LAMBDA_RUNTIME_API is added per process);
    `log_sink` receives each output line of the function as it arrives; `on_process`
    is told (pid, True) when a process starts and (pid, False) when it has ended.
    """

    def __init__(self, *, name: str, code_dir: Path, env: dict[str, str], timeout_s: float,
                 memory_mb: int, architecture: str = "x86_64", version: str = "$LATEST",
                 log_sink: Callable[[str], None] | None = None,
                 on_process: Callable[[int, bool], None] | None = None):
        self.name = name
        self.code_dir = Path(code_dir)
        self.bootstrap = self.code_dir / "bootstrap"
        self.env = dict(env)
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.architecture = architecture
        self.version = version
        self.log_sink = log_sink or (lambda line: None)
        self.on_process = on_process or (lambda pid, running: None)
        self._lock = threading.Lock()  # one invocation at a time
        self._cond = threading.Condition()
        self._gen: _Generation | None = None
        self._current: Invocation | None = None
        self._logs: list[str] = []  # output of the current (or next) invocation
        self._recent: deque[str] = deque(maxlen=500)
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Starts the process now (Lambda's init phase); errors surface at invoke."""
        with self._lock:
            try:
                self._ensure_process()
            except SandboxError:
                pass

    def close(self) -> None:
        """Stops the process; an invocation in flight ends as Runtime.ExitError."""
        with self._cond:
            self._closed = True
            gen, self._gen = self._gen, None
            self._cond.notify_all()
        if gen is not None:
            gen.close()

    @property
    def pid(self) -> int | None:
        gen = self._gen
        return gen.proc.pid if gen is not None and gen.alive else None

    def recent_logs(self) -> str:
        return "".join(self._recent)

    def _identity(self) -> tuple:
        st = os.stat(self.bootstrap)  # follows symlinks: a rebuilt binary is a new identity
        return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size

    def _check_bootstrap(self) -> None:
        if not self.bootstrap.exists():
            # The message AWS gives for a zip without bootstrap.
            raise SandboxError("Runtime.InvalidEntrypoint",
                               "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]")
        if not os.access(self.bootstrap, os.X_OK):
            raise SandboxError("Runtime.InvalidEntrypoint",
                               "fork/exec /var/task/bootstrap: permission denied")
        arch = elf_architecture(self.bootstrap)
        if arch is not None and arch != self.architecture:
            # What Lambda reports for an x86_64 binary in an arm64 function and vice versa.
            raise SandboxError("Runtime.InvalidEntrypoint",
                               f"fork/exec /var/task/bootstrap: exec format error "
                               f"(bootstrap is {arch}, the function is {self.architecture})")

    def _ensure_process(self) -> _Generation:
        gen = self._gen
        if gen is not None and gen.alive:
            try:
                if self._identity() == gen.identity:
                    return gen
            except OSError:
                pass
            # Hot reload: the bootstrap changed since this process started.
            gen.close()
        elif gen is not None:
            gen.close()
        self._gen = None
        self._check_bootstrap()
        gen = _Generation(self)
        env = {**self.env, "AWS_LAMBDA_RUNTIME_API": gen.address}
        try:
            gen.identity = self._identity()
            gen.proc = subprocess.Popen(
                [str(self.bootstrap)], cwd=str(self.code_dir), env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True)
        except OSError as e:
            gen.close()
            raise SandboxError("Runtime.InvalidEntrypoint",
                               f"fork/exec /var/task/bootstrap: {e.strerror.lower() if e.strerror else e}") from e
        self._gen = gen
        self._tell(gen.proc.pid, True)
        threading.Thread(target=self._read_output, args=(gen,), daemon=True,
                         name=f"lambda-output-{self.name}").start()
        threading.Thread(target=self._wait_exit, args=(gen,), daemon=True,
                         name=f"lambda-exit-{self.name}").start()
        return gen

    def _read_output(self, gen: _Generation) -> None:
        """Collects the process's output line by line. Raw reads, so that "waiting on an
        empty pipe" is known exactly (see _drain)."""
        assert gen.proc is not None and gen.proc.stdout is not None
        fd = gen.proc.stdout.fileno()
        pending = b""
        while True:
            with self._cond:
                gen.reader_waiting = True
                self._cond.notify_all()
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                gen.reader_waiting = False
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self._output(raw.decode(errors="replace") + "\n")
        if pending:
            self._output(pending.decode(errors="replace") + "\n")
        with self._cond:
            gen.reader_waiting = True
            self._cond.notify_all()
        gen.proc.stdout.close()

    def _output(self, line: str) -> None:
        with self._cond:
            self._logs.append(line)
            self._recent.append(line)
        try:
            self.log_sink(line)
        except Exception:  # a log file problem must not stop the function
            pass

    def _drain(self, gen: _Generation, after_next_calls: int) -> None:
        """Waits (briefly) until the invocation's output is collected. As on Lambda, the
        invoke phase ends when the runtime asks for the next event: whatever it wrote
        before that is in the pipe by then, and is read once the reader waits on an
        empty pipe."""
        deadline = time.monotonic() + 0.5
        with self._cond:
            while time.monotonic() < deadline:
                ended = gen.next_calls > after_next_calls or gen.returncode is not None
                if ended and gen.reader_waiting and _unread_bytes(gen) == 0:
                    return
                self._cond.wait(timeout=0.01)

    def _wait_exit(self, gen: _Generation) -> None:
        assert gen.proc is not None
        code = gen.proc.wait()
        with self._cond:
            gen.returncode = code
            self._cond.notify_all()
        self._tell(gen.proc.pid, False)

    def _tell(self, pid: int, running: bool) -> None:
        try:
            self.on_process(pid, running)
        except Exception:  # bookkeeping must not break the function
            pass

    # -- called by the Runtime API handlers -------------------------------------------

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _next_called(self, gen: _Generation) -> None:
        with self._cond:
            gen.next_calls += 1
            self._cond.notify_all()

    def _handed_off(self, inv: Invocation) -> None:
        with self._cond:
            inv.next_calls_at_handoff = self._gen.next_calls if self._gen is not None else 0
            inv.handed_off_at = time.monotonic()
            inv.deadline_ms = int(time.time() * 1000 + inv.timeout_s * 1000)
            self._cond.notify_all()

    def _complete(self, request_id: str, is_error: bool, payload: bytes) -> bool:
        with self._cond:
            inv = self._current
            if inv is None or inv.request_id != request_id or inv.result is not None:
                return False
            inv.result = (is_error, payload)
            self._cond.notify_all()
            return True

    # -- invoke -----------------------------------------------------------------------

    def invoke(self, request_id: str, payload: bytes, function_arn: str,
               trace_id: str | None = None) -> Result:
        """Runs one invocation to its end: response, function error, timeout or crash."""
        with self._lock:
            t0 = time.monotonic()
            inv = Invocation(request_id, payload, function_arn, trace_id, self.timeout_s)
            try:
                if self._closed:
                    raise SandboxError("Runtime.Unknown", "execution environment stopped")
                gen = self._ensure_process()
            except SandboxError as e:
                return Result(request_id, error_payload(e.error_type, f"RequestId: {request_id} Error: {e.message}"),
                              True, self._report(inv, t0, None, "error", 0))
            cold = not gen.init_done.is_set()
            with self._cond:
                self._current = inv
            gen.queue.put(inv)
            status = self._wait(gen, inv, t0)
            max_memory_mb = self._max_memory_mb(gen)
            if status == "done":
                self._drain(gen, inv.next_calls_at_handoff)
            with self._cond:
                self._current = None
                is_error, body = inv.result if inv.result is not None else (True, b"")
            if status == "timeout":
                body = error_payload("Sandbox.Timedout",
                                     f"RequestId: {request_id} Error: Task timed out after {self.timeout_s:.2f} seconds")
                gen.close()
            elif status == "exited":
                reason = exit_reason(gen.returncode) if gen.returncode else "Runtime exited without providing a reason"
                if gen.returncode:
                    reason = f"Runtime exited with error: {reason}"
                body = error_payload("Runtime.ExitError", f"RequestId: {request_id} Error: {reason}")
            elif status == "init_error":
                body = gen.init_error or error_payload("Runtime.InitError", "init failed")
                gen.close()
            if status != "done":
                is_error = True
            pid = gen.proc.pid if gen.proc is not None else None
            logs = self._report(inv, t0, gen if cold else None, status, max_memory_mb)
            return Result(request_id, body, is_error, logs, pid)

    def _wait(self, gen: _Generation, inv: Invocation, t0: float) -> str:
        """Waits for the invocation's end; returns done, timeout, exited or init_error."""
        with self._cond:
            while True:
                if inv.result is not None:
                    return "done"
                if gen.init_error is not None and inv.handed_off_at is None:
                    return "init_error"
                if gen.returncode is not None:
                    # A response that raced with the exit still counts.
                    return "done" if inv.result is not None else "exited"
                now = time.monotonic()
                # Init (a suppressed init, on AWS) counts against the function timeout too.
                start = inv.handed_off_at if inv.handed_off_at is not None else t0
                remaining = start + inv.timeout_s - now
                if remaining <= 0:
                    return "timeout"
                self._cond.wait(timeout=min(remaining, 1.0))

    def _report(self, inv: Invocation, t0: float, cold_gen: _Generation | None, status: str,
                max_memory_mb: int) -> str:
        """The invocation's log: START, the function's output, END and REPORT, as Lambda
        writes them to the log stream of the environment."""
        with self._cond:
            lines, self._logs = self._logs, []
        duration_ms = (time.monotonic() - (inv.handed_off_at or t0)) * 1000
        report = (f"REPORT RequestId: {inv.request_id}\tDuration: {duration_ms:.2f} ms\t"
                  f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {self.memory_mb} MB\t"
                  f"Max Memory Used: {max_memory_mb} MB")
        if cold_gen is not None and cold_gen.init_duration_ms is not None:
            report += f"\tInit Duration: {cold_gen.init_duration_ms:.2f} ms"
        if status == "timeout":
            report += "\tStatus: timeout"
        elif status in ("exited", "init_error", "error"):
            report += "\tStatus: error"
        out = [f"START RequestId: {inv.request_id} Version: {self.version}\n", *lines,
               f"END RequestId: {inv.request_id}\n", report + "\n"]
        return "".join(out)

    @staticmethod
    def _max_memory_mb(gen: _Generation) -> int:
        """Peak resident memory of the process (VmHWM), the figure Lambda reports."""
        if gen.proc is None:
            return 0
        try:
            with open(f"/proc/{gen.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) // 1024
        except OSError:
            pass
        return 0
