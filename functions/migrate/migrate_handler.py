"""CloudFormation custom resource: apply the migrations on every deploy (Create and Update), then give the
functions' LOGIN user (its own stack-created secret) the password of that secret and membership of activity_runtime.
This is the only function that holds the master (or migration) secret, so it also runs the operator's commands
(`{"command": ...}`, glow_activity.operator): IAM's lambda:InvokeFunction is who may.

A deploy never dies of Lambda's 15 minutes: the migration runs in steps (`migrate_until`), and an invocation that
nears its end (less than MIGRATION_STEP_MARGIN_SECONDS left, the longest step we expect) starts no more of them and
hands the same request to a fresh asynchronous invocation of this function, which plans the rest from the catalog;
CloudFormation hears SUCCESS only from the invocation that finished (the custom resource's ServiceTimeout allows an
hour, MAX_INVOCATIONS of them). It always answers CloudFormation, SUCCESS or FAILED, and answers FAILED itself
shortly before the Lambda timeout if the database never comes up, so a stack never hangs waiting for it. It answers
only CloudFormation's own response URLs (a pre-signed https URL of its response bucket): an event naming any other
URL is refused before anything is done, so that the function cannot be made to PUT to an address of someone's
choosing. Every operator command is audited with channel `operator`.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.typing import LambdaContext

from glow_activity import db
from glow_activity.audit import write_audit
from glow_activity.migrate import MigrationRefused, ensure_runtime_login, migrate_until
from glow_activity.observability import logger
from glow_activity.operator import OperatorError, run_command
from glow_activity.settings import get_settings

PHYSICAL_ID = "glow-activity-migrations"
SAFETY_MARGIN_SECONDS = 15
# CloudFormation's custom-resource response bucket in every partition: cloudformation-custom-resource-response-
# <region>.s3[.<region>|-<region>].amazonaws.com[.cn], path-style or virtual-hosted.
_RESPONSE_HOST = re.compile(
    r"^(cloudformation-custom-resource-response-[a-z0-9-]+\.)?s3([.-][a-z0-9-]+)*\.amazonaws\.com(\.cn)?$"
)
_REQUEST_TYPES = ("Create", "Update", "Delete")
# The request handed to a fresh invocation carries its count here; past MAX_INVOCATIONS (an hour of 15-minute
# invocations: the custom resource's ServiceTimeout) the migration is reported FAILED rather than left waiting.
CONTINUATION_KEY = "GlowMigrationInvocation"
MAX_INVOCATIONS = 4


def is_cloudformation_event(event: dict[str, Any]) -> bool:
    """A custom-resource request whose answer goes to CloudFormation's own response bucket over https."""
    url = event.get("ResponseURL")
    if event.get("RequestType") not in _REQUEST_TYPES or not isinstance(url, str):
        return False
    if not all(isinstance(event.get(k), str) for k in ("StackId", "RequestId", "LogicalResourceId")):
        return False
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path_style = host.startswith("s3") and parts.path.startswith("/cloudformation-custom-resource-response-")
    return (
        parts.scheme == "https"
        and parts.port in (None, 443)
        and bool(_RESPONSE_HOST.match(host))
        and (host.startswith("cloudformation-custom-resource-response-") or path_style)
        and str(event["StackId"]).startswith("arn:aws")
    )


