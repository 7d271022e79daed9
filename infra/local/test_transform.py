"""The template changes for LocalStack (transform.py): exactly the documented ones.

    python3 -m unittest discover -s infra/local -p 'test_transform.py' -v

The last test reads the templates infra/check.sh synthesizes (infra/cdk.out): every
resource type they use is classified, and what is removed is the HTTP API and the
gateway's network and nothing else (no function); a new type or a new dependency on
either fails here.
"""

import json
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from transform import NETWORK, SUPPORTED, UNSUPPORTED, UnknownResourceType, for_localstack, references  # noqa: E402

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

    def test_the_gateway_network_goes_with_the_functions_vpc_config_and_nothing_else(self):
        template = {"Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}}},
            "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"VpcId": {"Ref": "Vpc"}}},
            "Fn": {"Type": "AWS::Lambda::Function", "DependsOn": ["Vpc", "Role"], "Properties": {
                "Architectures": ["x86_64"], "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "VpcConfig": {"SubnetIds": [{"Ref": "Subnet"}], "SecurityGroupIds": [{"Fn::GetAtt": ["Sg", "GroupId"]}]}}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
        }, "Outputs": {"SgId": {"Value": {"Ref": "Sg"}}}}

        t, report = for_localstack(template, bucket_suffix="x")

        self.assertEqual(set(t["Resources"]), {"Fn", "Role"})
        self.assertNotIn("VpcConfig", t["Resources"]["Fn"]["Properties"])
        self.assertEqual(t["Resources"]["Fn"]["DependsOn"], ["Role"])
        self.assertEqual(report["vpc_config_removed"], ["Fn"])
        self.assertEqual(report["removed_outputs"], ["SgId"])
        self.assertIn("VpcConfig", template["Resources"]["Fn"]["Properties"])

    def test_a_parameter_only_removed_resources_used_goes_too(self):
        template = {"Parameters": {"Ami": {"Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"},
                                   "Key": {"Type": "String"}},
                    "Resources": {
                        "Host": {"Type": "AWS::EC2::Instance", "Properties": {"ImageId": {"Ref": "Ami"}}},
                        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
                            "Architectures": ["x86_64"], "Environment": {"Variables": {"K": {"Ref": "Key"}}}}}}}

        t, report = for_localstack(template, bucket_suffix="x")

        self.assertEqual(set(t["Parameters"]), {"Key"})
        self.assertEqual(report["removed_parameters"], ["Ami"])

    def test_an_unclassified_resource_type_stops_the_transformation(self):
        template = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {}}}}

        with self.assertRaises(UnknownResourceType):
            for_localstack(template, bucket_suffix="x")

    def test_references_are_found_in_ref_getatt_and_sub(self):
        node = {"a": [{"Ref": "A"}, {"Fn::GetAtt": "B.Arn"}, {"Fn::Sub": ["${C}-${D.Arn}-${!Literal}", {"x": {"Ref": "E"}}]}]}

        self.assertEqual(references(node) - {"!Literal"}, {"A", "B", "C", "D", "E"})


class SynthesizedTemplateTest(unittest.TestCase):
    def test_the_synthesized_templates_lose_only_the_http_api_and_the_gateway_network(self):
        templates = sorted((HERE.parent / "cdk.out").glob("*.template.json"))
        self.assertTrue(templates, "no synthesized template: run infra/check.sh (cdk synth) first")
        for path in templates:
            with self.subTest(template=path.name):
                template = json.loads(path.read_text())

                t, report = for_localstack(template, bucket_suffix="111111111111")

                types = {r["Type"] for r in template["Resources"].values()}
                self.assertEqual(types - SUPPORTED - UNSUPPORTED - NETWORK, set())
                removed = report["removed_resources"]
                self.assertTrue({"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"} <= set(removed.values()), removed)
                for lid, rtype in removed.items():
                    self.assertTrue(rtype.startswith("AWS::ApiGatewayV2::") or rtype == "AWS::Lambda::Permission"
                                    or rtype in NETWORK, f"{lid} ({rtype}) would be removed")
                for output in report["removed_outputs"]:
                    self.assertTrue(output == "ApiUrl" or output.startswith("IbkrGateway"), output)
                self.assertIn("ApiUrl", report["removed_outputs"])
                # Every function keeps its code, role and environment; only VpcConfig goes.
                functions = [lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"]
                self.assertTrue(set(functions) <= set(t["Resources"]), "a function would be removed")
                self.assertEqual(len(t["Resources"]), len(template["Resources"]) - len(removed))


if __name__ == "__main__":
    unittest.main()
