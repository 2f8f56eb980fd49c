"""The PostgreSQL store's SQL: schema migrations, and a `LogQuery` turned into statements.

Pure functions and constants (no driver import), so the SQL can be read and tested on its own.

Schema (version 1)::

    aigw_schema      (component, version)         which migrations ran; one row per component
    aigw_logs        one row per upstream attempt (SPEC §9 columns), created_at timestamptz
    aigw_log_bodies  request/response bodies apart, so listing and filtering never read them
    aigw_log_count   one row: the number of rows in aigw_logs, kept in the write transaction

Text columns use the "C" collation: ids (uuid7) sort bytewise as in every other store, and
ordering by provider or model does not depend on the database's locale.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..query import LogQuery
from ..records import COLUMNS as RECORD_COLUMNS

SCHEMA_VERSION = 1
# pg_advisory_xact_lock key: N instances starting together apply each migration once.
MIGRATION_LOCK = 0x61696777  # "aigw"

_TEXT = 'text COLLATE "C"'
_TYPES = {"text": _TEXT, "real": "double precision", "int": "bigint", "bool": "boolean", "json": "jsonb"}
_NARROWER = {
    "id": f"{_TEXT} PRIMARY KEY",
    "created_at": "timestamptz NOT NULL",
    "status_code": "integer",
    "step": "integer",
    "attempt": "integer",
    "success": "boolean NOT NULL",
    "cached": "boolean NOT NULL",
    "feedback": "smallint",
}
# (column, type): derived from `LogRecord` (records.COLUMNS, bodies apart), in its order.
COLUMNS: list[tuple[str, str]] = [(name, _NARROWER.get(name, _TYPES[kind])) for name, kind in RECORD_COLUMNS]
NAMES = [name for name, _ in COLUMNS]
SELECT = ", ".join(NAMES)
TEXT_COLUMNS = frozenset(name for name, kind in COLUMNS if kind.startswith("text"))

# Each migration: (version, statements), applied in order in one transaction. A later migration
# that must build an index on a big table without blocking writes needs CREATE INDEX
# CONCURRENTLY, which cannot run in a transaction: give such a step its own runner then.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            f"CREATE TABLE aigw_logs ({', '.join(f'{n} {t}' for n, t in COLUMNS)})",
            f"CREATE TABLE aigw_log_bodies (id {_TEXT} PRIMARY KEY REFERENCES aigw_logs (id) ON DELETE CASCADE,"
            " request_body text, response_body text)",
            "CREATE TABLE aigw_log_count (one boolean PRIMARY KEY DEFAULT true CHECK (one), n bigint NOT NULL)",
            "INSERT INTO aigw_log_count (n) VALUES (0)",
            # The admin API's filters, each with the default order (newest first) behind it, so a
            # page is an index range scan that stops after the page, whatever the table's size.
            "CREATE INDEX aigw_logs_created_at ON aigw_logs (created_at, id)",
            "CREATE INDEX aigw_logs_provider ON aigw_logs (provider, created_at, id)",
            "CREATE INDEX aigw_logs_model ON aigw_logs (model, created_at, id)",
            "CREATE INDEX aigw_logs_token_name ON aigw_logs (token_name, created_at, id)",
            "CREATE INDEX aigw_logs_status_code ON aigw_logs (status_code, created_at, id)",
            "CREATE INDEX aigw_logs_event_id ON aigw_logs (event_id)",
            "CREATE INDEX aigw_logs_request_id ON aigw_logs (request_id)",
            "CREATE INDEX aigw_logs_errors ON aigw_logs (created_at, id) WHERE NOT success",
            "CREATE INDEX aigw_logs_cached ON aigw_logs (created_at, id) WHERE cached",
            "CREATE INDEX aigw_logs_feedback ON aigw_logs (feedback, created_at, id) WHERE feedback IS NOT NULL",
            "CREATE INDEX aigw_logs_metadata ON aigw_logs USING gin (metadata jsonb_path_ops)",
        ],
    ),
]

# How LogQuery attributes read in SQL (order_by and range filters).
_EXPRESSIONS = {
    **{n: n for n in NAMES},
    "total_tokens": "(CASE WHEN tokens_in IS NULL AND tokens_out IS NULL THEN NULL"
    " ELSE COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0) END)",
}


def _base_type(kind: str) -> str:
    return "float8" if kind.startswith("double precision") else kind.split()[0]


# A batch is one statement whatever its size: one array per column, unnest()ed into rows (a
# multi-row INSERT without building SQL per batch size; duplicates are ignored like SQLite's).
INSERT = (
    f"INSERT INTO aigw_logs ({SELECT}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{_base_type(kind)}[]" for i, (_, kind) in enumerate(COLUMNS))
    + ") ON CONFLICT (id) DO NOTHING"
)
INSERT_BODIES = (
    "INSERT INTO aigw_log_bodies (id, request_body, response_body)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (id) DO NOTHING"
)


class Params:
    """Positional parameters (``$1``, ``$2`` …) collected while a statement is built."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"


