#!/bin/sh
# docker-compose only: LocalStack boot.d hook installing our Lambda runtime
# executor (localstack/executor) into the container's LocalStack venv: each
# execution environment is then a process running the function's bootstrap.
set -e
py=/opt/code/localstack/.venv/bin/python
if "$py" -c 'import tradeflow_executor' 2>/dev/null; then
  exit 0
fi
# copy first: pip builds in the source tree, and the mount is read-only
rm -rf /tmp/tradeflow-executor && cp -r /opt/tradeflow/executor /tmp/tradeflow-executor
"$py" -m pip install -q --no-deps /tmp/tradeflow-executor
echo "tradeflow: local Lambda runtime executor installed"
