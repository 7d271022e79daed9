"""LocalStack Lambda runtime executor `tradeflow`: runs each execution environment
as a local process (sandbox.py) instead of a Docker container.

LocalStack (pinned to 4.13.1) loads executors from the entry-point group
``localstack.lambda.runtime_executor`` and picks one with
``LAMBDA_RUNTIME_EXECUTOR=<name>``. ``RuntimeExecutor`` is a LocalStack *internal*
interface (localstack/services/lambda_/invocation/runtime_executor.py): hence the
exact pin.

Why an executor inside LocalStack and not a runner beside it: LocalStack's Lambda
service already does what Lambda does around an environment, and does it per
function version as configured: it computes the environment variables from the
function's configuration (plus AWS_REGION, credentials of the execution role, the
AWS_LAMBDA_* values and AWS_ENDPOINT_URL, as its Docker executor passes them),
starts one environment per concurrent invocation up to the account's concurrency
limit (throttling beyond it), reuses idle ones, stops them after
LAMBDA_KEEPALIVE_MS, replaces them when the code or configuration changes, and
stores each invocation's log in CloudWatch Logs under the environment's stream.
What its Docker executor adds (a container running the function's bootstrap behind
a Runtime API, timeout and crash handling) is what this executor does with a
process. The function code is what LocalStack holds: the unzipped deployment
package, or a hot-reload directory (the dev stack's bootstrap links to the debug
build).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor

from tradeflow_executor.sandbox import Sandbox

# Variables LocalStack's Docker executor passes to its init process, not to functions
# on AWS: they are dropped unless the function's own configuration sets them.
LOCALSTACK_ONLY = frozenset({
    "LOCALSTACK_HOSTNAME", "EDGE_PORT", "LOCALSTACK_RUNTIME_ID", "LOCALSTACK_RUNTIME_ENDPOINT",
    "LOCALSTACK_FUNCTION_ACCOUNT_ID", "LOCALSTACK_USER", "LOCALSTACK_INIT_LOG_LEVEL",
    "LOCALSTACK_POST_INVOKE_WAIT_MS", "LOCALSTACK_MAX_PAYLOAD_SIZE", "LOCALSTACK_CHMOD_PATHS",
    # the runtime interface emulator's, not set on AWS
    "AWS_LAMBDA_FUNCTION_TIMEOUT",
})
# Lambda's PATH without /opt/bin (no layers here).
LAMBDA_PATH = "/usr/local/bin:/usr/bin:/bin"


def process_environment(env_vars: dict, configured: dict[str, str], runtime: str | None,
                        code_dir: Path) -> dict[str, str]:
    """The environment of the function's process: what LocalStack computed from the
    function's configuration, minus LocalStack's own plumbing, plus the few values the
    Lambda runtime image itself provides."""
    env = {k: str(v) for k, v in env_vars.items() if k not in LOCALSTACK_ONLY or k in configured}
    # "Not defined for OS-only runtimes (for example, provided.al2023)" (Lambda docs,
    # "Defined runtime environment variables").
    if (runtime or "").startswith("provided") and "AWS_EXECUTION_ENV" not in configured:
        env.pop("AWS_EXECUTION_ENV", None)
    env.setdefault("PATH", LAMBDA_PATH)
    env.setdefault("LANG", "en_US.UTF-8")
    # /var/task on AWS; here the directory that holds the code.
    if "LAMBDA_TASK_ROOT" not in configured:
        env["LAMBDA_TASK_ROOT"] = str(code_dir)
    return env


def call_log_environment(account: str, region: str, base: str | None) -> dict[str, str]:
    """What a function needs to record its AWS calls (shared/adapters/src/aws_calls.rs)
    when this process has TRADEFLOW_AWS_CALL_LOG: the directory (other accounts and
    regions in a subfolder, as the logs) and the account the function runs in, which
    its SDK credentials do not say. Nothing when recording is off."""
    if not base:
        return {}
    folder = Path(base)
    if (account, region) != ("000000000000", "us-east-1"):
        folder = folder / f"{account}-{region}"
    return {"TRADEFLOW_AWS_CALL_LOG": str(folder), "TRADEFLOW_AWS_CALL_ACCOUNT": account}


class _LogFile:
    """Appends every function's output to $TRADEFLOW_LAMBDA_LOG_DIR/<function>.log
    (other accounts and regions in a subfolder), prefixed with the environment id."""

    _lock = threading.Lock()

    def __init__(self, function_version: FunctionVersion, env_id: str):
        base = os.environ.get("TRADEFLOW_LAMBDA_LOG_DIR")
        fid = function_version.id
        self.path: Path | None = None
        if base:
            folder = Path(base)
            if (fid.account, fid.region) != ("000000000000", "us-east-1"):
                folder = folder / f"{fid.account}-{fid.region}"
            self.path = folder / f"{fid.function_name}.log"
        self.prefix = f"[{env_id[:8]}] "

    def __call__(self, line: str) -> None:
        if self.path is None:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(self.prefix + line)


class _InstanceRegistry:
    """One file per running function process, $TRADEFLOW_LAMBDA_LOG_DIR/instances/<pid>.json,
    naming its function version: how a test finds the process of a deployed function
    to read the environment it was started with (/proc/<pid>/environ)."""

    def __init__(self, function_version: FunctionVersion, env_id: str):
        base = os.environ.get("TRADEFLOW_LAMBDA_LOG_DIR")
        self.folder = Path(base) / "instances" if base else None
        self.record = {"function_arn": function_version.qualified_arn, "environment_id": env_id}

    def __call__(self, pid: int, running: bool) -> None:
        if self.folder is None:
            return
        path = self.folder / f"{pid}.json"
        if running:
            self.folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**self.record, "pid": pid}))
        else:
            path.unlink(missing_ok=True)


class TradeflowRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self.sandbox: Sandbox | None = None

    def start(self, env_vars: dict[str, str]) -> None:
        config = self.function_version.config
        if config.code is None:
            raise RuntimeError(f"{self.function_version.qualified_arn}: image functions are not supported locally")
        code_dir = Path(config.code.get_unzipped_code_location())
        fid = self.function_version.id
        env = process_environment(env_vars, config.environment or {}, config.runtime, code_dir)
        env.update(call_log_environment(fid.account, fid.region, os.environ.get("TRADEFLOW_AWS_CALL_LOG")))
        self.sandbox = Sandbox(
            name=fid.function_name,
            code_dir=code_dir,
            env=env,
            timeout_s=config.timeout,
            memory_mb=config.memory_size,
            architecture=(config.architectures or ["x86_64"])[0],
            version=self.function_version.id.qualifier,
            log_sink=_LogFile(self.function_version, self.id),
            on_process=_InstanceRegistry(self.function_version, self.id),
        )
        self.sandbox.start()

    def stop(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        # payload: {"invoke-id", "invoked-function-arn", "payload" (str), "trace-id"}
        assert self.sandbox is not None, "invoke before start"
        request_id = payload["invoke-id"]
        result = self.sandbox.invoke(
            request_id,
            (payload.get("payload") or "").encode(),
            payload.get("invoked-function-arn") or self.function_version.qualified_arn,
            payload.get("trace-id"),
        )
        return InvocationResult(request_id=request_id, payload=result.payload,
                                is_error=result.is_error, logs=result.logs)

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        # LocalStack builds AWS_ENDPOINT_URL from this: the functions run on this host.
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return ""

    def get_logs(self) -> str:
        return self.sandbox.recent_logs() if self.sandbox is not None else ""

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        # Unzips the deployment package (a no-op for hot-reload code), as the Docker
        # executor does before it builds its image.
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass


class TradeflowExecutorPlugin(RuntimeExecutorPlugin):
    name = "tradeflow"

    def load(self, *args, **kwargs):
        return TradeflowRuntimeExecutor
