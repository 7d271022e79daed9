"""The synthesized template, made deployable into LocalStack (community 4.13.1) by a
short, fixed list of changes. Everything else deploys exactly as synthesized.

What changes, and why (each is reported by `for_localstack` and tested in
test_transform.py; cfn-lint and checkov still check the full template in
infra/check.sh):

1. Removed: the resource types LocalStack's community CloudFormation cannot create
   (UNSUPPORTED: the HTTP API, apigatewayv2 being a LocalStack Pro service), every
   resource that refers to one of them (the API's invoke permission), and the
   outputs that do (ApiUrl). Locally the api function is served by the HTTP front
   (localstack/executor/tradeflow_executor/http_api.py) instead.
2. Architectures arm64 -> x86_64: the release zips are built for x86_64 here (no
   aarch64 Rust standard library on this machine and rustup cannot download one;
   and an arm64 binary would not run on this x86_64 host). The runtime refuses a
   bootstrap whose architecture differs from the function's, as Lambda does.
3. S3 bucket names get a suffix: bucket names are global across accounts (on AWS
   and in LocalStack), and the provisioned dev stack already owns the name.
4. The IBKR gateway's network goes (NETWORK: the VPC, its subnets, routes, endpoints,
   security groups, flow log and the IBeam host), and with it each function's
   VpcConfig and the parameters only they used (the host's AMI, an SSM lookup). Locally the gateway is the fake on 127.0.0.1, a host process: there is
   no network to isolate and no EC2 host to run IBeam on, and LocalStack community
   cannot create some of these types (SecurityGroupIngress, LaunchTemplate, FlowLog).
   What the network must be on AWS is checked statically on the full template
   (infra/test/gateway.test.ts: the callers in the VPC, port 5000 from the callers'
   security group only, no NAT).

A resource type in neither SUPPORTED nor UNSUPPORTED stops the transformation: a new
type must be checked against LocalStack and classified here first.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

# Types LocalStack 4.13.1 community creates (resource providers under
# localstack/services/*/resource_providers) and the template uses.
SUPPORTED = frozenset({
    "AWS::CDK::Metadata",
    "AWS::CloudWatch::Alarm",
    "AWS::DynamoDB::Table",
    "AWS::Events::Rule",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
    "AWS::KMS::Alias",
    "AWS::KMS::Key",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
    "AWS::SSM::Parameter",
    "AWS::SecretsManager::ResourcePolicy",
    "AWS::SecretsManager::Secret",
    "AWS::StepFunctions::StateMachine",
})
# The gateway's network and host (change 4): removed, with the functions' VpcConfig.
NETWORK = frozenset({
    "AWS::EC2::FlowLog",
    "AWS::EC2::Instance",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::Route",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::Subnet",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPC",
    "AWS::EC2::VPCEndpoint",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::IAM::InstanceProfile",
})
# Types it cannot create (no provider in the community edition).
UNSUPPORTED = frozenset({
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Stage",
})


class UnknownResourceType(Exception):
    pass


def references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, Fn::GetAtt, ${X} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                target = v[0] if isinstance(v, list) else str(v).split(".")[0]
                found.add(target)
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                found |= {part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:]}
                if isinstance(v, list):
                    found |= references(v[1:])
            else:
                found |= references(v)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def for_localstack(template: dict, *, bucket_suffix: str) -> tuple[dict, dict]:
    """Returns the deployable template and a report of every change made."""
    t = copy.deepcopy(template)
    resources: dict = t["Resources"]
    unknown = sorted({r["Type"] for r in resources.values()} - SUPPORTED - UNSUPPORTED - NETWORK)
    if unknown:
        raise UnknownResourceType(
            f"resource types not classified for LocalStack in infra/local/transform.py: {', '.join(unknown)}")

    vpc_config = []
    for lid, r in resources.items():
        if r["Type"] == "AWS::Lambda::Function" and "VpcConfig" in r.get("Properties", {}):
            vpc_config.append(lid)
            del r["Properties"]["VpcConfig"]
    removed = {lid: r["Type"] for lid, r in resources.items() if r["Type"] in UNSUPPORTED | NETWORK}
    while True:  # and, transitively, whatever refers to a removed resource (a DependsOn is dropped instead)
        dependents = {
            lid: r["Type"] for lid, r in resources.items()
            if lid not in removed and references(r) & set(removed)
        }
        if not dependents:
            break
        removed.update(dependents)
    for lid in removed:
        del resources[lid]
    for r in resources.values():  # DependsOn on removed resources
        if "DependsOn" in r:
            kept = [d for d in _depends_on(r) if d not in removed]
            if kept:
                r["DependsOn"] = kept
            else:
                del r["DependsOn"]
    removed_outputs = [name for name, o in t.get("Outputs", {}).items() if references(o) & set(removed)]
    for name in removed_outputs:
        del t["Outputs"][name]
    # Parameters only removed resources used: CloudFormation resolves every parameter,
    # used or not, and the host's AMI would be looked up in SSM.
    used = references({k: t.get(k, {}) for k in ("Resources", "Outputs", "Conditions", "Rules")})
    removed_parameters = sorted(
        name for name in t.get("Parameters", {})
        if name not in used and references(template.get("Resources", {})) & {name})
    for name in removed_parameters:
        del t["Parameters"][name]

    architectures = []
    for lid, r in resources.items():
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Architectures") != ["x86_64"]:
            architectures.append(lid)
            r["Properties"]["Architectures"] = ["x86_64"]

    buckets = {}
    for lid, r in resources.items():
        if r["Type"] == "AWS::S3::Bucket" and isinstance(r.get("Properties", {}).get("BucketName"), str):
            name = r["Properties"]["BucketName"]
            r["Properties"]["BucketName"] = buckets[lid] = f"{name}-{bucket_suffix}"

    report = {
        "removed_resources": dict(sorted(removed.items())),
        "removed_outputs": removed_outputs,
        "architecture_x86_64": architectures,
        "bucket_names": buckets,
        "vpc_config_removed": vpc_config,
        "removed_parameters": removed_parameters,
    }
    return t, report


def _depends_on(resource: dict) -> list[str]:
    d = resource.get("DependsOn", [])
    return [d] if isinstance(d, str) else list(d)


if __name__ == "__main__":
    # python infra/local/transform.py TEMPLATE [SUFFIX]: prints the report
    _, rep = for_localstack(json.load(open(sys.argv[1])), bucket_suffix=sys.argv[2] if len(sys.argv) > 2 else "local")
    print(json.dumps(rep, indent=2))
