#!/usr/bin/env python3
"""Checks every AWS call the functions made against their IAM policies in the
synthesized template, as IAM would decide it.

    python3 infra/local/iam_check.py --template infra/cdk.out/TradeflowStack.template.json \\
        --calls "$TRADEFLOW_STATE/aws-calls" [--resources infra/resources.json] [--json]

The calls are what the local stack recorded (shared/adapters/src/aws_calls.rs: one JSON
line per call with the IAM actions, resource ARNs and request context it needs). The
policies are read from the template only: each function's role, the AWS::IAM::Policy and
AWS::IAM::ManagedPolicy resources attached to it, its inline policies, the AWS managed
policies it names (the few whose contents are known here), a permissions boundary, and
the bucket policy of an S3 resource. Intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
Fn::Select, Fn::Split, pseudo parameters) are resolved from the template's own resources;
the recorded account and region stand for AWS::AccountId and AWS::Region.

Evaluation follows IAM's: an explicit Deny wins; otherwise an Allow is needed (in the
boundary too, when there is one). Action/NotAction match case-insensitively with * and ?;
Resource/NotResource match case-sensitively with * and ? (a table ARN does not cover its
indexes). Condition operators: String*, Arn*, Bool, Null, Numeric*, with IfExists and
ForAnyValue:/ForAllValues:; an unknown operator denies and is reported.

It fails (exit 1) when a call is denied, when a function resources.json lists recorded
no call (the suite did not exercise it, so nothing proves its policy), or when calls come
from a function the template does not have. It does not read infra/lib/permissions.ts.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# AWS managed policies the CDK attaches to Lambda roles; their documents (as published)
# are needed to evaluate them. Any other AWS managed policy is reported as not evaluated.
AWS_MANAGED = {
    "service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"},
    ],
    "service-role/AWSLambdaVPCAccessExecutionRole": [
        {"Effect": "Allow", "Action": [
            "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
            "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
         "Resource": "*"},
    ],
}


class TemplateError(Exception):
    pass


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


# ---- intrinsic resolution -------------------------------------------------------------

@dataclass
class Resolver:
    """Resolves template values to strings for one account and region. Names the template
    leaves to CloudFormation (a role without RoleName) become `<generated:LogicalId>`."""
    template: dict
    account: str
    region: str
    stack_name: str = "TradeflowStack"

    @property
    def resources(self) -> dict:
        return self.template.get("Resources", {})

    def pseudo(self, name: str) -> str:
        return {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": partition_of(self.region),
            "AWS::URLSuffix": "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::NoValue": "",
        }[name]

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return (f"arn:{partition_of(self.region)}:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{resource}")

    def prop(self, logical: str, name: str) -> str | None:
        value = self.resources[logical].get("Properties", {}).get(name)
        return None if value is None else self.resolve(value)

    def ref(self, logical: str) -> str:
        if logical.startswith("AWS::"):
            return self.pseudo(logical)
        params = self.template.get("Parameters", {})
        if logical in params:
            default = params[logical].get("Default")
            return str(default) if default is not None else f"<parameter:{logical}>"
        if logical not in self.resources:
            raise TemplateError(f"Ref to unknown {logical}")
        kind = self.resources[logical]["Type"]
        named = {
            "AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName",
            "AWS::SSM::Parameter": "Name", "AWS::IAM::Role": "RoleName",
            "AWS::Lambda::Function": "FunctionName", "AWS::Events::EventBus": "Name",
            "AWS::Events::Rule": "Name",
        }
        if kind in named:
            return self.prop(logical, named[kind]) or f"<generated:{logical}>"
        if kind == "AWS::SecretsManager::Secret":
            return self.secret_arn(logical)
        if kind == "AWS::StepFunctions::StateMachine":
            return self.getatt(logical, "Arn")
        if kind == "AWS::IAM::ManagedPolicy":
            name = self.prop(logical, "ManagedPolicyName") or f"<generated:{logical}>"
            return self.arn("iam", f"policy/{name}", region=False)
        if kind == "AWS::SNS::Topic":
            return self.arn("sns", self.prop(logical, "TopicName") or f"<generated:{logical}>")
        return f"<ref:{logical}>"

    def secret_arn(self, logical: str) -> str:
        # Secrets Manager appends six random characters to the name.
        name = self.prop(logical, "Name") or f"<generated:{logical}>"
        return self.arn("secretsmanager", f"secret:{name}-??????")

    def getatt(self, logical: str, attr: str) -> str:
        if logical not in self.resources:
            raise TemplateError(f"Fn::GetAtt of unknown {logical}")
        kind = self.resources[logical]["Type"]
        if attr == "Arn":
            if kind == "AWS::DynamoDB::Table":
                return self.arn("dynamodb", f"table/{self.ref(logical)}")
            if kind == "AWS::S3::Bucket":
                return f"arn:{partition_of(self.region)}:s3:::{self.ref(logical)}"
            if kind == "AWS::IAM::Role":
                path = self.prop(logical, "Path") or "/"
                return self.arn("iam", f"role{path}{self.ref(logical)}", region=False)
            if kind == "AWS::StepFunctions::StateMachine":
                name = self.prop(logical, "StateMachineName") or f"<generated:{logical}>"
                return self.arn("states", f"stateMachine:{name}")
            if kind == "AWS::Lambda::Function":
                return self.arn("lambda", f"function:{self.ref(logical)}")
            if kind == "AWS::SecretsManager::Secret":
                return self.secret_arn(logical)
            if kind == "AWS::Events::EventBus":
                return self.arn("events", f"event-bus/{self.ref(logical)}")
        return f"<getatt:{logical}.{attr}>"

    def sub(self, text: str, variables: dict) -> str:
        def one(m: re.Match) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self.resolve(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attr = name.split(".", 1)
                return self.getatt(logical, attr)
            return self.ref(name)
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        (key, arg), = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.getatt(logical, attr)
        if key == "Fn::Join":
            sep, parts = arg
            return sep.join(str(p) for p in self.resolve(parts))
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            return self.sub(text, variables)
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(sep)
        if key.startswith("Fn::"):
            raise TemplateError(f"unsupported intrinsic {key}")
        return {key: self.resolve(arg)}


# ---- policies of a function -------------------------------------------------------------

@dataclass
class Statement:
    source: str  # "<policy>#<index>" for the report
    body: dict   # resolved statement


@dataclass
class Policies:
    identity: list[Statement] = field(default_factory=list)
    boundary: list[Statement] | None = None
    not_evaluated: list[str] = field(default_factory=list)
    role_arn: str = ""


def _refs(value: Any) -> set[str]:
    """Logical ids a raw template value refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            else:
                found |= _refs(v)
    elif isinstance(value, list):
        for v in value:
            found |= _refs(v)
    return found


