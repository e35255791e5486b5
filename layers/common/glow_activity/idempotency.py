"""Powertools idempotency on PostgreSQL: our persistence layer for its `BasePersistenceLayer`.

The record's key is a hash of (caller, Idempotency-Key); the payload hash is over the validated body, so
the same key with another body is refused (409). Records live 24 h; the scheduled refresh deletes
expired ones (`refresh.delete_expired_idempotency_records`).

Importing Powertools' idempotency package imports boto3 (for its DynamoDB layer), so the problem function
imports this module only when a request carries an Idempotency-Key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from .db import Connection

IDEMPOTENCY_TTL_SECONDS = 24 * 3600

_PUT_SQL = """
INSERT INTO activity.idempotency_records AS r (id, status, expiration, in_progress_expiration, payload_hash)
VALUES (:id, :status, :expiration, :in_progress_expiration, :payload_hash)
ON CONFLICT (id) DO UPDATE
    SET status = EXCLUDED.status, expiration = EXCLUDED.expiration,
        in_progress_expiration = EXCLUDED.in_progress_expiration, payload_hash = EXCLUDED.payload_hash,
        response_data = NULL
    WHERE r.expiration < :now_seconds
       OR (r.status = 'INPROGRESS' AND r.in_progress_expiration IS NOT NULL
           AND r.in_progress_expiration < :now_millis)
RETURNING id
"""


class PostgresPersistenceLayer(BasePersistenceLayer):
    def __init__(self, connection: Callable[[], Connection]) -> None:
        super().__init__()
        self._connection = connection

    def _get_record(self, idempotency_key: str) -> DataRecord:
        rows = self._connection().run(
            "SELECT id, status, expiration, in_progress_expiration, response_data, payload_hash"
            " FROM activity.idempotency_records WHERE id = :id",
            id=idempotency_key,
        )
        if not rows:
            raise IdempotencyItemNotFoundError
        key, status, expiration, in_progress, data, payload_hash = rows[0]
        return DataRecord(
            idempotency_key=key,
            status=status,
            expiry_timestamp=expiration,
            in_progress_expiry_timestamp=in_progress,
            response_data=data,
            payload_hash=payload_hash,
        )

    def _put_record(self, data_record: DataRecord) -> None:
        now = time.time()
        rows = self._connection().run(
            _PUT_SQL,
            id=data_record.idempotency_key,
            status=data_record.status,
            expiration=data_record.expiry_timestamp,
            in_progress_expiration=data_record.in_progress_expiry_timestamp,
            payload_hash=data_record.payload_hash or None,
            now_seconds=int(now),
            now_millis=int(now * 1000),
        )
        if not rows:
            raise IdempotencyItemAlreadyExistsError

    def _update_record(self, data_record: DataRecord) -> None:
        self._connection().run(
            "UPDATE activity.idempotency_records SET status = :status, expiration = :expiration, response_data = :data,"
            " payload_hash = coalesce(:payload_hash, payload_hash) WHERE id = :id",
            status=data_record.status,
            expiration=data_record.expiry_timestamp,
            data=data_record.response_data,
            payload_hash=data_record.payload_hash or None,
            id=data_record.idempotency_key,
        )

    def _delete_record(self, data_record: DataRecord) -> None:
        self._connection().run(
            "DELETE FROM activity.idempotency_records WHERE id = :id", id=data_record.idempotency_key
        )


def idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="[caller, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
        use_local_cache=False,
    )
