"""API Gateway HTTP API (payload format 2.0) events, as API Gateway would send them."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any


def http_event(
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    raw_body: bytes | str | None = None,
    source_ip: str = "127.0.0.1",
    add_default_headers: bool = True,
) -> dict[str, Any]:
    """An HTTP API v2 event. `body` is JSON-encoded; `raw_body` is sent as is (binary as base64).

    Header names are lower-cased, as API Gateway does."""
    lowered = (
        {
            "content-type": "application/json",
            "user-agent": "glow-activity-local",
            "host": "localhost",
            "x-forwarded-proto": "http",
        }
        if add_default_headers
        else {}
    )
    lowered.update({k.lower(): v for k, v in (headers or {}).items()})
    is_base64 = False
    if raw_body is not None:
        if isinstance(raw_body, bytes):
            try:
                text: str | None = raw_body.decode("utf-8")
            except UnicodeDecodeError:
                text = base64.b64encode(raw_body).decode()
                is_base64 = True
        else:
            text = raw_body
    elif body is not None:
        text = json.dumps(body)
    else:
        text = None
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if text is not None:
        event["body"] = text
    return event


def scheduled_event() -> dict[str, Any]:
    """What EventBridge Scheduler sends to the refresh function: the schedule's Input in template.yaml, its
    <aws.scheduler.execution-id> filled in as the scheduler does for each run."""
    from . import lambdas

    schedule = lambdas.load_template()["Resources"]["RefreshFunction"]["Properties"]["Events"]["Schedule"]
    text = schedule["Properties"]["Input"].replace("<aws.scheduler.execution-id>", str(uuid.uuid4()))
    return json.loads(text)


class LambdaContext:
    """Enough of the Lambda context object for Powertools and our handlers."""

    def __init__(self, function_name: str = "local", timeout_ms: int = 29_000) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
