"""Powertools logger and metrics shared by every function (one service name).

No Powertools Tracer: it imports the X-Ray SDK, which patches botocore at import and was more than half of every
function's cold start (565 of 1,027 ms importing get_handler, `python -X importtime`). With `Tracing: Active` in
template.yaml, Lambda itself still sends each invocation's segment (initialization, invocation, overhead) to
X-Ray; what is given up is custom subsegments (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "glow-activity"

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace="GlowActivity")
