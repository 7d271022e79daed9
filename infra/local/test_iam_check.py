"""The IAM evaluator (iam_check.py) decides as IAM does, on small hand-written templates.

    python3 -m unittest discover -s infra/local -p 'test_iam_check.py' -v
"""

import json
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import iam_check  # noqa: E402
from iam_check import Resolver, UnknownOperator, check, condition_holds  # noqa: E402

ACCOUNT, REGION = "000000000000", "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders"


def template(*statements, extra=None, role_extra=None):
    """One function `fn` whose role has one AWS::IAM::Policy with these statements."""
    resources = {
        "Orders": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "orders"}},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "charts"}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {
            "ManagedPolicyArns": [{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                                     ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]]}],
            **(role_extra or {})}},
        "Policy": {"Type": "AWS::IAM::Policy", "Properties": {
            "PolicyName": "p", "Roles": [{"Ref": "Role"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)}}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": "fn", "Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
    }
    resources.update(extra or {})
    return {"Resources": resources}


def allow(action, resource, **more):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def call(action, resource, context=None, operation=None):
    need = {"action": action, "resource": resource}
    if context:
        need["context"] = context
    return {"function": "fn", "service": action.split(":")[0], "operation": operation or action,
            "region": REGION, "account": ACCOUNT, "requires": [need]}


def denied(tpl, *calls, env=None, functions=("fn",)):
    """The (action, resource) pairs the check denies for `fn`."""
    reports = {r.name: r for r in check(tpl, {"fn": list(calls)}, list(functions), env or {})}
    return [(d["action"], d["resource"]) for d in reports["fn"].denied]


TABLE_ARN = {"Fn::GetAtt": ["Orders", "Arn"]}


class ActionAndResourceMatching(unittest.TestCase):
    def test_an_exact_grant_allows_and_another_action_is_denied(self):
        tpl = template(allow("dynamodb:GetItem", TABLE_ARN))

        result = denied(tpl, call("dynamodb:GetItem", TABLE), call("dynamodb:PutItem", TABLE))

        self.assertEqual(result, [("dynamodb:PutItem", TABLE)])

    def test_action_wildcards_and_case_are_as_iam_matches_them(self):
        tpl = template(allow(["DynamoDB:get*", "dynamodb:Batch?etItem"], TABLE_ARN))

        result = denied(tpl, call("dynamodb:GetItem", TABLE), call("dynamodb:BatchGetItem", TABLE),
                        call("dynamodb:BatchWriteItem", TABLE))

        self.assertEqual(result, [("dynamodb:BatchWriteItem", TABLE)])

    def test_resource_wildcards_span_segments_and_are_case_sensitive(self):
        tpl = template(allow("s3:GetObject", "arn:aws:s3:::charts/lineage/*"))

        result = denied(tpl, call("s3:GetObject", "arn:aws:s3:::charts/lineage/a/b.json"),
                        call("s3:GetObject", "arn:aws:s3:::charts/Lineage/x"),
                        call("s3:GetObject", "arn:aws:s3:::charts/charts/x.png"))

        self.assertEqual(result, [("s3:GetObject", "arn:aws:s3:::charts/Lineage/x"),
                                  ("s3:GetObject", "arn:aws:s3:::charts/charts/x.png")])

    def test_a_table_grant_does_not_cover_its_indexes(self):
        index = f"{TABLE}/index/by_strategy"
        only_table = template(allow("dynamodb:Query", TABLE_ARN))
        with_indexes = template(allow("dynamodb:Query", [TABLE_ARN, {"Fn::Join": ["", [TABLE_ARN, "/index/*"]]}]))

        self.assertEqual(denied(only_table, call("dynamodb:Query", index)), [("dynamodb:Query", index)])
        self.assertEqual(denied(with_indexes, call("dynamodb:Query", index), call("dynamodb:Query", TABLE)), [])

    def test_not_action_allows_everything_else(self):
        tpl = template({"Effect": "Allow", "NotAction": "dynamodb:Delete*", "Resource": "*"})

        result = denied(tpl, call("dynamodb:PutItem", TABLE), call("dynamodb:DeleteItem", TABLE))

        self.assertEqual(result, [("dynamodb:DeleteItem", TABLE)])

    def test_not_resource_excludes_what_it_names(self):
        tpl = template({"Effect": "Allow", "Action": "s3:PutObject", "NotResource": "arn:aws:s3:::charts/secret/*"})

        result = denied(tpl, call("s3:PutObject", "arn:aws:s3:::charts/a"),
                        call("s3:PutObject", "arn:aws:s3:::charts/secret/k"))

        self.assertEqual(result, [("s3:PutObject", "arn:aws:s3:::charts/secret/k")])

    def test_an_explicit_deny_wins_over_any_allow(self):
        tpl = template(allow("dynamodb:*", "*"),
                       {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE_ARN})

        reports = check(tpl, {"fn": [call("dynamodb:DeleteItem", TABLE), call("dynamodb:GetItem", TABLE)]}, ["fn"], {})

        self.assertEqual([(d["action"], d["reason"]) for d in reports[0].denied], [("dynamodb:DeleteItem", "explicit deny")])

    def test_a_denied_call_reports_the_statements_that_named_its_action(self):
        tpl = template(allow("dynamodb:PutItem", {"Fn::Join": ["", [TABLE_ARN, "/index/*"]]}))

        reports = check(tpl, {"fn": [call("dynamodb:PutItem", TABLE)]}, ["fn"], {})

        trace = " ".join(reports[0].denied[0]["trace"])
        self.assertIn("Policy#0", trace)
        self.assertIn("resource not matched", trace)


