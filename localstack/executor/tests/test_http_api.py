"""The HTTP front's conversions (tradeflow_executor.http_api): request -> payload 2.0
event, function result -> HTTP response, as API Gateway's HTTP API documents them."""

import base64
import json
import sys
import unittest
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tradeflow_executor.http_api import InvalidResponse, from_result, to_event  # noqa: E402

NOW = datetime(2026, 11, 30, 12, 0, 5, tzinfo=timezone.utc)


def event(method="GET", target="/", headers=(), body=b""):
    return to_event(method, target, list(headers), body, source_ip="127.0.0.1", account_id="000000000000",
                    api_id="local", now=NOW, request_id="req-1")


class ToEventTest(unittest.TestCase):
    def test_a_get_becomes_a_version_2_event_of_the_default_route(self):
        e = event("GET", "/lineage/execution/e%201?x=1&x=2&y=",
                  [("Host", "127.0.0.1:9000"), ("X-Api-Key", "k"), ("Accept", "a"), ("Accept", "b")])

        self.assertEqual(e["version"], "2.0")
        self.assertEqual(e["routeKey"], "$default")
        self.assertEqual(e["rawPath"], "/lineage/execution/e%201")
        self.assertEqual(e["rawQueryString"], "x=1&x=2&y=")
        self.assertEqual(e["queryStringParameters"], {"x": "1,2", "y": ""})
        self.assertEqual(e["headers"], {"host": "127.0.0.1:9000", "x-api-key": "k", "accept": "a,b"})
        ctx = e["requestContext"]
        self.assertEqual(ctx["http"], {"method": "GET", "path": "/lineage/execution/e 1", "protocol": "HTTP/1.1",
                                       "sourceIp": "127.0.0.1", "userAgent": ""})
        self.assertEqual((ctx["stage"], ctx["routeKey"], ctx["accountId"]), ("$default", "$default", "000000000000"))
        self.assertEqual(ctx["time"], "30/Nov/2026:12:00:05 +0000")
        self.assertEqual(ctx["timeEpoch"], 1796040005000)
        self.assertNotIn("body", e)
        self.assertFalse(e["isBase64Encoded"])

    def test_cookies_leave_the_headers_for_the_cookies_field(self):
        e = event(headers=[("Cookie", "a=1; b=2"), ("Cookie", "c=3")])

        self.assertEqual(e["cookies"], ["a=1", "b=2", "c=3"])
        self.assertNotIn("cookie", e["headers"])

    def test_a_json_body_is_passed_as_text_and_a_binary_one_base64_encoded(self):
        text = event("POST", "/s", [("Content-Type", "application/json; charset=utf-8")], b'{"a":1}')
        form = event("POST", "/s", [("Content-Type", "application/x-www-form-urlencoded")], b"a=1")
        png = event("PUT", "/s", [("Content-Type", "image/png")], b"\x89PNG\x00")

        self.assertEqual((text["body"], text["isBase64Encoded"]), ('{"a":1}', False))
        self.assertEqual((form["body"], form["isBase64Encoded"]), (base64.b64encode(b"a=1").decode(), True))
        self.assertEqual(base64.b64decode(png["body"]), b"\x89PNG\x00")
        self.assertTrue(png["isBase64Encoded"])


class FromResultTest(unittest.TestCase):
    def test_a_result_with_a_status_code_is_the_response(self):
        status, headers, body = from_result(json.dumps({
            "statusCode": 303, "headers": {"Location": "../x", "content-type": "text/html"},
            "cookies": ["k=v; Secure; HttpOnly", "other=1"], "body": "<p>", "isBase64Encoded": False}).encode())

        self.assertEqual(status, 303)
        self.assertEqual(headers, [("location", "../x"), ("content-type", "text/html"),
                                   ("set-cookie", "k=v; Secure; HttpOnly"), ("set-cookie", "other=1")])
        self.assertEqual(body, b"<p>")

    def test_a_base64_body_is_decoded(self):
        _, _, body = from_result(json.dumps({"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(),
                                             "isBase64Encoded": True}).encode())

        self.assertEqual(body, b"\x00\x01")

    def test_a_result_without_status_code_is_a_200_json_body(self):
        payload = b'{"items": []}'

        self.assertEqual(from_result(payload), (200, [("content-type", "application/json")], payload))

    def test_an_unusable_result_is_refused(self):
        for payload in (b"not json", b'{"statusCode": "abc"}', b'{"statusCode": 700}',
                        b'{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}'):
            with self.subTest(payload=payload), self.assertRaises(InvalidResponse):
                from_result(payload)


if __name__ == "__main__":
    unittest.main()