def _statements(doc: dict, source: str, res: Resolver) -> list[Statement]:
    raw = doc.get("Statement", [])
    raw = raw if isinstance(raw, list) else [raw]
    return [Statement(f"{source}#{i}", res.resolve(s)) for i, s in enumerate(raw)]


def function_logical_id(template: dict, name: str) -> str | None:
    for logical, r in template.get("Resources", {}).items():
        if r.get("Type") == "AWS::Lambda::Function" and r.get("Properties", {}).get("FunctionName") == name:
            return logical
    return None


def function_policies(template: dict, function_logical: str, res: Resolver) -> Policies:
    resources = template["Resources"]
    role_value = resources[function_logical]["Properties"].get("Role")
    role_ids = [r for r in _refs(role_value) if resources.get(r, {}).get("Type") == "AWS::IAM::Role"]
    if len(role_ids) != 1:
        raise TemplateError(f"{function_logical}: cannot tell its role from {role_value!r}")
    role_id = role_ids[0]
    role = resources[role_id].get("Properties", {})
    out = Policies(role_arn=res.getatt(role_id, "Arn"))
    for i, p in enumerate(role.get("Policies", [])):
        out.identity += _statements(p["PolicyDocument"], f"{role_id}.Policies[{i}]", res)
    attached_managed = set()
    for logical, r in resources.items():
        if r.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and role_id in _refs(r.get("Properties", {}).get("Roles", [])):
            out.identity += _statements(r["Properties"]["PolicyDocument"], logical, res)
            attached_managed.add(logical)
    for arn_value in role.get("ManagedPolicyArns", []):
        local = [r for r in _refs(arn_value) if resources.get(r, {}).get("Type") == "AWS::IAM::ManagedPolicy"]
        if local:
            for logical in set(local) - attached_managed:
                out.identity += _statements(resources[logical]["Properties"]["PolicyDocument"], logical, res)
            continue
        arn = res.resolve(arn_value)
        m = re.fullmatch(r"arn:[^:]+:iam::aws:policy/(.+)", str(arn))
        if m and m.group(1) in AWS_MANAGED:
            out.identity += [Statement(f"aws-managed:{m.group(1)}#{i}", s) for i, s in enumerate(AWS_MANAGED[m.group(1)])]
        else:
            out.not_evaluated.append(str(arn))
    if "PermissionsBoundary" in role:
        local = [r for r in _refs(role["PermissionsBoundary"]) if resources.get(r, {}).get("Type") == "AWS::IAM::ManagedPolicy"]
        if not local:
            raise TemplateError(f"{role_id}: permissions boundary {role['PermissionsBoundary']!r} is not in the template")
        out.boundary = _statements(resources[local[0]]["Properties"]["PolicyDocument"], local[0], res)
    return out