class _Reply:
    """Sends the one response CloudFormation waits for; later attempts are ignored."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self.lock = threading.Lock()
        self.sent = False

    def send(self, status: str, reason: str, data: dict[str, str] | None = None) -> None:
        with self.lock:
            if self.sent:
                return
            self.sent = True
        body = json.dumps(
            {
                "Status": status,
                "Reason": reason[:1000],
                "PhysicalResourceId": self.event.get("PhysicalResourceId") or PHYSICAL_ID,
                "StackId": self.event["StackId"],
                "RequestId": self.event["RequestId"],
                "LogicalResourceId": self.event["LogicalResourceId"],
                "NoEcho": False,
                "Data": data or {},
            }
        ).encode()
        logger.info(
            "answered CloudFormation", extra={"status": status, "http_status": put(self.event["ResponseURL"], body)}
        )


def put(url: str, body: bytes) -> int:
    """PUT the answer to CloudFormation's pre-signed URL (checked by is_cloudformation_event); its HTTP status."""
    request = urllib.request.Request(  # noqa: S310 - CloudFormation's pre-signed https URL
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - CloudFormation's URL
        return int(response.status)


def operator_command(event: dict[str, Any], request_id: str) -> dict[str, Any]:
    """An operator's command: its result, or {"error": why}, audited (channel operator, the Lambda request id).
    Raw keys in the result are not logged."""
    command = str(event.get("command"))[:100]
    logger.info("operator command", extra={"command": command})
    status = 200
    try:
        return {"ok": True, **run_command(db.connection(owner=True), event, get_settings().db_attached)}
    except (OperatorError, MigrationRefused) as exc:
        status = 400
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        status = 500
        db.reset_connections()
        logger.exception("operator command failed")
        return {"ok": False, "error": f"{type(exc).__name__}: the command failed; the function's log has more."}
    finally:
        _audit_operator(command, status, request_id)


def _audit_operator(command: str, status: int, request_id: str) -> None:
    try:
        write_audit(
            db.connection(owner=True),
            operation=command,
            profile_id=None,
            api_key_id=None,
            channel="operator",
            status_code=status,
            request_id=request_id,
        )
    except Exception:
        db.reset_connections()
        logger.exception("audit write failed", extra={"operation": command})


def lambda_client() -> Any:
    import boto3

    return boto3.client("lambda")


def continue_in_a_new_invocation(event: dict[str, Any], context: Any) -> None:
    """The same CloudFormation request, to a fresh asynchronous invocation of this function."""
    lambda_client().invoke(
        FunctionName=context.invoked_function_arn, InvocationType="Event", Payload=json.dumps(event).encode()
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "command" in event:
        return operator_command(event, str(getattr(context, "aws_request_id", "") or "operator"))
    if not is_cloudformation_event(event):
        logger.error("refused: neither an operator command nor a CloudFormation request to its own response URL")
        return {"Status": "FAILED", "Reason": "Not a CloudFormation custom-resource request."}
    reply = _Reply(event)
    remaining = context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    timer = threading.Timer(max(1.0, remaining), reply.send, args=("FAILED", "Migrations timed out."))
    timer.daemon = True
    timer.start()
    status, reason, data = "SUCCESS", "Nothing to do.", {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            settings = get_settings()
            conn = db.connection(owner=True)
            invocation = int(event.get(CONTINUATION_KEY, 1))
            until = (
                time.monotonic()
                + context.get_remaining_time_in_millis() / 1000
                - settings.migration_step_margin_seconds
            )
            applied, finished = migrate_until(conn, until, attached=settings.db_attached)
            if not finished:
                if invocation >= MAX_INVOCATIONS:
                    raise TimeoutError(f"not done after {invocation} invocations; a deploy again resumes it")
                continue_in_a_new_invocation({**event, CONTINUATION_KEY: invocation + 1}, context)
                timer.cancel()  # the invocation that finishes answers CloudFormation
                logger.info("migration continues", extra={"invocation": invocation + 1, "applied": len(applied)})
                return {
                    "Status": "CONTINUED",
                    "Reason": f"Applied {len(applied)} step(s); invocation {invocation + 1} goes on.",
                }
            if settings.db_runtime_secret_arn:
                runtime = db.read_secret(settings.db_runtime_secret_arn)
                ensure_runtime_login(conn, runtime["username"], runtime["password"])
            data = {"Applied": str(len(applied))}
            reason = f"Applied {len(applied)} step(s)" + (": " + "; ".join(applied) if applied else ".")
    except Exception as exc:
        logger.exception("migrations failed")
        db.reset_connections()
        status, reason = "FAILED", f"Migrations failed: {type(exc).__name__}: {exc}"
    finally:
        timer.cancel()
    reply.send(status, reason, data)
    return {"Status": status, "Reason": reason}
