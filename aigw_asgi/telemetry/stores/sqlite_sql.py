"""The SQLite store's SQL: columns and schema, rows to and from SQL, a `LogQuery` as SQL.

Pure functions and constants (no connection), so the SQL can be read and tested on its own;
`sqlite.SQLiteLogStore` runs it on its thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any

from ..analytics import summary
from ..query import LogQuery
from ..records import COLUMNS as RECORD_COLUMNS, LogRecord

_TYPES = {"text": "TEXT", "real": "REAL", "int": "INTEGER", "bool": "INTEGER", "json": "TEXT"}
_CONSTRAINED = {"id": "TEXT PRIMARY KEY", "created_at": "REAL NOT NULL"}
# (column, SQL type), derived from `LogRecord` (records.COLUMNS): a new field is a new column.
COLUMNS = [(name, _CONSTRAINED.get(name, _TYPES[kind])) for name, kind in RECORD_COLUMNS]
NAMES = [name for name, _ in COLUMNS]
BOOLS = frozenset(name for name, kind in RECORD_COLUMNS if kind == "bool")
SELECT = ", ".join(NAMES)
SCHEMA = [
    f"CREATE TABLE IF NOT EXISTS logs ({', '.join(f'{n} {t}' for n, t in COLUMNS)})",
    # Bodies live apart so listing and filtering never read them.
    "CREATE TABLE IF NOT EXISTS log_bodies (id TEXT PRIMARY KEY, request_body TEXT, response_body TEXT)",
    "CREATE INDEX IF NOT EXISTS logs_created_at ON logs (created_at)",
    "CREATE INDEX IF NOT EXISTS logs_provider ON logs (provider, created_at)",
    "CREATE INDEX IF NOT EXISTS logs_model ON logs (model, created_at)",
    "CREATE INDEX IF NOT EXISTS logs_token_name ON logs (token_name, created_at)",
    "CREATE INDEX IF NOT EXISTS logs_event_id ON logs (event_id)",
    "CREATE INDEX IF NOT EXISTS logs_request_id ON logs (request_id)",
]
EXPRESSIONS = {**{n: n for n in NAMES}, "total_tokens": "(COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0))"}


_ROW = attrgetter(*NAMES)  # one C call for the whole row (bools bind as 0/1: bool is an int)
_METADATA = NAMES.index("metadata")


@lru_cache(maxsize=128)
def insert_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    values = ", ".join([f"({', '.join('?' * len(columns))})"] * rows)
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES {values}"


def to_sql(r: LogRecord) -> tuple[Any, ...]:
    row: tuple[Any, ...] = _ROW(r)
    if r.metadata is not None:
        meta = json.dumps(r.metadata, separators=(",", ":")) if r.metadata else None
        row = (*row[:_METADATA], meta, *row[_METADATA + 1 :])
    return row


def from_sql(row: Sequence[Any], bodies: tuple[str | None, str | None] | None = None) -> LogRecord:
    data = dict(zip(NAMES, row, strict=True))
    for name in BOOLS:
        data[name] = bool(data[name])
    if data["metadata"]:
        data["metadata"] = json.loads(data["metadata"])
    if bodies is not None:
        data["request_body"], data["response_body"] = bodies
    return LogRecord(**data)


# A metadata value as text, the way meta_text() shows it: booleans are stored as JSON
# true/false and compare as those words. Binds the JSON path twice.
_META_TEXT = (
    "(CASE json_type(metadata, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
    "ELSE CAST(json_extract(metadata, ?) AS TEXT) END)"
)


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', "") + '"'


def where(q: LogQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for name, value in q.text.items():
        clauses.append(f"{name} = ?")
        args.append(value)
    for name in ("success", "cached"):
        value = getattr(q, name)
        if value is not None:
            clauses.append(f"{name} = ?")
            args.append(int(value))
    for name in ("status_code", "feedback"):
        value = getattr(q, name)
        if value is not None:
            clauses.append(f"{name} = ?")
            args.append(value)
    if q.start is not None:
        clauses.append("created_at >= ?")
        args.append(q.start)
    if q.end is not None:
        clauses.append("created_at <= ?")
        args.append(q.end)
    for attr, op, bound in q.ranges:
        column = EXPRESSIONS[attr]
        if attr == "total_tokens":
            clauses.append(f"(tokens_in IS NOT NULL OR tokens_out IS NOT NULL) AND {column} {op} ?")
        else:
            clauses.append(f"{column} {op} ?")
        args.append(bound)
    for key, want in q.metadata.items():
        path = _json_path(key)
        clauses.append(f"{_META_TEXT} = ?")
        args += [path, path, want]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def dimensions(q: LogQuery) -> tuple[list[str], list[Any]]:
    """SQL for each ``group_by`` dimension (a time bucket as its bucket number)."""
    dims: list[str] = []
    args: list[Any] = []
    for g in q.group_by:
        if g == "time":
            dims.append(f"CAST(created_at / {int(q.interval)} AS INTEGER)")
        elif g in ("provider", "model"):
            dims.append(g)
        else:
            path = _json_path(g[9:])
            dims.append(_META_TEXT)
            args += [path, path]
    return dims, args


def bucketed(key: tuple[Any, ...], q: LogQuery) -> tuple[Any, ...]:
    """A group key with its time bucket number turned back into epoch seconds."""
    if "time" not in q.group_by:
        return key
    t = q.group_by.index("time")
    return (*key[:t], float(key[t] * q.interval), *key[t + 1 :])


def stats(
    requests: int, ok: float, cached: float, tokens_in: float, tokens_out: float, cost: float,
    p50: float | None, p95: float | None,
) -> dict[str, Any]:  # fmt: skip
    return summary(requests, requests - int(ok), int(cached), int(tokens_in), int(tokens_out), cost, p50, p95)


def order_sql(q: LogQuery) -> str:
    column = EXPRESSIONS[q.order_by]
    direction = "DESC" if q.descending else "ASC"
    if q.order_by == "created_at":
        return f" ORDER BY created_at {direction}, id {direction}"
    return f" ORDER BY {column} IS NULL, {column} {direction}, id {direction}"