def resource_policies(template: dict, res: Resolver) -> list[tuple[str, Statement]]:
    """(bucket ARN, statement) of every S3 bucket policy in the template."""
    out = []
    for logical, r in template.get("Resources", {}).items():
        if r.get("Type") == "AWS::S3::BucketPolicy":
            props = r["Properties"]
            bucket = str(res.resolve(props["Bucket"]))
            bucket_arn = bucket if bucket.startswith("arn:") else f"arn:{partition_of(res.region)}:s3:::{bucket}"
            out += [(bucket_arn, s) for s in _statements(props["PolicyDocument"], logical, res)]
    return out


# ---- statement evaluation ---------------------------------------------------------------

def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def _wild(pattern: str, value: str, case: bool) -> bool:
    # fnmatch's [..] classes are not IAM syntax: escape them.
    p = pattern.replace("[", "[[]")
    return fnmatch.fnmatchcase(value, p) if case else fnmatch.fnmatchcase(value.lower(), p.lower())


def action_matches(stmt: dict, action: str) -> bool:
    if "Action" in stmt:
        return any(_wild(a, action, case=False) for a in _as_list(stmt["Action"]))
    if "NotAction" in stmt:
        return not any(_wild(a, action, case=False) for a in _as_list(stmt["NotAction"]))
    return False


def resource_matches(stmt: dict, resource: str) -> bool:
    if "Resource" in stmt:
        return any(_wild(r, resource, case=True) for r in _as_list(stmt["Resource"]))
    if "NotResource" in stmt:
        return not any(_wild(r, resource, case=True) for r in _as_list(stmt["NotResource"]))
    return False


def principal_matches(stmt: dict, role_arn: str, account: str) -> bool:
    if "NotPrincipal" in stmt:
        return not principal_matches({"Principal": stmt["NotPrincipal"]}, role_arn, account)
    p = stmt.get("Principal")
    if p == "*":
        return True
    if not isinstance(p, dict):
        return False
    for v in _as_list(p.get("AWS", [])):
        v = str(v)
        if v == "*" or v == role_arn or v in (account, f"arn:aws:iam::{account}:root"):
            return True
    return False


