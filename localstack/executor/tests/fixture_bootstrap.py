"""A Lambda function runtime (a custom-runtime `bootstrap`) whose behaviour each event
chooses, for the runtime's tests: it answers, sleeps, fails, crashes, reports its
process id and environment, or sends its response body slowly the way hyper's
HTTP/1 client does (stopping when the server answers before the body is sent).

The tests copy it as `bootstrap` with a `#!<python>` line in front; it uses only the
standard library. FIXTURE_INIT (environment) picks an init behaviour:
`exit` (exit 3 before asking for work) or `init_error` (report /init/error, exit 4);
FIXTURE_DEFAULT_EVENT (JSON) is merged under every event. An HTTP API (payload 2.0)
event gets a payload 2.0 response.
"""

import http.client
import json
import os
import socket
import sys
import time

# host:port, or host:port/prefix (cargo lambda watch serves its Runtime API under a path)
_api = os.environ["AWS_LAMBDA_RUNTIME_API"].removeprefix("http://")
_hostport, _, _prefix = _api.partition("/")
host, port = _hostport.split(":")
BASE = (f"/{_prefix}" if _prefix else "") + "/2018-06-01/runtime"


def post(conn, path, body, headers=None):
    conn.request("POST", path, body=body, headers=headers or {})
    r = conn.getresponse()
    r.read()
    return r.status


def slow_post(path, body):
    """Sends the headers and the first KB, waits, then the rest: unless the server has
    answered meanwhile, in which case it stops, as hyper does on an early response."""
    s = socket.create_connection((host, int(port)))
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    s.sendall(head + body[:1024])
    s.settimeout(0.5)
    try:
        early = s.recv(4096)
    except socket.timeout:
        early = b""
    if early:
        s.close()
        return
    s.sendall(body[1024:])
    s.settimeout(10)
    s.recv(4096)
    s.close()


def main():
    init = os.environ.get("FIXTURE_INIT")
    if init == "exit":
        sys.exit(3)
    conn = http.client.HTTPConnection(host, int(port), timeout=None)
    if init == "init_error":
        post(conn, f"{BASE}/init/error", json.dumps({"errorType": "Fixture.InitFailed",
                                                     "errorMessage": "init failed on purpose"}),
             {"Lambda-Runtime-Function-Error-Type": "Fixture.InitFailed"})
        sys.exit(4)
    print("fixture runtime started", flush=True)
    while True:
        conn.request("GET", f"{BASE}/invocation/next")
        r = conn.getresponse()
        event = json.loads(r.read() or b"{}")
        if r.status != 200:
            sys.exit(0)
        http_event = isinstance(event, dict) and event.get("version") == "2.0" and "requestContext" in event
        event = {**json.loads(os.environ.get("FIXTURE_DEFAULT_EVENT") or "{}"),
                 **(event if isinstance(event, dict) and not http_event else {})}
        rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
        deadline = r.getheader("Lambda-Runtime-Deadline-Ms")
        print(f"handling {rid}", flush=True)
        if event.get("barrier"):
            # Waits until `n` invocations (of any process) have arrived: they can only
            # all arrive if they run at the same time, each in a process of its own.
            folder = event["barrier"]
            open(os.path.join(folder, f"{os.getpid()}-{rid}"), "w").close()
            while len(os.listdir(folder)) < int(event["n"]):
                time.sleep(0.02)
        if event.get("sleep"):
            time.sleep(float(event["sleep"]))
        if "exit" in event:
            os._exit(int(event["exit"]))
        if event.get("error"):
            post(conn, f"{BASE}/invocation/{rid}/error",
                 json.dumps({"errorType": event["error"], "errorMessage": "failed on purpose"}),
                 {"Lambda-Runtime-Function-Error-Type": event["error"]})
            continue
        out = {"pid": os.getpid(), "request_id": rid, "deadline_ms": deadline,
               "arn": r.getheader("Lambda-Runtime-Invoked-Function-Arn")}
        if event.get("env"):
            out["env"] = dict(os.environ)
        if event.get("size"):
            out["pad"] = "x" * int(event["size"])
        body = json.dumps(out).encode()
        if http_event:
            body = json.dumps({"statusCode": 200, "headers": {"content-type": "application/json"},
                               "body": body.decode()}).encode()
        if event.get("slow_body"):
            slow_post(f"{BASE}/invocation/{rid}/response", body)
        else:
            post(conn, f"{BASE}/invocation/{rid}/response", body)


if __name__ == "__main__":
    main()
