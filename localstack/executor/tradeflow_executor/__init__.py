"""tradeflow's local Lambda runtime: a LocalStack executor running each execution
environment as a process (plugin.py, sandbox.py), and the HTTP API front for the
api function (http_api.py)."""