class UnknownOperator(Exception):
    pass


_STRING_OPS = {
    "StringEquals": lambda a, b: a == b,
    "StringEqualsIgnoreCase": lambda a, b: a.lower() == b.lower(),
    "StringLike": lambda a, b: _wild(b, a, case=True),
    "ArnEquals": lambda a, b: a == b,
    "ArnLike": lambda a, b: _wild(b, a, case=True),
    "Bool": lambda a, b: a.lower() == str(b).lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_NUMERIC = {
    "NumericEquals": lambda a, b: a == b, "NumericNotEquals": lambda a, b: a != b,
    "NumericLessThan": lambda a, b: a < b, "NumericLessThanEquals": lambda a, b: a <= b,
    "NumericGreaterThan": lambda a, b: a > b, "NumericGreaterThanEquals": lambda a, b: a >= b,
}


def _bool_text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def condition_holds(condition: dict, context: dict[str, Any]) -> bool:
    """All operators hold; within one, every key; within a key, any value. Raises
    UnknownOperator for an operator IAM would use that is not implemented here."""
    ctx = {k.lower(): v for k, v in context.items()}
    for operator, keys in condition.items():
        op = operator
        qualifier = None
        if ":" in op:
            qualifier, op = op.split(":", 1)
            if qualifier not in ("ForAnyValue", "ForAllValues"):
                raise UnknownOperator(operator)
        if_exists = op.endswith("IfExists") and op != "IfExists"
        if if_exists:
            op = op[: -len("IfExists")]
        known = op in _STRING_OPS or op in _NEGATED or op in _NUMERIC or op == "Null"
        if not known:
            raise UnknownOperator(operator)
        for key, expected in keys.items():
            expected = [_bool_text(e) for e in _as_list(expected)]
            present = key.lower() in ctx
            if op == "Null":
                # "true": the key must be absent; "false": present.
                if not any((e.lower() == "true") == (not present) for e in expected):
                    return False
                continue
            if not present:
                if if_exists:
                    continue
                if qualifier == "ForAllValues":
                    continue  # vacuously true for an empty set
                if op in _NEGATED or op == "NumericNotEquals":
                    continue  # nothing equals a missing value
                return False
            actual = [_bool_text(a) for a in _as_list(ctx[key.lower()])]

            def one(a: str) -> bool:
                if op in _STRING_OPS:
                    return any(_STRING_OPS[op](a, e) for e in expected)
                if op in _NEGATED:
                    return not any(_STRING_OPS[_NEGATED[op]](a, e) for e in expected)
                try:
                    return any(_NUMERIC[op](float(a), float(e)) for e in expected)
                except ValueError:
                    return False

            if qualifier == "ForAllValues":
                ok = all(one(a) for a in actual)
            else:
                ok = any(one(a) for a in actual)
            if not ok:
                return False
    return True


@dataclass
class Decision:
    allowed: bool
    reason: str                     # "allowed", "explicit deny", "no allow"
    trace: list[str] = field(default_factory=list)
    unknown_operators: list[str] = field(default_factory=list)


def _applies(stmt: Statement, action: str, resource: str, context: dict, trace: list[str],
             unknown: list[str], deny: bool) -> bool:
    s = stmt.body
    if not action_matches(s, action):
        return False
    if not resource_matches(s, resource):
        names = s.get("Resource", s.get("NotResource"))
        trace.append(f"{stmt.source} ({s.get('Effect')}) names the action; resource not matched: {names}")
        return False
    if "Condition" in s:
        try:
            if not condition_holds(s["Condition"], context):
                trace.append(f"{stmt.source} ({s.get('Effect')}) names action and resource; condition false: {s['Condition']}")
                return False
        except UnknownOperator as e:
            unknown.append(str(e))
            trace.append(f"{stmt.source} ({s.get('Effect')}): unknown condition operator {e}; treated as denying")
            # A Deny whose condition cannot be evaluated is taken to apply; an Allow is not.
            return deny
    trace.append(f"{stmt.source} ({s.get('Effect')}) applies")
    return True


def evaluate(action: str, resource: str, context: dict, policies: Policies,
             resource_statements: list[tuple[str, Statement]], account: str) -> Decision:
    trace: list[str] = []
    unknown: list[str] = []
    applicable_resource = [s for arn, s in resource_statements
                           if resource == arn or resource.startswith(arn + "/")]
    denies = [s for s in policies.identity + (policies.boundary or []) if s.body.get("Effect") == "Deny"]
    denies += [s for s in applicable_resource if s.body.get("Effect") == "Deny"
               and principal_matches(s.body, policies.role_arn, account)]
    if any(_applies(s, action, resource, context, trace, unknown, deny=True) for s in denies):
        return Decision(False, "explicit deny", trace, unknown)
    allow = [s for s in policies.identity if s.body.get("Effect") == "Allow"]
    identity_allows = any([_applies(s, action, resource, context, trace, unknown, deny=False) for s in allow])
    resource_allows = any([
        _applies(s, action, resource, context, trace, unknown, deny=False)
        for s in applicable_resource
        if s.body.get("Effect") == "Allow" and principal_matches(s.body, policies.role_arn, account)
    ])
    if policies.boundary is not None and identity_allows:
        identity_allows = any([_applies(s, action, resource, context, trace, unknown, deny=False)
                               for s in policies.boundary if s.body.get("Effect") == "Allow"])
        if not identity_allows:
            trace.append("the permissions boundary allows none of it")
    if identity_allows or resource_allows:
        return Decision(True, "allowed", trace, unknown)
    if not trace:
        trace.append(f"no statement names {action}")
    return Decision(False, "no allow", trace, unknown)


# ---- calls ------------------------------------------------------------------------------

def load_calls(path: Path) -> dict[str, list[dict]]:
    """Function name -> its records, from <dir>/*.jsonl (not subfolders: other accounts)."""
    files = [path] if path.is_file() else sorted(path.glob("*.jsonl"))
    out: dict[str, list[dict]] = {}
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"iam_check: {f}:{n}: not JSON ({e})")
            out.setdefault(rec.get("function") or f.stem, []).append(rec)
    return out


