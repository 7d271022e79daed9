"""A LocalStack Lambda runtime executor that forwards every invoke to
`cargo lambda watch` instead of starting a Docker container.

LocalStack (pinned to 4.13.1) loads executors from the entry-point group
``localstack.lambda.runtime_executor`` and picks one with
``LAMBDA_RUNTIME_EXECUTOR=<name>``; ours is registered as ``cargo-lambda`` in
pyproject.toml. ``RuntimeExecutor`` is a LocalStack *internal* interface
(localstack/services/lambda_/invocation/runtime_executor.py): that is why the
LocalStack version is pinned exactly. Local development only.

Consequences worth knowing:
- the function runs with `cargo lambda watch`'s environment (localstack/.env),
  not with the Environment of the Lambda configuration;
- LocalStack does not enforce the function Timeout here (its Docker init did);
  the Step Functions state TimeoutSeconds still applies.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor

LOG = logging.getLogger(__name__)

# The first invoke of a function may compile it inside `cargo lambda watch`
# (minutes on a cold target dir), hence the generous default.
INVOKE_TIMEOUT_SECONDS = float(os.environ.get("CARGO_LAMBDA_INVOKE_TIMEOUT", "900"))


def function_name(name_or_arn: str) -> str:
    """`cargo lambda watch` serves binaries by bare name: strip an ARN and a qualifier.

    arn:aws:lambda:us-east-1:000000000000:function:load-strategy:$LATEST -> load-strategy
    load-strategy:1 -> load-strategy
    """
    if name_or_arn.startswith("arn:"):
        # arn:partition:lambda:region:account:function:NAME[:QUALIFIER]
        return name_or_arn.split(":")[6]
    return name_or_arn.split(":")[0]


def invoke_url(name: str) -> str:
    host = os.environ.get("CARGO_LAMBDA_HOST", "127.0.0.1")
    port = os.environ.get("CARGO_LAMBDA_PORT", "9000")
    return f"http://{host}:{port}/2015-03-31/functions/{name}/invocations"


def _has_error_type(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict) and "errorType" in json.loads(body)
    except ValueError:
        return False


class CargoLambdaRuntimeExecutor(RuntimeExecutor):
    # Nothing to start, stop, prepare or clean up: `cargo lambda watch` is a
    # separate, long-running process (started by localstack/up.sh).
    def start(self, env_vars: dict[str, str]) -> None:
        pass

    def stop(self) -> None:
        pass

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return ""

    def get_logs(self) -> str:
        return ""

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        # payload: {"invoke-id", "invoked-function-arn", "payload" (str), "trace-id"}
        request_id = payload["invoke-id"]
        name = function_name(payload.get("invoked-function-arn") or self.function_version.id.function_name)
        url = invoke_url(name)
        request = urllib.request.Request(
            url,
            data=(payload.get("payload") or "{}").encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Lambda-Runtime-Aws-Request-Id": request_id},
        )
        try:
            with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_SECONDS) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:  # >= 400: cargo lambda watch answers 500 on a handler error
            status, headers, body = e.code, e.headers, e.read()
        except (urllib.error.URLError, OSError) as e:  # watch not running, or timed out
            LOG.warning("cargo lambda watch unreachable at %s: %s", url, e)
            body = json.dumps({"errorType": "Lambda.ServiceException",
                               "errorMessage": f"cargo lambda watch unreachable at {url}: {e}"}).encode()
            return InvocationResult(request_id=request_id, payload=body, is_error=True, logs=str(e))

        # AWS signals a handler error with 200 + X-Amz-Function-Error; cargo lambda
        # watch with HTTP 500. Either way the body is {"errorType", "errorMessage"},
        # and Step Functions uses errorType as the error name (Transient, Fatal...).
        is_error = status >= 300 or headers.get("X-Amz-Function-Error") is not None
        if is_error and not _has_error_type(body):
            # e.g. a 404 for an unknown binary or a build failure: give Step
            # Functions a usable error name instead of an unparsable cause.
            body = json.dumps({"errorType": "Lambda.Unknown",
                               "errorMessage": f"HTTP {status} from {url}: {body[:2000].decode(errors='replace')}"}).encode()
        logs = f"cargo-lambda {name} -> HTTP {status}\n"
        return InvocationResult(request_id=request_id, payload=body, is_error=is_error, logs=logs)


class CargoLambdaExecutorPlugin(RuntimeExecutorPlugin):
    name = "cargo-lambda"

    def load(self, *args, **kwargs):
        return CargoLambdaRuntimeExecutor
