#!/usr/bin/env python3
"""Creates tradeflow's AWS resources in LocalStack from infra/resources.json.

Idempotent: run it as often as you like. Two ways it runs:
- on the host, by localstack/up.sh, with LocalStack's venv python (it has boto3):
      python localstack/provision.py [--env-file PATH]
- inside the LocalStack container as a ready.d init hook (docker-compose.yml).
  LocalStack exec()s hook scripts in-process: no __file__, no argv of ours, so
  everything comes from the environment (TRADEFLOW_ROOT, AWS_ENDPOINT_URL...).

Environment:
  AWS_ENDPOINT_URL   default http://127.0.0.1:${LOCALSTACK_PORT:-4566}
  TRADEFLOW_ROOT     directory holding infra/resources.json and statemachine/
                     (default: the repo root, the parent of this file's folder)
  TRADEFLOW_ENV_FILE where to write the env file (same as --env-file; not
                     written when unset)
  TRADEFLOW_FUNCTION_BIN_DIR  directory of the function binaries (the debug build):
                     each function's code is then a LocalStack hot-reload directory
                     $TRADEFLOW_STATE/functions/<name> whose bootstrap links to
                     <dir>/<name>; unset: an inert placeholder zip

`--print-env` only prints that env file (no AWS calls, no boto3 needed).
"""

import json
import os
import sys
import time
import zipfile
from io import BytesIO

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"  # LocalStack's default account
ROLE_NAME = "tradeflow-local-lambda"
# Values every Lambda gets locally besides resources.json's names and `env`.
AWS_LOCAL_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}


def log(msg):
    print(f"[provision] {msg}", flush=True)


def repo_root():
    if os.environ.get("TRADEFLOW_ROOT"):
        return os.environ["TRADEFLOW_ROOT"]
    if "__file__" in globals():
        return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return "/opt/tradeflow"  # where docker-compose.yml mounts infra/ and statemachine/


def endpoint():
    port = os.environ.get("LOCALSTACK_PORT") or "4566"
    return os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{port}"


def load_resources(root):
    with open(os.path.join(root, "infra", "resources.json")) as f:
        return json.load(f)


def function_arn(name):
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"


def state_machine_arn(res):
    return f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{res['state_machine']['name']}"


API_KEY_SECRET_NAME = "tradeflow/api-key"  # as the deployed stack names it


def plain(d):
    """resources.json maps without their "_" documentation keys."""
    return {k: v for k, v in (d or {}).items() if not k.startswith("_")}


def local_values(res):
    values = plain(res.get("local_env"))
    # A second stack on other ports (FAKE_IBKR_PORT) must point its functions at its own gateway.
    if os.environ.get("FAKE_IBKR_PORT") and "IBKR_BASE_URL" in values:
        values["IBKR_BASE_URL"] = f"http://127.0.0.1:{os.environ['FAKE_IBKR_PORT']}/v1/api"
    return values


def function_env(res, fn, api_key_secret_arn=None):
    """The env function `fn` gets locally: the variables of its tables and of the names
    its `env` lists, as the deployed stack gives them, except that a deploy-only name
    (`deploy_env`) becomes the local variable it names, valued from `local_env` (the
    API key secret: its local ARN; not set while unknown)."""
    tables = {t["name"]: t for t in res["tables"]}
    env = {tables[name]["env"]: name for name in fn.get("tables", [])}
    settings, deploy, local = plain(res.get("env")), plain(res.get("deploy_env")), local_values(res)
    for name in fn.get("env", []):
        if name == res["bucket"]["env"]:
            env[name] = res["bucket"]["name"]
        elif name == res["state_machine"]["env"]:
            env[name] = state_machine_arn(res)
        elif name in settings:
            env[name] = settings[name]
        elif name in deploy:
            local_name = deploy[name]
            if local_name is None:
                continue
            if name == "API_KEY_SECRET_ARN":
                if api_key_secret_arn:
                    env[name] = api_key_secret_arn
            else:
                env[local_name] = local[local_name]
        else:
            raise KeyError(f"function {fn['name']}: env name {name} is not a resource, a setting or a deploy_env name")
    return env


