"""Deploys a synthesized TradeflowStack (cdk.out) into the local stack's CloudFormation,
in an account of its own, as `cdk deploy` would into a bootstrapped account: the
assets (the functions' release zips) go to the bootstrap bucket, the template is
created from an S3 URL, and the stack is waited for. The only changes to the
template are transform.py's, listed in its report.

Run by infra/deploy-local.sh with LocalStack's venv python (boto3):
    deploy.py --cdk-out DIR [--account 111111111111] [--region us-east-1]
              [--stack TradeflowStack] [--outputs FILE] [--delete]
LocalStack maps a 12-digit access key id to the account of that number.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transform import for_localstack  # noqa: E402

QUALIFIER = "hnb659fds"  # CDK's default bootstrap qualifier
BOOTSTRAP_VERSION = "30"
DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE"}
FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
          "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_FAILED"}


def log(msg: str) -> None:
    print(f"[deploy-local] {msg}", flush=True)


def clients(account: str, region: str) -> dict:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{os.environ.get('LOCALSTACK_PORT', '4566')}"
    kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id=account, aws_secret_access_key="test",
              config=Config(retries={"max_attempts": 5, "mode": "standard"}, read_timeout=300))
    return {s: boto3.client(s, **kw) for s in ("s3", "ssm", "cloudformation", "sts")}


def bootstrap(c: dict, account: str, region: str) -> str:
    """What `cdk bootstrap` leaves that the template needs: the asset bucket and the
    bootstrap version parameter (the template's CheckBootstrapVersion rule reads it)."""
    bucket = f"cdk-{QUALIFIER}-assets-{account}-{region}"
    try:
        c["s3"].head_bucket(Bucket=bucket)
    except c["s3"].exceptions.ClientError:
        args = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        c["s3"].create_bucket(Bucket=bucket, **args)
    c["ssm"].put_parameter(Name=f"/cdk-bootstrap/{QUALIFIER}/version", Value=BOOTSTRAP_VERSION,
                           Type="String", Overwrite=True)
    return bucket


def zip_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(path.rglob("*")):
            if f.is_file():
                info = zipfile.ZipInfo(str(f.relative_to(path)), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (f.stat().st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, f.read_bytes())
    return buf.getvalue()


def publish_assets(c: dict, cdk_out: Path, stack: str, bucket: str) -> int:
    manifest = json.loads((cdk_out / f"{stack}.assets.json").read_text())
    count = 0
    for asset in manifest.get("files", {}).values():
        src = cdk_out / asset["source"]["path"]
        if src.name == f"{stack}.template.json":
            continue  # the (transformed) template is uploaded by deploy()
        body = zip_dir(src) if asset["source"].get("packaging") == "zip" and src.is_dir() else src.read_bytes()
        for dest in asset["destinations"].values():
            c["s3"].put_object(Bucket=bucket, Key=dest["objectKey"], Body=body)
            count += 1
    return count


def parameters(template: dict) -> list[dict]:
    out = []
    for name, p in template.get("Parameters", {}).items():
        if "Default" in p:
            continue
        raise SystemExit(f"template parameter {name} has no default and no local value")
    return out


def wait(cfn, stack: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        except cfn.exceptions.ClientError as e:
            if "does not exist" in str(e):
                return "DELETE_COMPLETE"
            raise
        if status in DONE or status in FAILED:
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"stack {stack} still {status} after {timeout_s:.0f} s")
        time.sleep(1)


def failure_events(cfn, stack: str) -> list[str]:
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    return [f"{e['LogicalResourceId']} ({e['ResourceType']}): {e['ResourceStatus']} {e.get('ResourceStatusReason', '')}"
            for e in events if e["ResourceStatus"].endswith("FAILED")]


def deploy(args) -> int:
    c = clients(args.account, args.region)
    account = c["sts"].get_caller_identity()["Account"]
    if account != args.account:
        raise SystemExit(f"LocalStack put us in account {account}, not {args.account}")
    cdk_out = Path(args.cdk_out)
    template = json.loads((cdk_out / f"{args.stack}.template.json").read_text())
    local, report = for_localstack(template, bucket_suffix=args.account)
    log("changes for LocalStack (infra/local/transform.py): " + json.dumps(report))

    t0 = time.monotonic()
    bucket = bootstrap(c, args.account, args.region)
    n = publish_assets(c, cdk_out, args.stack, bucket)
    body = json.dumps(local).encode()
    key = f"local/{args.stack}-{hashlib.sha256(body).hexdigest()[:16]}.template.json"
    c["s3"].put_object(Bucket=bucket, Key=key, Body=body)
    log(f"published {n} assets and the template ({len(body)} bytes) to s3://{bucket}")

    cfn = c["cloudformation"]
    stack_args = dict(StackName=args.stack, TemplateURL=f"https://{bucket}.s3.amazonaws.com/{key}",
                      Parameters=parameters(local),
                      Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
    try:
        cfn.describe_stacks(StackName=args.stack)
        exists = True
    except cfn.exceptions.ClientError:
        exists = False
    t1 = time.monotonic()
    if exists:
        try:
            cfn.update_stack(**stack_args)
            log(f"updating stack {args.stack}")
        except cfn.exceptions.ClientError as e:
            if "No updates" not in str(e):
                raise
            log("no changes")
    else:
        cfn.create_stack(**stack_args)
        log(f"creating stack {args.stack} in account {args.account}, {args.region}")
    status = wait(cfn, args.stack, args.timeout)
    t2 = time.monotonic()
    if status not in DONE:
        for line in failure_events(cfn, args.stack):
            log(f"  {line}")
        raise SystemExit(f"stack {args.stack}: {status}")
    stack = cfn.describe_stacks(StackName=args.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = cfn.describe_stack_resources(StackName=args.stack)["StackResources"]
    # Offline, LocalStack cannot tell which types it supports and skips unknown ones
    # silently: every resource of the template must be there, created.
    created = {r["LogicalResourceId"] for r in resources if r["ResourceStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")}
    missing = sorted(set(local["Resources"]) - created)
    if missing:
        raise SystemExit(f"stack {args.stack}: {len(missing)} resources not created: {', '.join(missing)}")
    log(f"{status}: {len(resources)} resources; stack operation {t2 - t1:.1f} s, "
        f"with asset publishing {t2 - t0:.1f} s")
    if args.outputs:
        Path(args.outputs).write_text(json.dumps({
            "account": args.account, "region": args.region, "stack": args.stack, "outputs": outputs,
            "changes": report, "deploy_seconds": round(t2 - t1, 1), "with_assets_seconds": round(t2 - t0, 1),
            "functions": sorted(r["PhysicalResourceId"] for r in resources
                                if r["ResourceType"] == "AWS::Lambda::Function"),
        }, indent=2))
    return 0


def delete(args) -> int:
    """Deletes the stack and what it retains (tables, bucket): the account is scratch,
    and a retained table would make the next deploy fail on its name."""
    c = clients(args.account, args.region)
    cfn = c["cloudformation"]
    try:
        resources = cfn.describe_stack_resources(StackName=args.stack)["StackResources"]
    except cfn.exceptions.ClientError:
        log(f"stack {args.stack}: not deployed")
        return 0
    retained = [(r["ResourceType"], r["PhysicalResourceId"]) for r in resources
                if r["ResourceType"] in ("AWS::DynamoDB::Table", "AWS::S3::Bucket")]
    t0 = time.monotonic()
    cfn.delete_stack(StackName=args.stack)
    status = wait(cfn, args.stack, args.timeout)
    ddb = boto3.client("dynamodb", endpoint_url=c["s3"].meta.endpoint_url, region_name=args.region,
                       aws_access_key_id=args.account, aws_secret_access_key="test")
    for rtype, name in retained:
        try:
            if rtype == "AWS::DynamoDB::Table":
                ddb.delete_table(TableName=name)
            else:
                for page in c["s3"].get_paginator("list_objects_v2").paginate(Bucket=name):
                    for o in page.get("Contents", []):
                        c["s3"].delete_object(Bucket=name, Key=o["Key"])
                c["s3"].delete_bucket(Bucket=name)
        except Exception as e:
            if "NotFound" not in str(e) and "NoSuchBucket" not in str(e):  # else: already gone
                log(f"  {name}: {e}")
    log(f"stack {args.stack}: {status} in {time.monotonic() - t0:.1f} s (and {len(retained)} retained tables/buckets)")
    return 0 if status == "DELETE_COMPLETE" else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="deploy cdk.out into the local stack's CloudFormation")
    p.add_argument("--cdk-out")
    p.add_argument("--account", default="111111111111")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--stack", default="TradeflowStack")
    p.add_argument("--outputs")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--delete", action="store_true")
    args = p.parse_args(argv)
    if args.delete:
        return delete(args)
    if not args.cdk_out:
        p.error("--cdk-out is required")
    return deploy(args)


if __name__ == "__main__":
    sys.exit(main())