def local_bindings(template: dict, function_logical: str, res: Resolver, local_env: dict[str, str]) -> dict[str, str]:
    """Local value -> template value, for env variables whose template value names a
    resource by a name CloudFormation generates (the local stack has its own)."""
    variables = template["Resources"][function_logical]["Properties"].get("Environment", {}).get("Variables", {})
    out = {}
    for name, raw in variables.items():
        value = str(res.resolve(raw))
        local = local_env.get(name)
        if local and "<generated:" in value and local != value:
            out[local] = value
    return out


def local_environment(resources: dict) -> dict[str, str]:
    """The values the local stack gives functions: the shared settings and the
    local-only ones (the fake gateway, the local events role)."""
    out: dict[str, str] = {}
    for key in ("env", "local_env"):
        env = resources.get(key, {})
        if isinstance(env, dict):
            out.update({k: v for k, v in env.items() if isinstance(v, str) and not k.startswith("_")})
    return out


@dataclass
class FunctionReport:
    name: str
    calls: int = 0
    operations: Counter = field(default_factory=Counter)
    checked: int = 0
    denied: list[dict] = field(default_factory=list)
    not_evaluated: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.denied


def check(template: dict, calls: dict[str, list[dict]], function_names: list[str],
          local_env: dict[str, str]) -> list[FunctionReport]:
    reports = []
    for name in sorted(set(function_names) | set(calls)):
        rep = FunctionReport(name)
        reports.append(rep)
        records = calls.get(name, [])
        rep.calls = len(records)
        logical = function_logical_id(template, name)
        if logical is None:
            rep.problem = "recorded calls, but the template has no function of that name"
            continue
        if name not in function_names:
            rep.problem = "not in resources.json"
        if not records:
            rep.problem = "recorded no AWS call: nothing proves its policy (not exercised by the suite?)"
            continue
        seen: dict[tuple, Decision] = {}
        counts: Counter = Counter()
        for rec in records:
            rep.operations[rec["operation"]] += 1
            account, region = rec.get("account", ""), rec.get("region", "")
            for need in rec.get("requires", []):
                key = (account, region, need["action"], need["resource"],
                       json.dumps(need.get("context", {}), sort_keys=True), rec["operation"])
                counts[key] += 1
                if key in seen:
                    continue
                res = Resolver(template, account, region)
                policies = function_policies(template, logical, res)
                bindings = local_bindings(template, logical, res, local_env)
                rep.not_evaluated = policies.not_evaluated
                resource = bindings.get(need["resource"], need["resource"])
                context = {
                    "aws:SecureTransport": "true",  # the SDK uses HTTPS on AWS
                    "aws:RequestedRegion": region,
                    "aws:PrincipalAccount": account,
                    "aws:PrincipalArn": policies.role_arn,
                    **need.get("context", {}),
                }
                seen[key] = evaluate(need["action"], resource, context, policies,
                                     resource_policies(template, res), account)
        rep.checked = len(seen)
        for key, decision in seen.items():
            if not decision.allowed:
                _, _, action, resource, ctx, operation = key
                rep.denied.append({
                    "action": action, "resource": resource, "context": json.loads(ctx),
                    "operation": operation, "times": counts[key], "reason": decision.reason,
                    "trace": decision.trace, "unknown_operators": decision.unknown_operators,
                })
    return reports