class Conditions(unittest.TestCase):
    def test_string_equals_on_the_passed_service(self):
        role = "arn:aws:iam::000000000000:role/ev"
        tpl = template(allow("iam:PassRole", role, Condition={"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}}))

        result = denied(tpl, call("iam:PassRole", role, {"iam:PassedToService": "events.amazonaws.com"}),
                        call("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"}, operation="x"),
                        call("iam:PassRole", role, operation="y"))

        self.assertEqual(len(result), 2)

    def test_string_like_arn_like_and_arn_equals(self):
        self.assertTrue(condition_holds({"StringLike": {"s3:prefix": ["charts/*", "x"]}}, {"s3:prefix": "charts/a"}))
        self.assertFalse(condition_holds({"StringLike": {"s3:prefix": "charts/*"}}, {"s3:prefix": "lineage/a"}))
        self.assertTrue(condition_holds({"ArnLike": {"aws:SourceArn": "arn:aws:events:*:*:rule/tf-*"}},
                                        {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/tf-a"}))
        self.assertFalse(condition_holds({"ArnEquals": {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/a"}},
                                         {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/b"}))

    def test_keys_are_case_insensitive_and_all_operators_must_hold(self):
        cond = {"StringEquals": {"AWS:RequestedRegion": "us-east-1"}, "Bool": {"aws:SecureTransport": True}}

        self.assertTrue(condition_holds(cond, {"aws:requestedregion": "us-east-1", "aws:SecureTransport": "true"}))
        self.assertFalse(condition_holds(cond, {"aws:requestedregion": "us-east-1", "aws:SecureTransport": "false"}))

    def test_a_missing_key_fails_unless_if_exists_or_negated(self):
        self.assertFalse(condition_holds({"StringEquals": {"iam:PassedToService": "x"}}, {}))
        self.assertTrue(condition_holds({"StringEqualsIfExists": {"iam:PassedToService": "x"}}, {}))
        self.assertTrue(condition_holds({"StringNotEquals": {"iam:PassedToService": "x"}}, {}))
        self.assertTrue(condition_holds({"Null": {"iam:PassedToService": "true"}}, {}))

    def test_for_any_value_on_the_enclosing_transaction(self):
        cond = {"ForAnyValue:StringEquals": {"dynamodb:EnclosingOperation": ["TransactWriteItems", "TransactGetItems"]}}

        self.assertTrue(condition_holds(cond, {"dynamodb:EnclosingOperation": "TransactWriteItems"}))
        self.assertFalse(condition_holds(cond, {}))

    def test_an_unknown_operator_denies_and_is_reported(self):
        tpl = template(allow("dynamodb:GetItem", TABLE_ARN, Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))

        reports = check(tpl, {"fn": [call("dynamodb:GetItem", TABLE)]}, ["fn"], {})

        self.assertEqual(reports[0].denied[0]["unknown_operators"], ["DateGreaterThan"])
        with self.assertRaises(UnknownOperator):
            condition_holds({"StringSomething": {"a": "b"}}, {"a": "b"})

    def test_a_bucket_policy_denying_plain_http_does_not_deny_https_calls(self):
        bucket_arn = {"Fn::GetAtt": ["Bucket", "Arn"]}
        policy = {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Bucket"}, "PolicyDocument": {"Statement": [
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
             "Resource": [bucket_arn, {"Fn::Join": ["", [bucket_arn, "/*"]]}],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:DeleteObject", "Resource": {"Fn::Join": ["", [bucket_arn, "/*"]]}},
        ]}}}
        tpl = template(allow("s3:*", "*"), extra={"BucketPolicy": policy})

        result = denied(tpl, call("s3:PutObject", "arn:aws:s3:::charts/a"), call("s3:DeleteObject", "arn:aws:s3:::charts/a"))

        self.assertEqual(result, [("s3:DeleteObject", "arn:aws:s3:::charts/a")])


class TemplateReading(unittest.TestCase):
    def test_intrinsics_resolve_to_arns_of_the_templates_resources(self):
        res = Resolver(template(), ACCOUNT, "eu-west-1")

        self.assertEqual(res.resolve({"Fn::GetAtt": ["Orders", "Arn"]}), f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/orders")
        self.assertEqual(res.resolve({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/*"}), "arn:aws:s3:::charts/*")
        self.assertEqual(res.resolve({"Fn::Sub": ["${X}-${Orders.Arn}", {"X": {"Ref": "AWS::Region"}}]}),
                         f"eu-west-1-arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/orders")
        self.assertEqual(res.resolve({"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]}), "b")

    def test_inline_and_managed_policies_of_the_role_count_and_aws_managed_ones_are_known(self):
        managed = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"Roles": [{"Ref": "Role"}], "PolicyDocument": {
            "Statement": [allow("dynamodb:PutItem", TABLE_ARN)]}}}
        inline = {"Policies": [{"PolicyName": "i", "PolicyDocument": {"Statement": [allow("dynamodb:GetItem", TABLE_ARN)]}}]}
        tpl = template(extra={"Overflow": managed}, role_extra=inline)

        result = denied(tpl, call("dynamodb:PutItem", TABLE), call("dynamodb:GetItem", TABLE),
                        call("logs:PutLogEvents", "arn:aws:logs:us-east-1:0:log-group:x"),
                        call("dynamodb:DeleteItem", TABLE))

        self.assertEqual(result, [("dynamodb:DeleteItem", TABLE)])

    def test_a_permissions_boundary_must_allow_too(self):
        boundary = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": {
            "Statement": [allow("dynamodb:GetItem", "*")]}}}
        tpl = template(allow("dynamodb:*", TABLE_ARN), extra={"Boundary": boundary},
                       role_extra={"PermissionsBoundary": {"Ref": "Boundary"}})

        self.assertEqual(denied(tpl, call("dynamodb:GetItem", TABLE), call("dynamodb:PutItem", TABLE)),
                         [("dynamodb:PutItem", TABLE)])

    def test_a_generated_role_name_is_bound_through_the_function_environment(self):
        events_role = {"Type": "AWS::IAM::Role", "Properties": {}}
        tpl = template(allow("iam:PassRole", {"Fn::GetAtt": ["EventsRole", "Arn"]}), extra={"EventsRole": events_role})
        tpl["Resources"]["Fn"]["Properties"]["Environment"] = {"Variables": {"EVENTS_ROLE_ARN": {"Fn::GetAtt": ["EventsRole", "Arn"]}}}
        local_role = "arn:aws:iam::000000000000:role/local-role"

        bound = denied(tpl, call("iam:PassRole", local_role), env={"EVENTS_ROLE_ARN": local_role})
        unbound = denied(tpl, call("iam:PassRole", "arn:aws:iam::000000000000:role/other"), env={"EVENTS_ROLE_ARN": local_role})

        self.assertEqual(bound, [])
        self.assertEqual(len(unbound), 1)

    def test_a_listed_function_with_no_calls_fails_and_so_do_calls_of_unknown_functions(self):
        tpl = template(allow("dynamodb:GetItem", TABLE_ARN))

        reports = {r.name: r for r in check(tpl, {"ghost": [call("dynamodb:GetItem", TABLE)]}, ["fn"], {})}

        self.assertFalse(reports["fn"].ok)
        self.assertIn("recorded no AWS call", reports["fn"].problem)
        self.assertFalse(reports["ghost"].ok)

    def test_the_command_reads_records_and_exits_non_zero_on_a_denial(self):
        tpl = template(allow("dynamodb:GetItem", TABLE_ARN))
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            (d / "t.json").write_text(json.dumps(tpl))
            (d / "r.json").write_text(json.dumps({"functions": [{"name": "fn"}], "env": {}}))
            calls = d / "calls"
            calls.mkdir()
            (calls / "fn.jsonl").write_text(json.dumps(call("dynamodb:GetItem", TABLE)) + "\n")
            args = ["--template", str(d / "t.json"), "--calls", str(calls), "--resources", str(d / "r.json")]

            ok = iam_check.main(args)
            (calls / "fn.jsonl").write_text(json.dumps(call("dynamodb:PutItem", TABLE)) + "\n")
            failing = iam_check.main(args)

        self.assertEqual((ok, failing), (0, 1))


if __name__ == "__main__":
    unittest.main()
