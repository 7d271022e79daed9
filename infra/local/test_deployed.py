"""The stack deployed from the synthesized template (infra/deploy-local.sh) works: one
execution succeeds through its state machine, and every function's process was
started with the environment of that function's deployed configuration (read from
/proc/<pid>/environ, the process's own record), running the bootstrap of its release
zip. Also: the provisioned dev stack configures its functions as the template does.

Needs the local stack and a deployed stack:
    localstack/up.sh && source localstack/env.sh && infra/deploy-local.sh
    $LS_VENV/bin/python -m unittest discover -s infra/local -p 'test_deployed.py' -v
"""

import json
import os
import sys
import time
import unittest
import uuid
from decimal import Decimal
from pathlib import Path

import boto3
from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config

# What Lambda itself adds to a function's environment (AWS "Defined runtime environment
# variables", and the emulator endpoint LocalStack's Lambda injects); every other
# variable a process sees must be in its configuration.
LAMBDA_INJECTED = {
    "_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ", "LANG", "PATH", "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT", "AWS_ENDPOINT_URL",
    # The local runtime's AWS call recording (localstack/executor plugin.py, for iam_check.py).
    "TRADEFLOW_AWS_CALL_LOG", "TRADEFLOW_AWS_CALL_ACCOUNT",
}
STEPS = ["load_strategy", "fetch_market_data", "compute_indicators", "render_charts", "analyze_chart",
         "parse_signal", "place_order", "update_portfolio", "record_execution"]


def state_dir() -> Path:
    return Path(os.environ.get("TRADEFLOW_STATE") or Path.home() / ".cache/tradeflow/state")


def deployed() -> dict:
    path = state_dir() / "deploy" / "outputs.json"
    if not path.exists():
        raise AssertionError(f"no deployed stack ({path}): run infra/deploy-local.sh")
    return json.loads(path.read_text())


def client(service: str, account: str, region: str = "us-east-1"):
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise AssertionError("no local stack: run `localstack/up.sh && source localstack/env.sh` first")
    return boto3.client(service, endpoint_url=endpoint, region_name=region, aws_access_key_id=account,
                        aws_secret_access_key="test", config=Config(read_timeout=300, retries={"max_attempts": 3}))


def instances() -> list[dict]:
    """The running function processes, as the local runtime records them."""
    out = []
    for f in (state_dir() / "lambda" / "instances").glob("*.json"):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            pass
    return out


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


class DeployedStackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = deployed()
        acct, region = cls.stack["account"], cls.stack["region"]
        cls.lam = client("lambda", acct, region)
        cls.sfn = client("stepfunctions", acct, region)
        cls.ddb = client("dynamodb", acct, region)
        # One execution, as the schedule would start it, of a dry-run strategy.
        cls.strategy_id = f"deployed-{uuid.uuid4().hex[:8]}"
        strategy = {
            "strategy_id": cls.strategy_id, "name": "deployed stack test", "conid": 265598, "symbol": "AAPL",
            "risk": {"capital": "100000", "risk_per_trade": "0.01", "max_position_value": "25000",
                     "max_open_positions": 1, "daily_loss_limit": "2000", "min_confidence": Decimal("0.5")},
            "dry_run": True,
        }
        ser = TypeSerializer()
        cls.ddb.put_item(TableName="tradeflow-strategies", Item={k: ser.serialize(v) for k, v in strategy.items()})
        cls.execution_name = f"{cls.strategy_id}-run"
        arn = cls.sfn.start_execution(stateMachineArn=cls.stack["outputs"]["StateMachineArn"], name=cls.execution_name,
                                      input=json.dumps({"strategy_id": cls.strategy_id}))["executionArn"]
        deadline = time.monotonic() + 300
        while (d := cls.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                break
            time.sleep(1)
        cls.execution = d
        cls.history = cls.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]

    def test_an_execution_succeeds_through_the_deployed_state_machine(self):
        entered = [e["stateEnteredEventDetails"]["name"] for e in self.history if e["type"] == "TaskStateEntered"]
        lineage = self.ddb.query(TableName="tradeflow-lineage", KeyConditionExpression="execution_id = :e",
                                 ExpressionAttributeValues={":e": {"S": self.execution_name}})["Items"]

        self.assertEqual(self.execution["status"], "SUCCEEDED", self.execution.get("cause"))
        for step in STEPS:
            self.assertIn(step, entered)
        self.assertGreaterEqual({i["step_name"]["S"] for i in lineage}, set(STEPS))

    def test_each_function_runs_its_zip_with_the_environment_of_its_configuration(self):
        debug_dir = Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "debug"
        report = []
        for name in self.stack["functions"]:
            with self.subTest(function=name):
                config = self.lam.get_function_configuration(FunctionName=name)
                procs = [i for i in instances() if i["function_arn"].startswith(config["FunctionArn"] + ":")]
                if not procs:  # not used by the execution: start an instance (the result does not matter)
                    self.lam.invoke(FunctionName=name, Payload=b"{}")
                    procs = [i for i in instances() if i["function_arn"].startswith(config["FunctionArn"] + ":")]
                self.assertTrue(procs, f"no process of {name}")
                pid = procs[0]["pid"]
                env = environ(pid)
                exe = Path(os.readlink(f"/proc/{pid}/exe"))
                configured = config.get("Environment", {}).get("Variables", {})

                self.assertEqual({k: env.get(k) for k in configured}, configured)
                self.assertEqual(set(env) - set(configured) - LAMBDA_INJECTED, set())
                self.assertEqual(env["AWS_LAMBDA_FUNCTION_NAME"], name)
                self.assertEqual(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], str(config["MemorySize"]))
                self.assertEqual(env["AWS_REGION"], self.stack["region"])
                self.assertEqual(env.get("AWS_LAMBDA_LOG_FORMAT"), config["LoggingConfig"]["LogFormat"])
                self.assertEqual(exe.name, "bootstrap", exe)
                self.assertFalse(str(exe).startswith(str(debug_dir.resolve())), exe)
                report.append(f"{name}: {len(configured)} configured + "
                              f"{len(set(env) - set(configured))} Lambda variables, pid {pid}")
        print("\n" + "\n".join(report), file=sys.stderr)

    def test_the_dev_stack_configures_each_function_as_the_template_does(self):
        dev = client("lambda", "000000000000")
        for name in self.stack["functions"]:
            with self.subTest(function=name):
                want = self.lam.get_function_configuration(FunctionName=name)
                have = dev.get_function_configuration(FunctionName=name)

                self.assertEqual({k: have[k] for k in ("Runtime", "Handler", "Timeout", "MemorySize")},
                                 {k: want[k] for k in ("Runtime", "Handler", "Timeout", "MemorySize")})


if __name__ == "__main__":
    unittest.main()