def render(reports: list[FunctionReport]) -> str:
    lines = []
    for r in reports:
        status = "ok" if r.ok else "FAIL"
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(r.operations.items()))
        lines.append(f"{r.name:20s} {status:4s} {r.calls:5d} calls, {r.checked:3d} distinct authorizations"
                     + (f"  [{ops}]" if ops else ""))
        if r.problem:
            lines.append(f"    {r.problem}")
        for d in r.denied:
            ctx = f" context {d['context']}" if d["context"] else ""
            lines.append(f"    DENIED ({d['reason']}) {d['action']} on {d['resource']}{ctx} "
                         f"(in {d['operation']}, {d['times']}x)")
            for t in d["trace"]:
                lines.append(f"        {t}")
            for u in d["unknown_operators"]:
                lines.append(f"        unknown condition operator: {u}")
        for arn in r.not_evaluated:
            lines.append(f"    note: managed policy not evaluated (contents unknown here): {arn}")
    failed = [r.name for r in reports if not r.ok]
    total = sum(r.calls for r in reports)
    lines.append(f"iam_check: {len(reports)} functions, {total} calls, "
                 + (f"FAILED: {', '.join(failed)}" if failed else "all allowed by the template's policies"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", required=True, type=Path)
    ap.add_argument("--calls", required=True, type=Path, help="directory of <function>.jsonl records (or one file)")
    ap.add_argument("--resources", type=Path, default=ROOT / "infra" / "resources.json")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if not args.calls.exists():
        print(f"iam_check: no recorded calls at {args.calls} (is the local stack recording? localstack/up.sh)", file=sys.stderr)
        return 1
    template = json.loads(args.template.read_text())
    resources = json.loads(args.resources.read_text())
    names = [f["name"] for f in resources["functions"]]
    reports = check(template, load_calls(args.calls), names, local_environment(resources))
    if args.json:
        print(json.dumps([{**r.__dict__, "operations": dict(r.operations), "ok": r.ok} for r in reports], indent=1))
    else:
        print(render(reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