def env_file_text(res):
    """Environment for tools and tests on this host (localstack/env.sh): every
    function's variables together, and TRADEFLOW_API_KEY, the key a client sends to
    the local API (the value of the local secret; functions read the secret)."""
    union = {}
    for fn in res["functions"]:
        union.update(function_env(res, fn))
    env = {"AWS_ENDPOINT_URL": endpoint(), **AWS_LOCAL_ENV, **union, "RUST_LOG": "info",
           "TRADEFLOW_API_KEY": res["local_api_key"]}
    lines = ["# Generated by localstack/provision.py from infra/resources.json: do not edit."]
    lines += [f"{k}={v}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


# -- AWS ----------------------------------------------------------------------

def clients():
    import boto3
    from botocore.config import Config

    kw = dict(
        endpoint_url=endpoint(),
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 10, "mode": "standard"}, read_timeout=120),
    )
    return {s: boto3.client(s, **kw) for s in ("dynamodb", "s3", "iam", "lambda", "stepfunctions", "secretsmanager")}


def ensure_api_key_secret(sm, value):
    """The API key secret, as the deployed stack has one, with the local key: the api
    function reads it from Secrets Manager here too."""
    try:
        arn = sm.describe_secret(SecretId=API_KEY_SECRET_NAME)["ARN"]
        if sm.get_secret_value(SecretId=arn).get("SecretString") != value:
            sm.put_secret_value(SecretId=arn, SecretString=value)
        log(f"secret {API_KEY_SECRET_NAME}: exists")
    except sm.exceptions.ResourceNotFoundException:
        arn = sm.create_secret(Name=API_KEY_SECRET_NAME, SecretString=value,
                               Description="LOCAL STACK ONLY: the tradeflow API key")["ARN"]
        log(f"secret {API_KEY_SECRET_NAME}: created")
    return arn


def ensure_table(ddb, t):
    name = t["name"]
    try:
        ddb.describe_table(TableName=name)
        log(f"table {name}: exists")
    except ddb.exceptions.ResourceNotFoundException:
        attrs = {}

        def key_schema(pk, sk=None):
            schema = [{"AttributeName": pk[0], "KeyType": "HASH"}]
            attrs[pk[0]] = pk[1]
            if sk:
                schema.append({"AttributeName": sk[0], "KeyType": "RANGE"})
                attrs[sk[0]] = sk[1]
            return schema

        args = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": key_schema(t["pk"], t.get("sk"))}
        gsis = [{"IndexName": g["name"], "KeySchema": key_schema(g["pk"], g.get("sk")),
                 "Projection": {"ProjectionType": "ALL"}} for g in t.get("gsis", [])]
        if gsis:
            args["GlobalSecondaryIndexes"] = gsis
        args["AttributeDefinitions"] = [{"AttributeName": a, "AttributeType": k} for a, k in attrs.items()]
        ddb.create_table(**args)
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        log(f"table {name}: created")
    if t.get("ttl"):
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or ttl.get("AttributeName") != t["ttl"]:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": t["ttl"]})
            log(f"table {name}: TTL on {t['ttl']}")


def ensure_bucket(s3, name):
    try:
        s3.head_bucket(Bucket=name)
        log(f"bucket {name}: exists")
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=name)  # us-east-1: no LocationConstraint
        log(f"bucket {name}: created")


def ensure_role(iam):
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
         "Action": "sts:AssumeRole"}]}
    try:
        return iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        log(f"role {ROLE_NAME}: created")
        return iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def placeholder_zip():
    # Without binaries (TRADEFLOW_LAMBDAS=0): LocalStack needs a valid zip.
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho 'placeholder: no function binaries (TRADEFLOW_LAMBDAS=0)' >&2\nexit 1\n")
    return buf.getvalue()


# -- function code and settings (local runtime: localstack/executor) ----------

HOT_RELOAD_BUCKET = "hot-reload"  # LocalStack's marker bucket for code in a local directory


def function_code(name):
    """Code of function `name`: a hot-reload directory whose bootstrap is the debug
    binary, so a rebuilt binary serves the next invocation (LocalStack hot reloading)."""
    bin_dir = os.environ.get("TRADEFLOW_FUNCTION_BIN_DIR")
    if not bin_dir:
        return {"ZipFile": placeholder_zip()}
    state = os.environ.get("TRADEFLOW_STATE") or os.path.expanduser("~/.cache/tradeflow/state")
    code_dir = os.path.join(state, "functions", name)
    os.makedirs(code_dir, exist_ok=True)
    link = os.path.join(code_dir, "bootstrap")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join(bin_dir, name), link)
    return {"S3Bucket": HOT_RELOAD_BUCKET, "S3Key": code_dir}


