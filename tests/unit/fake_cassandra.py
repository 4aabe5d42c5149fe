"""A CassandraStore whose requests go to a scripted stand-in for Cassandra instead of the network.

The store builds its real statements (offline prepared statements of the real CQL and column
types); `FakeCassandra.execute_concurrent` stands in for the driver's function of that name,
answering each statement as scripted: a fault for the next calls, or "too large" above a size.
"""

from __future__ import annotations

import dataclasses
import struct

from cassandra import InvalidRequest
from cassandra.cqltypes import LongType, MapType, UTF8Type
from cassandra.protocol import ColumnMetadata
from cassandra.query import BatchStatement, PreparedStatement

from common import schema
from common.settings import Settings
from common.store import CassandraStore

_TEXT_MAP = MapType.apply_parameters([UTF8Type, UTF8Type])
_INSERT_COLUMNS = [
    ("namespace", UTF8Type), ("pod_name", UTF8Type), ("container_name", UTF8Type), ("bucket", LongType),
    ("ts_ns", LongType), ("line_id", LongType), ("log", UTF8Type), ("stream", UTF8Type), ("host", UTF8Type),
    ("pod_id", UTF8Type), ("docker_id", UTF8Type), ("labels", _TEXT_MAP),
]
TOO_LARGE = "CQL Message of size {size} bytes exceeds allowed maximum of 16777216 bytes"


def _prepared(keyspace: str, table: str, query: str, columns, partition_key_columns: int) -> PreparedStatement:
    metadata = [ColumnMetadata(keyspace, table, name, kind) for name, kind in columns]
    return PreparedStatement(metadata, query.encode()[:16].ljust(16, b"-"), list(range(partition_key_columns)),
                             query, keyspace, 5, [], None)


@dataclasses.dataclass
class FakeCassandra:
    faults: list[Exception] = dataclasses.field(default_factory=list)  # each fails every statement of a call
    max_rows_per_request: int | None = None  # a batch of more rows is "too large"
    too_large_lines: set[str] = dataclasses.field(default_factory=set)  # rows too large even alone
    too_large_message: str = TOO_LARGE.format(size=17_000_000)
    written: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (ts_ns, log)
    requests: list[int] = dataclasses.field(default_factory=list)  # rows per accepted line request
    refused: list[list[tuple[int, str]]] = dataclasses.field(default_factory=list)  # requests refused as too large

    def execute_concurrent(self, session, statements_and_params, concurrency=100, raise_on_first_error=True,
                           **_):
        statements = list(statements_and_params)
        fault = self.faults.pop(0) if self.faults else None
        outcomes = [self._answer(statement, params, fault) for statement, params in statements]
        if raise_on_first_error:
            for ok, outcome in outcomes:
                if not ok:
                    raise outcome
        return outcomes

    def _answer(self, statement, params, fault):
        if fault is not None:
            return False, fault
        rows = _rows(statement, params)
        if rows and (len(rows) > (self.max_rows_per_request or len(rows))
                     or any(log in self.too_large_lines for _, log in rows)):
            self.refused.append(rows)
            return False, InvalidRequest(
                f'Error from server: code=2200 [Invalid query] message="{self.too_large_message}"')
        if rows:
            self.written += rows
            self.requests.append(len(rows))
        return True, None


def _rows(statement, params) -> list[tuple[int, str]]:
    """The (ts_ns, log) of each line a request writes (none for index entries)."""
    if isinstance(statement, BatchStatement):
        return [(struct.unpack(">q", values[4])[0], values[6].decode())
                for _, _, values in statement._statements_and_parameters]
    if isinstance(statement, PreparedStatement) and statement.query_string.startswith(
            f"INSERT INTO {statement.keyspace}.{schema.LOG_TABLE} "):
        return [(params[4], params[6])]
    return []


class _AnsweringSession:
    """Answers the store's ping (SELECT ... FROM system.local) at once, as Cassandra does when a write
    failed for another reason than an outage."""

    def execute(self, *args, **kwargs):
        return None


def offline_store(settings: Settings, cassandra: FakeCassandra, monkeypatch) -> CassandraStore:
    """A CassandraStore that is 'connected' to `cassandra` (no driver Cluster is ever built).
    It writes the `rows` layout, whose statements the fake answers: the send path (retries,
    splits, refusals) is the one both layouts share; blocks are tested on the real Cassandra."""
    keyspace = settings.cassandra_keyspace
    store = CassandraStore(dataclasses.replace(settings, cassandra_layout="rows"))
    store._statements = {
        "insert": _prepared(keyspace, schema.LOG_TABLE, schema.insert_row(keyspace), _INSERT_COLUMNS, 4),
        "insert_stream": _prepared(keyspace, schema.STREAM_INDEX_TABLE, schema.insert_stream(keyspace), [
            ("namespace", UTF8Type), ("bucket", LongType), ("pod_name", UTF8Type), ("container_name", UTF8Type),
        ], 2),
        "insert_namespace": _prepared(keyspace, schema.NAMESPACE_INDEX_TABLE, schema.insert_namespace(keyspace),
                                      [("bucket", LongType), ("namespace", UTF8Type)], 1),
        "insert_series": _prepared(keyspace, schema.SERIES_INDEX_TABLE, schema.insert_series(keyspace), [
            ("bucket", LongType), ("namespace", UTF8Type), ("pod_name", UTF8Type), ("container_name", UTF8Type),
            ("stream", UTF8Type), ("labels_id", UTF8Type), ("labels", _TEXT_MAP),
        ], 1),
    }
    store._session = _AnsweringSession()
    monkeypatch.setattr("common.store.execute_concurrent", cassandra.execute_concurrent)
    return store
