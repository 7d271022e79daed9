"""The local Lambda runtime inside the running local stack: functions created through
the Lambda API run as LocalStack configures them, several instances when invocations
overlap, the timeout and crashes reported as on AWS (also to Step Functions), and the
api function behind the HTTP front serving concurrent reads on separate instances.

Needs the stack: `localstack/up.sh && source localstack/env.sh`, then
    $TRADEFLOW_CACHE/localstack-venv/bin/python -m unittest discover \\
        -s localstack/executor/tests -p 'test_stack.py' -v
(tests/run.sh runs it). Without the stack's environment it fails, saying so.
"""

import io
import json
import os
import sys
import tempfile
import time
import unittest
import urllib.request
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

HERE = Path(__file__).resolve().parent
ROLE = "arn:aws:iam::000000000000:role/tradeflow-local-lambda"  # localstack/provision.py's role
# What Lambda itself puts in a function's environment (AWS "Defined runtime environment
# variables", plus the emulator endpoint LocalStack's Lambda injects); everything else
# a process sees must come from its configuration.
LAMBDA_INJECTED = {
    "_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ", "LANG", "PATH", "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT", "_X_AMZN_TRACE_ID",
    "AWS_ENDPOINT_URL",
    # The local runtime's AWS call recording (plugin.py, for infra/local/iam_check.py).
    "TRADEFLOW_AWS_CALL_LOG", "TRADEFLOW_AWS_CALL_ACCOUNT",
}
# Set by the Python interpreter of the fixture itself, not by the runtime.
INTERPRETER_ENV = {"LC_CTYPE"}


def endpoint() -> str:
    url = os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        raise AssertionError("no local stack: run `localstack/up.sh && source localstack/env.sh` first")
    return url


def client(service: str, **config):
    return boto3.client(service, endpoint_url=endpoint(), region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=120,
                                      max_pool_connections=50, **config))


def fixture_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, f"#!{sys.executable}\n" + (HERE / "fixture_bootstrap.py").read_text())
    return buf.getvalue()