def where(q: LogQuery, p: Params) -> str:
    """``" WHERE …"`` for the query's filters (``""`` when there are none)."""
    clauses: list[str] = []
    for name, value in q.text.items():
        clauses.append(f"{name} = {p(value, '::text')}")
    for name in ("success", "cached"):
        value = getattr(q, name)
        if value is not None:
            clauses.append(f"{name} = {p(value, '::boolean')}")
    if q.status_code is not None:
        clauses.append(f"status_code = {p(q.status_code, '::integer')}")
    if q.feedback is not None:
        clauses.append(f"feedback = {p(q.feedback, '::smallint')}")
    if q.start is not None:
        clauses.append(f"created_at >= {p(q.start, '::timestamptz')}")
    if q.end is not None:
        clauses.append(f"created_at <= {p(q.end, '::timestamptz')}")
    for attr, op, bound in q.ranges:
        clauses.append(f"{_EXPRESSIONS[attr]} {op} {p(bound, '::float8')}")
    for key, want in q.metadata.items():
        # Containment finds candidates through the GIN index; ->> then compares as text,
        # the way meta_text() does (true, 42, 1.5, text).
        shapes = " OR ".join(f"metadata @> {p(shape, '::jsonb')}" for shape in _metadata_shapes(key, want))
        clauses.append(f"({shapes}) AND metadata ->> {p(key, '::text')} = {p(want, '::text')}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _metadata_shapes(key: str, want: str) -> list[str]:
    """The JSON values a stored metadata entry may hold for a query string: ``"42"`` or ``42``."""
    shapes = [json.dumps({key: want})]
    if want in ("true", "false"):
        shapes.append(json.dumps({key: want == "true"}))
    else:
        try:
            number = float(want)
        except ValueError:
            return shapes
        if math.isfinite(number):
            shapes.append(json.dumps({key: int(number) if number.is_integer() else number}))
    return shapes


def order(q: LogQuery) -> str:
    """``ORDER BY``: rows without a value last in either direction, ties by id (creation order)."""
    direction = "DESC" if q.descending else "ASC"
    if q.order_by == "created_at":
        return f" ORDER BY created_at {direction}, id {direction}"
    return f" ORDER BY {_EXPRESSIONS[q.order_by]} {direction} NULLS LAST, id {direction}"


def analytics(q: LogQuery, p: Params) -> tuple[str, int]:
    """One statement for totals and groups: ``GROUPING SETS ((dims), ())`` and exact nearest-rank
    percentiles (``percentile_disc``). Returns the SQL and the number of dimension columns; the
    last dimension column is ``GROUPING(...)`` (non-zero on the totals row) when grouped."""
    dims: list[str] = []
    for g in q.group_by:
        if g == "time":
            dims.append(f"floor(date_part('epoch', created_at) / {p(float(q.interval), '::float8')})::bigint")
        elif g in ("provider", "model"):
            dims.append(g)
        else:
            dims.append(f"metadata ->> {p(g[9:], '::text')}")
    filters = where(q, p)
    measures = (
        "count(*), count(*) FILTER (WHERE success), count(*) FILTER (WHERE cached),"
        " COALESCE(sum(tokens_in), 0)::bigint, COALESCE(sum(tokens_out), 0)::bigint, COALESCE(sum(cost), 0)::float8,"
        " percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY duration_ms)"
    )
    if not dims:
        return f"SELECT {measures} FROM aigw_logs{filters}", 0
    listed = ", ".join(dims)
    sql = (
        f"SELECT {listed}, GROUPING({listed}), {measures} FROM aigw_logs{filters}"
        f" GROUP BY GROUPING SETS (({listed}), ())"
    )
    return sql, len(dims) + 1
