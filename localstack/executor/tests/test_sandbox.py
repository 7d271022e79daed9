"""The execution environment (tradeflow_executor.sandbox) against a real process: the
fixture runtime in fixture_bootstrap.py, started as `bootstrap`. No LocalStack.

    python3 -m unittest discover -s localstack/executor/tests -p 'test_sandbox.py' -v

TRADEFLOW_OLD_RUNNER=1 adds the same large-response check against `cargo lambda
watch` (needs cargo-lambda on PATH and a Cargo workspace at the repo root); it fails
there, which is the viewer test flake (see localstack/README.md).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tradeflow_executor.sandbox import Sandbox, exit_reason  # noqa: E402

FIXTURE = (HERE / "fixture_bootstrap.py").read_text()
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "fixture",
            "AWS_REGION": "us-east-1", "ONLY_IN_CONFIG": "yes"}


def write_bootstrap(code_dir: Path, extra: str = "") -> Path:
    path = code_dir / "bootstrap"
    tmp = code_dir / f".bootstrap-{uuid.uuid4().hex}"
    tmp.write_text(f"#!{sys.executable}\n{FIXTURE}\n{extra}")
    tmp.chmod(0o755)
    tmp.replace(path)  # a new file: what a rebuild produces
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


class SandboxTest(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tradeflow-sandbox-"))
        write_bootstrap(self.dir)
        self.sandboxes = []

    def tearDown(self):
        for s in self.sandboxes:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def sandbox(self, timeout_s=5.0, env=None, **kw) -> Sandbox:
        s = Sandbox(name="fixture", code_dir=self.dir, env={**BASE_ENV, **(env or {})},
                    timeout_s=timeout_s, memory_mb=128, **kw)
        self.sandboxes.append(s)
        return s

    def invoke(self, s: Sandbox, event: dict):
        rid = str(uuid.uuid4())
        r = s.invoke(rid, json.dumps(event).encode(), "arn:aws:lambda:us-east-1:000000000000:function:fixture")
        self.assertEqual(r.request_id, rid)
        return r, json.loads(r.payload)

    def test_a_warm_process_serves_one_invocation_after_another(self):
        s = self.sandbox(timeout_s=7)

        first, a = self.invoke(s, {})
        t0 = int(time.time() * 1000)
        second, b = self.invoke(s, {})

        self.assertFalse(first.is_error or second.is_error, (a, b))
        self.assertEqual(a["pid"], b["pid"])
        self.assertEqual(a["arn"], "arn:aws:lambda:us-east-1:000000000000:function:fixture")
        self.assertGreaterEqual(int(b["deadline_ms"]), t0 + 7000)
        self.assertLess(int(b["deadline_ms"]), time.time() * 1000 + 7000)
        self.assertIn("Init Duration", first.logs)
        self.assertNotIn("Init Duration", second.logs)
        for log, rid in ((first.logs, a["request_id"]), (second.logs, b["request_id"])):
            self.assertTrue(log.startswith(f"START RequestId: {rid} Version: $LATEST\n"), log)
            self.assertIn(f"handling {rid}\n", log)
            self.assertIn(f"END RequestId: {rid}\n", log)
            self.assertIn(f"REPORT RequestId: {rid}\tDuration:", log)

    def test_the_process_sees_exactly_its_configured_environment_and_the_runtime_api(self):
        s = self.sandbox()

        _, out = self.invoke(s, {"env": True})

        env = dict(out["env"])
        api = env.pop("AWS_LAMBDA_RUNTIME_API")
        self.assertRegex(api, r"^127\.0\.0\.1:\d+$")
        env.pop("LC_CTYPE", None)  # set by the Python interpreter of the fixture itself
        self.assertEqual(env, BASE_ENV)

    def test_the_timeout_kills_the_process_and_ends_the_invocation_as_sandbox_timedout(self):
        s = self.sandbox(timeout_s=1)
        _, warm = self.invoke(s, {})

        t0 = time.monotonic()
        r, body = self.invoke(s, {"sleep": 30})
        took = time.monotonic() - t0

        self.assertTrue(r.is_error)
        self.assertEqual(body["errorType"], "Sandbox.Timedout")
        self.assertEqual(body["errorMessage"], f"RequestId: {r.request_id} Error: Task timed out after 1.00 seconds")
        self.assertLess(took, 10)
        self.assertIn("Status: timeout", r.logs)
        deadline = time.monotonic() + 5
        while alive(warm["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(warm["pid"]), "the timed-out process is still running")
        after, out = self.invoke(s, {})
        self.assertFalse(after.is_error, out)
        self.assertNotEqual(out["pid"], warm["pid"])

    def test_a_process_that_exits_during_an_invocation_gives_runtime_exit_error(self):
        s = self.sandbox()
        _, warm = self.invoke(s, {})

        r, body = self.invoke(s, {"exit": 1})

        self.assertTrue(r.is_error)
        self.assertEqual(body, {"errorType": "Runtime.ExitError",
                                "errorMessage": f"RequestId: {r.request_id} Error: Runtime exited with error: exit status 1"})
        _, out = self.invoke(s, {})
        self.assertNotEqual(out["pid"], warm["pid"])

    def test_a_process_that_exits_during_init_gives_runtime_exit_error(self):
        s = self.sandbox(env={"FIXTURE_INIT": "exit"})

        r, body = self.invoke(s, {})

        self.assertTrue(r.is_error)
        self.assertEqual(body["errorType"], "Runtime.ExitError")
        self.assertTrue(body["errorMessage"].endswith("Runtime exited with error: exit status 3"), body)

    def test_an_init_error_reported_by_the_runtime_is_the_invocation_error(self):
        s = self.sandbox(env={"FIXTURE_INIT": "init_error"})

        r, body = self.invoke(s, {})

        self.assertTrue(r.is_error)
        self.assertEqual(body, {"errorType": "Fixture.InitFailed", "errorMessage": "init failed on purpose"})

    def test_a_function_error_reaches_the_invoker_as_the_runtime_posted_it(self):
        s = self.sandbox()

        r, body = self.invoke(s, {"error": "Fatal"})
        after, out = self.invoke(s, {})

        self.assertTrue(r.is_error)
        self.assertEqual(body, {"errorType": "Fatal", "errorMessage": "failed on purpose"})
        self.assertFalse(after.is_error, out)

    def test_a_large_response_sent_in_pieces_reaches_the_invoker_whole(self):
        # The flake of the old runner: it answered the runtime before reading its body.
        s = self.sandbox()

        r, body = self.invoke(s, {"slow_body": True, "size": 300_000})

        self.assertFalse(r.is_error, r.payload[:300])
        self.assertEqual(len(body["pad"]), 300_000)

    def test_a_response_over_6_mb_is_function_response_size_too_large(self):
        s = self.sandbox()

        r, body = self.invoke(s, {"size": 6 * 1024 * 1024 + 10})

        self.assertTrue(r.is_error)
        self.assertEqual(body["errorType"], "Function.ResponseSizeTooLarge")

    def test_a_missing_bootstrap_is_runtime_invalid_entrypoint(self):
        (self.dir / "bootstrap").unlink()
        s = self.sandbox()

        r, body = self.invoke(s, {})

        self.assertTrue(r.is_error)
        self.assertEqual(body["errorType"], "Runtime.InvalidEntrypoint")

    def test_a_bootstrap_for_another_architecture_is_runtime_invalid_entrypoint(self):
        # An ELF header for aarch64 (e_machine 0xB7) in an x86_64 function.
        elf = bytearray(64)
        elf[:4], elf[4], elf[5], elf[18:20] = b"\x7fELF", 2, 1, (0xB7).to_bytes(2, "little")
        path = self.dir / "bootstrap"
        path.write_bytes(bytes(elf))
        path.chmod(0o755)
        s = self.sandbox(architecture="x86_64")

        r, body = self.invoke(s, {})

        self.assertTrue(r.is_error)
        self.assertEqual(body["errorType"], "Runtime.InvalidEntrypoint")
        self.assertIn("exec format error", body["errorMessage"])

    def test_a_rebuilt_bootstrap_is_started_at_the_next_invocation(self):
        s = self.sandbox()
        _, before = self.invoke(s, {})

        write_bootstrap(self.dir, "# rebuilt\n")
        _, after = self.invoke(s, {})

        self.assertNotEqual(before["pid"], after["pid"])
        self.assertFalse(alive(before["pid"]))

    def test_close_stops_the_process(self):
        s = self.sandbox()
        _, out = self.invoke(s, {})

        s.close()

        deadline = time.monotonic() + 5
        while alive(out["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(out["pid"]))

    def test_exit_reasons_are_worded_as_lambda_words_them(self):
        self.assertEqual(exit_reason(1), "exit status 1")
        self.assertEqual(exit_reason(-9), "signal: killed")
        self.assertEqual(exit_reason(-11), "signal: segmentation fault")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(os.environ.get("TRADEFLOW_OLD_RUNNER") == "1", "set TRADEFLOW_OLD_RUNNER=1 to run")
class OldRunnerTest(unittest.TestCase):
    """The same large response through `cargo lambda watch --only-lambda-apis` (the old
    local runner), requested as the browser did, at /lambda-url/<function>/. Expected
    to FAIL: watch answers the runtime's POST before reading its body, hyper stops
    sending, and the caller gets watch's 500 problem document."""

    def test_a_large_response_sent_in_pieces_reaches_the_http_caller_whole(self):
        repo = HERE.parents[2]
        port = free_port()
        watch = subprocess.Popen(
            ["cargo", "lambda", "watch", "--only-lambda-apis", "--ignore-changes",
             "--invoke-address", "127.0.0.1", "--invoke-port", str(port)],
            cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(lambda: (os.killpg(watch.pid, 15), watch.wait()))
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                self.assertLess(time.monotonic(), deadline, "cargo lambda watch did not start")
                time.sleep(0.5)
        code = Path(tempfile.mkdtemp(prefix="tradeflow-old-runner-"))
        write_bootstrap(code)
        fn = subprocess.Popen(
            [str(code / "bootstrap")],
            env={**BASE_ENV, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}/.rt/api",
                 "FIXTURE_DEFAULT_EVENT": json.dumps({"slow_body": True, "size": 300_000})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (fn.kill(), fn.wait()))

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/lambda-url/api/", timeout=30) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()

        self.assertEqual(status, 200, body[:200])
        self.assertEqual(len(json.loads(body)["pad"]), 300_000)


if __name__ == "__main__":
    unittest.main()
