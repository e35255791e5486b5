"""The export's COPY reader (glow_activity/export/copy_stream.py) gives exactly the bytes pg8000's own path gives,
with rows ending in CRLF instead of LF, across buffer boundaries, for rows larger than its buffer, and leaves the
connection as pg8000 would."""

from __future__ import annotations

import importlib
import io
from typing import Any

import pytest
from pg8000.exceptions import DatabaseError

from glow_activity import db


@pytest.fixture(scope="module")
def copy_stream() -> Any:
    return importlib.import_module("glow_activity.export.copy_stream")


def plain_copy(conn: Any, sql: str) -> tuple[bytes, int]:
    """pg8000's own bytes, with each row's LF as CRLF (these rows hold no line break of their own)."""
    sink = io.BytesIO()
    conn.run(sql, stream=sink)
    return sink.getvalue().replace(b"\n", b"\r\n"), int(conn.row_count)


def fast_copy(copy_stream: Any, conn: Any, sql: str) -> tuple[bytes, int]:
    sink = io.BytesIO()
    rows = copy_stream.copy_to(conn, sql, sink)
    return sink.getvalue(), rows


@pytest.mark.parametrize(
    "select",
    [
        # many small rows: messages split at every buffer boundary
        "SELECT g, md5(g::text), repeat('é,\"', g % 7) FROM generate_series(1, 60000) g",
        # rows far larger than the buffer, between small ones
        "SELECT g, repeat(md5(g::text), CASE WHEN g % 3 = 0 THEN 5000 ELSE 1 END) FROM generate_series(1, 30) g",
        # nothing at all, and a header alone
        "SELECT 1 WHERE false",
    ],
)
def test_same_bytes_and_row_count_as_pg8000(copy_stream: Any, conn: Any, select: str) -> None:
    sql = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    expected = plain_copy(conn, sql)
    assert fast_copy(copy_stream, conn, sql) == expected
    assert conn.run("SELECT 42") == [[42]]  # the protocol is where pg8000 expects it


def test_an_error_mid_copy_is_raised_and_the_connection_goes_on(copy_stream: Any, conn: Any) -> None:
    sql = "COPY (SELECT 1 / (50000 - g) FROM generate_series(1, 100000) g) TO STDOUT"
    sink = io.BytesIO()
    with pytest.raises(DatabaseError, match="division by zero"):
        copy_stream.copy_to(conn, sql, sink)
    assert sink.getvalue().count(b"\n") > 1000  # rows before the error were streamed
    assert conn.run("SELECT 42") == [[42]]
    assert conn.message_types[b"H"].__name__ != "on_copy_out"  # pg8000's handler is back


class NoPeek:
    """The connection's socket file without `peek`, as another pg8000 version might have it."""

    def __init__(self, sock: Any) -> None:
        self.read, self.write, self.flush = sock.read, sock.write, sock.flush


def test_without_the_internals_it_needs_the_plain_path_runs(copy_stream: Any, conn: Any, monkeypatch: Any) -> None:
    sql = "COPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT"
    monkeypatch.setattr(conn, "_sock", NoPeek(conn._sock))
    assert fast_copy(copy_stream, conn, sql) == (b"".join(b"%d\r\n" % g for g in range(1, 1001)), 1000)


@pytest.mark.parametrize("path", ["fast", "plain"])
def test_rows_end_in_crlf_and_a_line_break_inside_a_value_stays_as_it_is(
    copy_stream: Any, conn: Any, monkeypatch: Any, path: str
) -> None:
    if path == "plain":
        monkeypatch.setattr(conn, "_sock", NoPeek(conn._sock))
    sql = "COPY (SELECT g, E'two\\nlines' FROM generate_series(1, 3) g) TO STDOUT WITH (FORMAT csv, HEADER true)"
    data, rows = fast_copy(copy_stream, conn, sql)
    assert rows == 3
    assert data == b'g,?column?\r\n1,"two\nlines"\r\n2,"two\nlines"\r\n3,"two\nlines"\r\n'


class FailingSink:
    def write(self, data: bytes) -> int:
        raise OSError("disk full")


@pytest.mark.parametrize("path", ["fast", "plain"])
def test_a_sink_failing_midway_drops_the_connection(
    copy_stream: Any, database_url: str, monkeypatch: Any, path: str
) -> None:
    conn = db.connection()
    if path == "plain":
        monkeypatch.setattr(conn, "_sock", NoPeek(conn._sock))
    sql = "COPY (SELECT g, md5(g::text) FROM generate_series(1, 200000) g) TO STDOUT"
    with pytest.raises(OSError, match="disk full"):
        copy_stream.copy_to(conn, sql, FailingSink())  # the rest of the rows are still on the wire
    fresh = db.connection()
    assert fresh is not conn
    assert fresh.run("SELECT 42") == [[42]]
