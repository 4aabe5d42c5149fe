"""The Cassandra log store: schema, bulk writes, time-range reads, readiness.

One `CassandraStore` holds one driver Cluster/Session for the whole process (create it after any
fork: the driver does not survive one). It connects lazily, so an API can start before Cassandra
and ingest meanwhile; every driver failure leaves here as `StoreUnavailable`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

from cassandra import ConsistencyLevel, DriverException, RequestExecutionException
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement, tuple_factory

from common import schema
from common.query_plan import plan_slices
from common.records import LogRow
from common.row_keys import bucket_of, line_ids
from common.settings import Settings

log = logging.getLogger(__name__)

# Cassandra refuses batches above batch_size_fail_threshold (50 KiB by default); stay well below.
BATCH_BYTES_LIMIT = 40 * 1024
_ROW_OVERHEAD_BYTES = 96
# Bucket reads issued at once by a query (empty buckets cost one round trip each).
_QUERY_READ_AHEAD = 16


class StoreUnavailable(Exception):
    """Cassandra did not answer, or answered with an error that a later retry may not see."""


class StoreConfigError(Exception):
    """The existing schema disagrees with the settings (e.g. another bucket size)."""


@dataclasses.dataclass(frozen=True)
class QueryResult:
    rows: list[tuple[int, str]]  # (ts_ns, log), oldest first
    truncated: bool


_DRIVER_ERRORS = (DriverException, RequestExecutionException, NoHostAvailable, OSError)


class CassandraStore:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._insert: PreparedStatement | None = None
        self._select: PreparedStatement | None = None

    # --- connection and schema ---

    def connect(self) -> Session:
        """The process's session, connecting and creating the schema on first use."""
        if self._session is not None:
            return self._session
        with self._lock:
            if self._session is None:
                try:
                    self._open()
                except _DRIVER_ERRORS as error:
                    self._close_cluster()
                    raise StoreUnavailable(f"cannot connect to Cassandra: {_describe(error)}") from error
        return self._session  # type: ignore[return-value]

    def _open(self) -> None:
        s = self._settings
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=ConsistencyLevel.name_to_value[s.cassandra_consistency],
            request_timeout=s.cassandra_timeout_seconds,
            row_factory=tuple_factory,
        )
        auth = (
            PlainTextAuthProvider(s.cassandra_username, s.cassandra_password)
            if s.cassandra_username
            else None
        )
        cluster = Cluster(
            contact_points=list(s.cassandra_hosts),
            port=s.cassandra_port,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth,
            connect_timeout=min(s.cassandra_timeout_seconds, 2.0),
            control_connection_timeout=min(s.cassandra_timeout_seconds, 2.0),
            **_libev_if_available(),
        )
        self._cluster = cluster
        session = cluster.connect()
        self._ensure_schema(session)
        self._insert = session.prepare(schema.insert_row(s.cassandra_keyspace))
        self._select = session.prepare(schema.select_slice(s.cassandra_keyspace))
        self._session = session
        log.info("event=cassandra_connected hosts=%s keyspace=%s", ",".join(s.cassandra_hosts),
                 s.cassandra_keyspace)

    def _ensure_schema(self, session: Session) -> None:
        s = self._settings
        # DDL waits for schema agreement; give it more than a normal request.
        ddl_timeout = max(s.cassandra_timeout_seconds, 30.0)
        keyspace = session.cluster.metadata.keyspaces.get(s.cassandra_keyspace)
        if keyspace is None or schema.LOG_TABLE not in keyspace.tables:
            session.execute(schema.create_keyspace(s), timeout=ddl_timeout)
            session.execute(schema.create_log_table(s), timeout=ddl_timeout)
        if keyspace is None or schema.SETTINGS_TABLE not in keyspace.tables:
            session.execute(schema.create_settings_table(s), timeout=ddl_timeout)
        self._check_bucket_size(session)

    def _check_bucket_size(self, session: Session) -> None:
        s = self._settings
        table = f"{s.cassandra_keyspace}.{schema.SETTINGS_TABLE}"
        session.execute(
            f"INSERT INTO {table} (name, value) VALUES ('bucket_seconds', %s) IF NOT EXISTS",
            (str(s.cassandra_bucket_seconds),),
            timeout=max(s.cassandra_timeout_seconds, 30.0),
        )
        row = session.execute(f"SELECT value FROM {table} WHERE name = 'bucket_seconds'").one()
        if row is not None and int(row[0]) != s.cassandra_bucket_seconds:
            raise StoreConfigError(
                f"keyspace {s.cassandra_keyspace} stores logs in {row[0]}-second buckets; "
                f"CASSANDRA_BUCKET_SECONDS={s.cassandra_bucket_seconds} would misplace rows. "
                f"Set it to {row[0]} or use another keyspace."
            )

    def close(self) -> None:
        with self._lock:
            self._close_cluster()

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None

    # --- operations ---

    def ping(self, timeout: float) -> None:
        """Raise StoreUnavailable unless Cassandra answers a trivial read within `timeout`."""
        session = self.connect()
        try:
            session.execute("SELECT release_version FROM system.local", timeout=timeout)
        except _DRIVER_ERRORS as error:
            raise StoreUnavailable(_describe(error)) from error

    def write(self, rows: Sequence[LogRow]) -> int:
        """Write every row (idempotently: same rows, same keys); returns the partitions touched."""
        session = self.connect()
        by_partition = self._params_by_partition(rows)
        try:
            if self._settings.cassandra_write_mode == "batch":
                self._write_batches(session, by_partition)
            else:
                params = [p for partition in by_partition.values() for p in partition]
                execute_concurrent_with_args(
                    session, self._insert, params,
                    concurrency=self._settings.cassandra_write_concurrency, raise_on_first_error=True,
                )
        except _DRIVER_ERRORS as error:
            raise StoreUnavailable(f"write failed: {_describe(error)}") from error
        return len(by_partition)

    def _params_by_partition(self, rows: Iterable[LogRow]) -> dict[tuple, list[tuple]]:
        # Absent optional fields are UNSET, not null: a null would write a tombstone per cell.
        bucket_seconds = self._settings.cassandra_bucket_seconds
        groups: dict[tuple, list[tuple]] = defaultdict(list)
        rows = list(rows)
        for row, line_id in zip(rows, line_ids(rows)):
            bucket = bucket_of(row.ts_ns, bucket_seconds)
            groups[(row.namespace, row.pod_name, row.container_name, bucket)].append(
                (row.namespace, row.pod_name, row.container_name, bucket, row.ts_ns, line_id, row.log,
                 *(UNSET_VALUE if v is None else v for v in (row.stream, row.host, row.pod_id, row.docker_id,
                                                             row.labels)))
            )
        return groups

    def _write_batches(self, session: Session, by_partition: dict[tuple, list[tuple]]) -> None:
        statements = []
        for params in by_partition.values():
            batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
            for p in params:
                row_bytes = len(p[6]) * 2 + _ROW_OVERHEAD_BYTES  # upper-bound-ish without encoding
                if size and size + row_bytes > BATCH_BYTES_LIMIT:
                    statements.append((batch, ()))
                    batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
                batch.add(self._insert, p)
                size += row_bytes
            statements.append((batch, ()))
        execute_concurrent(
            session, statements, concurrency=self._settings.cassandra_write_concurrency,
            raise_on_first_error=True,
        )

    def query(
        self, namespace: str, pod_name: str, container_name: str, start_ns: int, end_ns: int,
        max_rows: int,
    ) -> QueryResult:
        """Lines of one container with start_ns <= ts <= end_ns, oldest first, at most max_rows."""
        session = self.connect()
        slices = plan_slices(start_ns, end_ns, self._settings.cassandra_bucket_seconds)
        rows: list[tuple[int, str]] = []
        try:
            for first in range(0, len(slices), _QUERY_READ_AHEAD):
                futures = [
                    session.execute_async(
                        self._select,
                        (namespace, pod_name, container_name, s.bucket, s.start_ns, s.end_ns),
                    )
                    for s in slices[first:first + _QUERY_READ_AHEAD]
                ]
                for future in futures:
                    for row in future.result():
                        if len(rows) == max_rows:
                            return QueryResult(rows, truncated=True)
                        rows.append(row)
        except _DRIVER_ERRORS as error:
            raise StoreUnavailable(f"query failed: {_describe(error)}") from error
        return QueryResult(rows, truncated=False)


def _libev_if_available() -> dict:
    """The libev reactor (the fastest; the driver's wheels ship it), else the driver's default."""
    try:
        from cassandra.io.libevreactor import LibevConnection
    except ImportError:  # pragma: no cover
        return {}
    return {"connection_class": LibevConnection}


def _describe(error: BaseException) -> str:
    if isinstance(error, NoHostAvailable):
        reasons = "; ".join(f"{host}: {reason}" for host, reason in error.errors.items())
        return f"no host available ({reasons or 'none reachable'})"
    return f"{type(error).__name__}: {error}"[:500]


def wait_until_connected(store: CassandraStore, deadline_seconds: float) -> None:
    """Connect, retrying with back-off until the deadline (workers starting before Cassandra)."""
    delay, started = 1.0, time.monotonic()
    while True:
        try:
            store.connect()
            return
        except StoreUnavailable as error:
            if time.monotonic() - started > deadline_seconds:
                raise
            log.warning("event=cassandra_waiting retry_in=%.0fs error=%s", delay, error)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
