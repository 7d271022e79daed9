"""The API function behind an HTTP front, as API Gateway's HTTP API serves it on AWS
(a `$default` route, Lambda proxy integration, payload format 2.0). LocalStack's
community edition has no apigatewayv2, so locally this process takes its place:
each request becomes a payload 2.0 event, invoked through LocalStack's Lambda
(`Invoke`, RequestResponse), so it runs on the same runtime, one environment per
concurrent request, with the function's configuration.

    python -m tradeflow_executor.http_api --port 9000 --function api

What it reproduces, from "Create AWS Lambda proxy integrations for HTTP APIs"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html):
- header names lowercased, repeated headers and query parameters joined with commas,
  `cookie` headers moved to `cookies`, rawPath/rawQueryString as sent;
- a body that is not text is base64-encoded (`isBase64Encoded: true`);
- the response: `statusCode`, `headers`, `cookies` (each a `set-cookie`), `body`,
  `isBase64Encoded`; a function result without `statusCode` is returned as a 200
  `application/json` body;
- a function error, an invalid response or a throttled invoke is
  `500 {"message":"Internal Server Error"}`; no answer within the integration
  timeout (30 s, the HTTP API maximum) is `503 {"message":"Service Unavailable"}`;
- requests over 10 MB (the HTTP API payload limit) are refused with 413.
Not reproduced: authorizers, throttling (the stack's stage limits), custom domains.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import logging
import os
import socketserver
import sys
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote, urlsplit

LOG = logging.getLogger("tradeflow.http_api")

INTEGRATION_TIMEOUT_S = 30
MAX_REQUEST_BYTES = 10 * 1024 * 1024
TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml",
              "application/x-yaml", "application/yaml")


def is_text(content_type: str | None) -> bool:
    ct = (content_type or "").split(";")[0].strip().lower()
    return ct.startswith(TEXT_TYPES) or ct.endswith("+json") or ct.endswith("+xml")


def to_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes, *,
             source_ip: str, account_id: str, api_id: str, now: datetime | None = None,
             request_id: str | None = None) -> dict:
    """A payload format 2.0 event for one HTTP request."""
    now = now or datetime.now(timezone.utc)
    url = urlsplit(target)
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    query: dict[str, str] = {}
    for k, v in parse_qsl(url.query, keep_blank_values=True):
        query[k] = f"{query[k]},{v}" if k in query else v
    host = joined.get("host", "localhost")
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path or "/",
        "rawQueryString": url.query,
        "headers": joined,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": unquote(url.path or "/"),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": request_id or base64.b32encode(uuid.uuid4().bytes).decode()[:16],
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        if is_text(joined.get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


class InvalidResponse(Exception):
    pass


def from_result(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for a function's payload 2.0 result."""
    try:
        doc = json.loads(payload)
    except ValueError as e:
        raise InvalidResponse(f"not JSON: {e}") from e
    if not isinstance(doc, dict) or "statusCode" not in doc:
        # "If your Lambda function returns valid JSON and doesn't return a statusCode,
        # API Gateway assumes" 200, application/json, the result as the body.
        return 200, [("content-type", "application/json")], payload
    try:
        status = int(doc["statusCode"])
    except (TypeError, ValueError) as e:
        raise InvalidResponse(f"statusCode {doc['statusCode']!r}") from e
    if not 100 <= status <= 599:
        raise InvalidResponse(f"statusCode {status}")
    headers = [(str(k).lower(), str(v)) for k, v in (doc.get("headers") or {}).items()]
    headers += [("set-cookie", str(c)) for c in doc.get("cookies") or []]
    body = doc.get("body")
    if body is None:
        data = b""
    elif doc.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError as e:
            raise InvalidResponse(f"body is not base64: {e}") from e
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    return status, headers, data


def gateway_error(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps({"message": message}).encode()


class Front:
    def __init__(self, function: str, account_id: str, api_id: str, lambda_client):
        self.function = function
        self.account_id = account_id
        self.api_id = api_id
        self.lambda_client = lambda_client

    def handle(self, method, target, headers, body, source_ip):
        import botocore.exceptions

        event = to_event(method, target, headers, body, source_ip=source_ip,
                         account_id=self.account_id, api_id=self.api_id)
        try:
            r = self.lambda_client.invoke(FunctionName=self.function, InvocationType="RequestResponse",
                                          Payload=json.dumps(event).encode())
        except botocore.exceptions.ReadTimeoutError:
            return gateway_error(503, "Service Unavailable"), event, None
        except botocore.exceptions.ClientError as e:
            LOG.warning("invoke %s: %s", self.function, e)
            return gateway_error(500, "Internal Server Error"), event, None
        payload = r["Payload"].read()
        if r.get("FunctionError"):
            LOG.warning("%s returned a function error: %s", self.function, payload[:500])
            return gateway_error(500, "Internal Server Error"), event, r
        try:
            return from_result(payload), event, r
        except InvalidResponse as e:
            LOG.warning("%s returned an invalid response: %s", self.function, e)
            return gateway_error(500, "Internal Server Error"), event, r


def make_handler(front: Front):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tradeflow-local-http-api"

        def log_message(self, fmt, *args):
            LOG.info("%s %s", self.address_string(), fmt % args)

        def _serve(self):
            t0 = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self.close_connection = True
                return self._reply(*gateway_error(413, "Request Entity Too Large"), "-")
            body = self.rfile.read(length) if length else b""
            (status, headers, data), event, _ = front.handle(
                self.command, self.path, list(self.headers.items()), body, self.client_address[0])
            self._reply(status, headers, data, event["requestContext"]["requestId"])
            LOG.info("%s %s -> %d (%.0f ms)", self.command, self.path.split("?")[0], status,
                     (time.monotonic() - t0) * 1000)

        def _reply(self, status, headers, data, request_id):
            self.send_response_only(status)
            self.send_header("Date", self.date_time_string())
            self.send_header("apigw-requestid", request_id)
            for k, v in headers:
                if k not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_request(self, code="-", size="-"):
            pass  # _serve logs with the duration

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None) -> int:
    import boto3
    from botocore.config import Config

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--function", default="api")
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    client = boto3.client(
        "lambda", endpoint_url=args.endpoint, region_name=args.region,
        config=Config(read_timeout=INTEGRATION_TIMEOUT_S, connect_timeout=5, retries={"total_max_attempts": 1},
                      max_pool_connections=100))
    account = boto3.client("sts", endpoint_url=args.endpoint, region_name=args.region).get_caller_identity()["Account"]
    front = Front(args.function, account, "local", client)
    server = Server((args.host, args.port), make_handler(front))
    LOG.info("HTTP API for function %s on http://%s:%d (payload format 2.0)", args.function, args.host, args.port)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
