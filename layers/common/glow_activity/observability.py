"""Powertools logger and metrics shared by every function (one service name).

No Powertools Tracer: it imports the X-Ray SDK, which patches botocore at import and was more than half of every
function's cold start (565 of 1,027 ms importing get_handler, `python -X importtime`). With `Tracing: Active` in
template.yaml, Lambda itself still sends each invocation's segment (initialization, invocation, overhead) to
X-Ray; what is given up is custom subsegments (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "glow-activity"
NAMESPACE = "GlowActivity"

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)


def refresh_duration(seconds: float, *, full_pass: bool) -> None:
    """A refresh's duration, by pass (the operator's dashboard): its own metric with dimension Pass."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name="RefreshDuration", unit=MetricUnit.Seconds, value=seconds, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="Pass", value="full" if full_pass else "light")
