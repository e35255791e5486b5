"""CloudFormation custom resource: apply the migrations on every deploy (Create and Update), then give the
functions' LOGIN user (its own stack-created secret) the password of that secret and membership of activity_runtime.
This is the only function that holds the master (or migration) secret, so it also runs the operator's commands
(`{"command": ...}`, glow_activity.operator): IAM's lambda:InvokeFunction is who may.

It always answers CloudFormation, SUCCESS or FAILED, and answers FAILED itself shortly before the Lambda
timeout if the database never comes up, so a stack never hangs waiting for it.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from glow_activity import db
from glow_activity.migrate import MigrationRefused, ensure_runtime_login, migrate
from glow_activity.observability import logger
from glow_activity.operator import OperatorError, run_command
from glow_activity.settings import get_settings

PHYSICAL_ID = "glow-activity-migrations"
SAFETY_MARGIN_SECONDS = 15


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
        request = urllib.request.Request(  # noqa: S310 - CloudFormation's pre-signed https URL
            self.event["ResponseURL"],
            data=body,
            method="PUT",
            headers={"Content-Type": "", "Content-Length": str(len(body))},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - CloudFormation's URL
            logger.info("answered CloudFormation", extra={"status": status, "http_status": response.status})


def operator_command(event: dict[str, Any]) -> dict[str, Any]:
    """An operator's command: its result, or {"error": why}. Raw keys in the result are not logged."""
    logger.info("operator command", extra={"command": event.get("command")})
    try:
        return {"ok": True, **run_command(db.connection(), event, get_settings().db_attached)}
    except (OperatorError, MigrationRefused) as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        db.reset_connections()
        logger.exception("operator command failed")
        return {"ok": False, "error": f"{type(exc).__name__}: the command failed; the function's log has more."}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "command" in event:
        return operator_command(event)
    reply = _Reply(event)
    remaining = context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    timer = threading.Timer(max(1.0, remaining), reply.send, args=("FAILED", "Migrations timed out."))
    timer.daemon = True
    timer.start()
    status, reason, data = "SUCCESS", "Nothing to do.", {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            settings = get_settings()
            conn = db.connection()
            applied = migrate(conn, attached=settings.db_attached)
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