def function_settings(fn):
    """Timeout and memory as infra/lib/tradeflow-stack.ts gives them (the deployed-stack
    test, infra/local/test_deployed.py, compares the two)."""
    timeout = fn.get("timeout") or (100 if fn.get("step") else 29 if fn.get("http_api") else 60)
    memory = fn.get("memory") or (1024 if fn["name"] in ("render-charts", "analyze-chart") else 512)
    return timeout, memory


def ensure_function(lam, fn, role_arn, env):
    name = fn["name"]
    timeout, memory = function_settings(fn)
    config = dict(FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=role_arn,
                  Timeout=timeout, MemorySize=memory, Environment={"Variables": env})
    code = function_code(name)
    try:
        lam.get_function(FunctionName=name)
        lam.update_function_configuration(**config)
        wait_updated(lam, name)
        lam.update_function_code(FunctionName=name, **code)
        log(f"function {name}: exists (configuration and code updated)")
    except lam.exceptions.ResourceNotFoundException:
        lam.create_function(Code=code, **config)
        log(f"function {name}: created")
    for _ in range(60):  # wait until Active so Step Functions can invoke it
        state = lam.get_function_configuration(FunctionName=name).get("State")
        if state in (None, "Active"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"function {name} not Active (state {state})")


def wait_updated(lam, name):
    for _ in range(60):
        if lam.get_function_configuration(FunctionName=name).get("LastUpdateStatus") in (None, "Successful"):
            return
        time.sleep(0.5)


def ensure_state_machine(sfn, res, role_arn, root):
    sm = res["state_machine"]
    with open(os.path.join(root, sm["file"])) as f:
        definition = f.read()
    for fn in res["functions"]:
        if fn.get("asl_arn"):  # scheduled and HTTP functions are not in the workflow
            definition = definition.replace("${" + fn["asl_arn"] + "}", function_arn(fn["name"]))
    if "${" in definition:
        i = definition.index("${")
        raise RuntimeError(f"unreplaced placeholder in {sm['file']}: {definition[i:i + 60]}")
    json.loads(definition)  # fail here, with a clear message, on invalid JSON
    arn = state_machine_arn(res)
    try:
        sfn.describe_state_machine(stateMachineArn=arn)
        sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn)
        log(f"state machine {sm['name']}: definition updated")
    except sfn.exceptions.StateMachineDoesNotExist:
        arn = sfn.create_state_machine(name=sm["name"], definition=definition, roleArn=role_arn,
                                       type="STANDARD")["stateMachineArn"]
        log(f"state machine {sm['name']}: created")
    return arn


def provision(root):
    res = load_resources(root)
    c = clients()
    for t in res["tables"]:
        ensure_table(c["dynamodb"], t)
    ensure_bucket(c["s3"], res["bucket"]["name"])
    role_arn = ensure_role(c["iam"])
    api_key_secret_arn = ensure_api_key_secret(c["secretsmanager"], res["local_api_key"])
    # AWS_ENDPOINT_URL is not configured: LocalStack's Lambda injects the emulator
    # endpoint itself, as for any function (the deployed template's included).
    for fn in res["functions"]:
        ensure_function(c["lambda"], fn, role_arn, function_env(res, fn, api_key_secret_arn))
    return ensure_state_machine(c["stepfunctions"], res, role_arn, root)


def main(argv):
    root = repo_root()
    env_file = os.environ.get("TRADEFLOW_ENV_FILE")
    if "--env-file" in argv:
        env_file = argv[argv.index("--env-file") + 1]
    if "--print-env" in argv:
        sys.stdout.write(env_file_text(load_resources(root)))
        return 0
    if env_file:
        os.makedirs(os.path.dirname(os.path.abspath(env_file)), exist_ok=True)
        with open(env_file, "w") as f:
            f.write(env_file_text(load_resources(root)))
        log(f"env file: {env_file}")
    arn = provision(root)
    log(f"state machine ARN: {arn}")
    print(arn, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
else:
    # LocalStack init hook (exec'd in-process, __name__ is not "__main__").
    main([])
