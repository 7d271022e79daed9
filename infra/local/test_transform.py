"""The template changes for LocalStack (transform.py): exactly the documented ones.

    python3 -m unittest discover -s infra/local -p 'test_transform.py' -v

The last test reads the templates infra/check.sh synthesizes (infra/cdk.out): every
resource type they use is classified, and what is removed is the HTTP API and nothing
else; a new type or a new dependency on the HTTP API fails here.
"""

import json
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from transform import SUPPORTED, UNSUPPORTED, UnknownResourceType, for_localstack, references  # noqa: E402

TEMPLATE = {
    "Resources": {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"Name": "x"}},
        "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {"ApiId": {"Ref": "Api"}}},
        "Permission": {"Type": "AWS::Lambda::Permission", "Properties": {
            "FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]},
            "SourceArn": {"Fn::Join": ["", ["arn:", {"Fn::Sub": "execute-api:${Api}/*"}]]}}},
        "AccessLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
        "Fn": {"Type": "AWS::Lambda::Function", "DependsOn": ["Role", "Stage"],
               "Properties": {"Architectures": ["arm64"], "Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "tradeflow-charts"}},
    },
    "Outputs": {
        "ApiUrl": {"Value": {"Fn::GetAtt": ["Api", "ApiEndpoint"]}},
        "FnArn": {"Value": {"Fn::GetAtt": ["Fn", "Arn"]}},
    },
}


class TransformTest(unittest.TestCase):
    def test_the_http_api_goes_with_whatever_refers_to_it_and_nothing_else(self):
        t, report = for_localstack(TEMPLATE, bucket_suffix="111111111111")

        self.assertEqual(report["removed_resources"], {
            "Api": "AWS::ApiGatewayV2::Api", "Stage": "AWS::ApiGatewayV2::Stage",
            "Permission": "AWS::Lambda::Permission"})
        self.assertEqual(set(t["Resources"]), {"AccessLogs", "Fn", "Role", "Bucket"})
        self.assertEqual(t["Resources"]["Fn"]["DependsOn"], ["Role"])
        self.assertEqual(report["removed_outputs"], ["ApiUrl"])
        self.assertEqual(set(t["Outputs"]), {"FnArn"})

    def test_functions_become_x86_64_and_buckets_get_a_suffix(self):
        t, report = for_localstack(TEMPLATE, bucket_suffix="111111111111")

        self.assertEqual(t["Resources"]["Fn"]["Properties"]["Architectures"], ["x86_64"])
        self.assertEqual(report["architecture_x86_64"], ["Fn"])
        self.assertEqual(t["Resources"]["Bucket"]["Properties"]["BucketName"], "tradeflow-charts-111111111111")
        self.assertEqual(TEMPLATE["Resources"]["Bucket"]["Properties"]["BucketName"], "tradeflow-charts")

    def test_an_unclassified_resource_type_stops_the_transformation(self):
        template = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {}}}}

        with self.assertRaises(UnknownResourceType):
            for_localstack(template, bucket_suffix="x")

    def test_references_are_found_in_ref_getatt_and_sub(self):
        node = {"a": [{"Ref": "A"}, {"Fn::GetAtt": "B.Arn"}, {"Fn::Sub": ["${C}-${D.Arn}-${!Literal}", {"x": {"Ref": "E"}}]}]}

        self.assertEqual(references(node) - {"!Literal"}, {"A", "B", "C", "D", "E"})


class SynthesizedTemplateTest(unittest.TestCase):
    def test_the_synthesized_templates_lose_only_the_http_api(self):
        templates = sorted((HERE.parent / "cdk.out").glob("*.template.json"))
        self.assertTrue(templates, "no synthesized template: run infra/check.sh (cdk synth) first")
        for path in templates:
            with self.subTest(template=path.name):
                template = json.loads(path.read_text())

                t, report = for_localstack(template, bucket_suffix="111111111111")

                types = {r["Type"] for r in template["Resources"].values()}
                self.assertEqual(types - SUPPORTED - UNSUPPORTED, set())
                removed = report["removed_resources"]
                self.assertTrue({"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"} <= set(removed.values()), removed)
                for lid, rtype in removed.items():
                    self.assertTrue(rtype.startswith("AWS::ApiGatewayV2::") or rtype == "AWS::Lambda::Permission",
                                    f"{lid} ({rtype}) would be removed")
                self.assertEqual(report["removed_outputs"], ["ApiUrl"])
                self.assertEqual(len(t["Resources"]), len(template["Resources"]) - len(removed))


if __name__ == "__main__":
    unittest.main()