class FixtureFunctionTest(unittest.TestCase):
    """A function whose bootstrap is tests/fixture_bootstrap.py, created like any other."""

    @classmethod
    def setUpClass(cls):
        cls.lam = client("lambda")
        cls.name = cls.create(f"tradeflow-test-fixture-{uuid.uuid4().hex[:8]}", timeout=20)
        cls.short = cls.create(f"{cls.name}-2s", timeout=2)

    @classmethod
    def create(cls, name: str, timeout: int) -> str:
        cls.lam.create_function(
            FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=ROLE,
            Code={"ZipFile": fixture_zip()}, Timeout=timeout, MemorySize=256,
            Environment={"Variables": {"ONLY_IN_CONFIG": "yes"}})
        cls.lam.get_waiter("function_active_v2").wait(FunctionName=name)
        return name

    @classmethod
    def tearDownClass(cls):
        cls.lam.delete_function(FunctionName=cls.name)
        cls.lam.delete_function(FunctionName=cls.short)

    def invoke(self, event: dict, function: str | None = None):
        r = self.lam.invoke(FunctionName=function or self.name, Payload=json.dumps(event).encode())
        return r.get("FunctionError"), json.loads(r["Payload"].read())

    def test_overlapping_invocations_run_on_separate_instances_and_idle_ones_are_reused(self):
        n = 6
        barrier = tempfile.mkdtemp(prefix="tradeflow-barrier-")

        with ThreadPoolExecutor(n) as pool:
            overlapping = list(pool.map(lambda _: self.invoke({"barrier": barrier, "n": n}), range(n)))
        sequential = [self.invoke({}) for _ in range(n)]

        for error, out in overlapping + sequential:
            self.assertIsNone(error, out)
        busy = {out["pid"] for _, out in overlapping}
        self.assertEqual(len(busy), n, "overlapping invocations shared an instance")
        self.assertLessEqual({out["pid"] for _, out in sequential}, busy, "an idle instance was not reused")

    def test_the_process_environment_is_its_configuration_and_what_lambda_injects(self):
        error, out = self.invoke({"env": True})

        self.assertIsNone(error, out)
        env = out["env"]
        self.assertEqual(env["ONLY_IN_CONFIG"], "yes")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_NAME"], self.name)
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256")
        self.assertEqual(env["AWS_REGION"], "us-east-1")
        self.assertEqual(env["AWS_ENDPOINT_URL"], endpoint().rstrip("/"))
        self.assertTrue(env["AWS_SESSION_TOKEN"], "credentials of the execution role")
        self.assertEqual(set(env) - LAMBDA_INJECTED - INTERPRETER_ENV, {"ONLY_IN_CONFIG"})

    def test_the_timeout_ends_the_invocation_as_sandbox_timedout_and_step_functions_sees_it(self):
        sfn = client("stepfunctions")
        fn_arn = self.lam.get_function(FunctionName=self.short)["Configuration"]["FunctionArn"]
        definition = {"StartAt": "task", "States": {
            "task": {"Type": "Task", "Resource": fn_arn, "Next": "done",
                     "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "caught"}]},
            "caught": {"Type": "Pass", "End": True},
            "done": {"Type": "Pass", "End": True}}}
        sm = sfn.create_state_machine(name=f"{self.short}-timeout", definition=json.dumps(definition),
                                      roleArn=ROLE)["stateMachineArn"]
        self.addCleanup(sfn.delete_state_machine, stateMachineArn=sm)

        error, direct = self.invoke({"sleep": 30}, self.short)
        execution = sfn.start_execution(stateMachineArn=sm, input=json.dumps({"sleep": 30}))["executionArn"]
        deadline = time.monotonic() + 60
        while (d := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            self.assertLess(time.monotonic(), deadline, "execution still running")
            time.sleep(0.5)

        self.assertEqual(error, "Unhandled")
        self.assertEqual(direct["errorType"], "Sandbox.Timedout")
        self.assertRegex(direct["errorMessage"], r"^RequestId: \S+ Error: Task timed out after 2\.00 seconds$")
        self.assertEqual(d["status"], "SUCCEEDED", d)
        self.assertEqual(json.loads(d["output"])["error"]["Error"], "Sandbox.Timedout")
        # A Task whose Resource is a function ARN records LambdaFunction* events.
        failed = [e["lambdaFunctionFailedEventDetails"] for e in
                  sfn.get_execution_history(executionArn=execution)["events"] if e["type"] == "LambdaFunctionFailed"]
        self.assertEqual([f["error"] for f in failed], ["Sandbox.Timedout"], failed)

    def test_a_crash_is_runtime_exit_error_and_the_next_invocation_gets_a_fresh_process(self):
        _, before = self.invoke({})

        error, crashed = self.invoke({"exit": 2})
        after_error, after = self.invoke({})

        self.assertEqual(error, "Unhandled")
        self.assertEqual(crashed["errorType"], "Runtime.ExitError")
        self.assertTrue(crashed["errorMessage"].endswith("Runtime exited with error: exit status 2"), crashed)
        self.assertIsNone(after_error, after)

    def test_a_configuration_change_starts_instances_with_the_new_environment(self):
        self.lam.update_function_configuration(
            FunctionName=self.name, Environment={"Variables": {"ONLY_IN_CONFIG": "changed"}})
        self.lam.get_waiter("function_updated_v2").wait(FunctionName=self.name)

        error, out = self.invoke({"env": True})

        self.assertIsNone(error, out)
        self.assertEqual(out["env"]["ONLY_IN_CONFIG"], "changed")
        self.lam.update_function_configuration(
            FunctionName=self.name, Environment={"Variables": {"ONLY_IN_CONFIG": "yes"}})
        self.lam.get_waiter("function_updated_v2").wait(FunctionName=self.name)


class ApiConcurrencyTest(unittest.TestCase):
    """The api function behind the HTTP front: N concurrent reads are served by
    separate instances (one log stream each, as on AWS), so they take far less than N
    reads one after another."""

    N = int(os.environ.get("TRADEFLOW_API_CONCURRENCY_N", "30"))

    def read(self, path: str) -> tuple[int, float]:
        api = os.environ.get("TRADEFLOW_API_URL")
        if not api:
            raise AssertionError("no TRADEFLOW_API_URL: source localstack/env.sh")
        req = urllib.request.Request(f"{api}/{path}", headers={"x-api-key": os.environ["TRADEFLOW_API_KEY"]})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return r.status, time.monotonic() - t0

    def test_concurrent_lineage_reads_are_served_by_separate_instances(self):
        logs = client("logs")
        path = "lineage/recent"
        self.read(path)  # at least one warm instance
        one = min(self.read(path)[1] for _ in range(3))
        since_ms = int(time.time() * 1000)

        t0 = time.monotonic()
        with ThreadPoolExecutor(self.N) as pool:
            results = list(pool.map(lambda _: self.read(path), range(self.N)))
        wall = time.monotonic() - t0

        self.assertEqual([s for s, _ in results], [200] * self.N)
        starts: dict[str, set[str]] = {}  # log stream (= instance) -> START lines
        deadline = time.monotonic() + 20  # LocalStack stores invocation logs asynchronously
        while sum(map(len, starts.values())) < self.N and time.monotonic() < deadline:
            time.sleep(0.5)
            starts = {}
            # (filtered here: LocalStack's filterPattern matches any of its terms, and its
            # pages can repeat events; the START line, with its request id, is the key)
            for page in logs.get_paginator("filter_log_events").paginate(
                    logGroupName="/aws/lambda/api", startTime=since_ms):
                for e in page["events"]:
                    if e["message"].startswith("START RequestId: "):
                        starts.setdefault(e["logStreamName"], set()).add(e["message"])
        print(f"\n{self.N} concurrent reads of /{path}: {wall:.2f} s; one read: {one:.3f} s; "
              f"{self.N} one after another would take ~{self.N * one:.2f} s; ratio {wall / (self.N * one):.2f}; "
              f"served by {len(starts)} instances", file=sys.stderr)
        self.assertEqual(sum(map(len, starts.values())), self.N, starts)
        self.assertGreaterEqual(len(starts), 2, f"all {self.N} reads ran on one instance: {starts}")


if __name__ == "__main__":
    unittest.main()
