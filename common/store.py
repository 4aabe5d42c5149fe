"""The Cassandra log store: schema, bulk writes, time-range reads, readiness.

One `CassandraStore` holds one driver Cluster/Session for the whole process (create it after any
fork: the driver does not survive one). It connects lazily, so an API can start before Cassandra
and ingest meanwhile. A driver failure leaves here as one of:

- `StoreUnavailable`: an outage or a transient refusal (unavailable at the consistency level,
  timeouts, overload): not the batch's fault, a later attempt may succeed;
- `WriteRefused`: Cassandra refuses the write itself (e.g. an invalid request); a retry is unlikely
  to help but may after an operator's fix;
- `BatchNeverWritable`: a row too large for Cassandra even alone. A request too large as a whole
  is split in halves and written in pieces first.
- `StoreConfigError`: the settings disagree with the existing schema; remembered, so a process
  never builds another Cluster for it.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import math
import operator
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from cassandra import (ConsistencyLevel, DriverException, FunctionFailure, InvalidRequest, RequestExecutionException,
                       RequestValidationException)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent
from cassandra.connection import ConnectionBusy
from cassandra.protocol import ErrorMessage
from cassandra.protocol import RequestValidationException as ValidationErrorMessage
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement, tuple_factory

from common import block_merge, blocks, schema
from common.container_lines import ContainerLines, containers_of
from common.log_store import (BatchNeverWritable, Bound, Direction, LogLine, SeriesEntry, StoreConfigError,
                              StoreUnavailable, WriteRefused)
from common.partitions import PartitionKey, bucket_of
from common.records import LogRow
from common.row_keys import container_line_ids, line_ids
from common.settings import Settings

log = logging.getLogger(__name__)

# The estimated request size a line batch is filled to. Cassandra 5 applies batch_size_fail_threshold
# (50 KiB by default) only to batches spanning partitions, never to these single-partition ones;
# what it does refuse is a request above native_transport_max_message_size or a mutation above
# max_mutation_size (16 MiB each by default): such a batch is split (see _send).
BATCH_BYTES_LIMIT = 40 * 1024
# A batched INSERT's own bytes besides its text values: statement kind, query id, 12 value lengths,
# the three bigints.
_ROW_OVERHEAD_BYTES = 96
# A map entry's bytes besides its key and value (two 4-byte lengths).
_LABEL_OVERHEAD_BYTES = 8
# Longest pause between attempts to reach a Cassandra node that went down (the driver's default is 600 s).
RECONNECT_MAX_DELAY_SECONDS = 5.0
# Index entries a process remembers having written before it forgets them all and starts over.
_INDEX_MEMORY_ENTRIES = 100_000


_DRIVER_ERRORS = (DriverException, RequestExecutionException, NoHostAvailable, ErrorMessage, OSError)
# What Cassandra 5.0 answers for a request or mutation too large (InvalidRequest, code 0x2200):
# "CQL Message of size N bytes exceeds allowed maximum of M bytes", "Mutation of N bytes is too
# large for the maximum size of M", and for a batch across partitions "Batch too large".
_TOO_LARGE_MARKERS = ("too large", "exceeds allowed maximum")


def is_too_large(error: BaseException) -> bool:
    return isinstance(error, InvalidRequest) and any(marker in str(error) for marker in _TOO_LARGE_MARKERS)


def is_refusal(error: BaseException) -> bool:
    """Cassandra understood the request and will not run it as it is (not an outage)."""
    return isinstance(error, (RequestValidationException, ValidationErrorMessage, FunctionFailure))


# A request the driver refused because its connection's write buffer is full ("Connection ... is
# overloaded", ConnectionBusy) never left this process: sent again after a pause, up to this often.
CLIENT_BUSY_ROUNDS = 10
CLIENT_BUSY_PAUSE_SECONDS = 0.05


def _only_client_busy(error: BaseException) -> bool:
    """Whether every host the driver tried refused the request only for its own back-pressure."""
    if isinstance(error, ConnectionBusy):
        return True
    errors = getattr(error, "errors", None) if isinstance(error, NoHostAvailable) else None
    return bool(errors) and all(isinstance(e, ConnectionBusy) for e in errors.values())


class CassandraStore:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._statements: dict[str | Direction | tuple, PreparedStatement] = {}
        self._config_error: StoreConfigError | None = None
        # Index entries this process wrote, and when (monotonic): rewritten after INDEX_REFRESH_SECONDS.
        self._indexed: dict[tuple, float] = {}

    @property
    def bucket_seconds(self) -> int:
        """The width of a partition's time bucket (CASSANDRA_BUCKET_SECONDS)."""
        return self._settings.cassandra_bucket_seconds

    # --- connection and schema ---

    def connect(self) -> Session:
        """The process's session, connecting and creating the schema on first use."""
        if self._session is not None:
            return self._session
        with self._lock:
            if self._config_error is not None:
                raise self._config_error
            if self._session is None:
                try:
                    self._open()
                except BaseException as error:
                    self._close_cluster()
                    if isinstance(error, StoreConfigError):
                        self._config_error = error  # settings cannot change in a running process
                        log.error("event=store_config_error error=%s", error)
                    if isinstance(error, _DRIVER_ERRORS):
                        raise StoreUnavailable(f"cannot connect to Cassandra: {_describe(error)}") from error
                    raise
        return self._session  # type: ignore[return-value]

    def _open(self) -> None:
        s = self._settings
        # Writes (and DDL, readiness) use the default profile; queries one at the read consistency.
        writes = _profile(s, s.write_consistency(), tuple_factory)
        reads = _profile(s, s.read_consistency(), tuple_factory)
        auth = (
            PlainTextAuthProvider(s.cassandra_username, s.cassandra_password)
            if s.cassandra_username
            else None
        )
        cluster = Cluster(
            contact_points=list(s.cassandra_hosts),
            port=s.cassandra_port,
            execution_profiles={
                EXEC_PROFILE_DEFAULT: writes,
                _READS_PROFILE: reads,
                _LINES_PROFILE: _profile(s, s.read_consistency(), _line_factory),
            },
            auth_provider=auth,
            connect_timeout=min(s.cassandra_timeout_seconds, 2.0),
            control_connection_timeout=min(s.cassandra_timeout_seconds, 2.0),
            # The driver's default (up to 600 s between attempts, giving up after 64) left a worker
            # idle for over a minute after Cassandra came back from a one-minute outage.
            reconnection_policy=ExponentialReconnectionPolicy(1.0, RECONNECT_MAX_DELAY_SECONDS, max_attempts=None),
            # Without TCP_NODELAY, a request past a few kB (a block, a 40 KiB batch) waited ~40 ms
            # for the server's delayed ACK before its last segment left (Nagle): bench/README.
            sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            **_libev_if_available(),
        )
        self._cluster = cluster
        session = cluster.connect()
        self._ensure_schema(session)
        keyspace = s.cassandra_keyspace
        self._statements = {
            name: _prepare_idempotent(session, cql)
            for name, cql in (
                ("insert", schema.insert_row(keyspace)),
                ("insert_block", schema.insert_block(keyspace)),
                ("insert_block_with_ttl", schema.insert_block_with_ttl(keyspace)),
                ("block_summaries", schema.select_block_summaries(keyspace)),
                ("block_data", schema.select_block_data(keyspace)),
                ("delete_block", schema.delete_block(keyspace)),
                (("blocks", Direction.FORWARD), schema.select_blocks(keyspace, Direction.FORWARD)),
                (("blocks", Direction.BACKWARD), schema.select_blocks(keyspace, Direction.BACKWARD)),
                ("insert_stream", schema.insert_stream(keyspace)),
                ("insert_namespace", schema.insert_namespace(keyspace)),
                ("insert_series", schema.insert_series(keyspace)),
                (Direction.FORWARD, schema.select_range(keyspace, Direction.FORWARD)),
                (Direction.BACKWARD, schema.select_range(keyspace, Direction.BACKWARD)),
                ("streams", schema.select_streams(keyspace, one_pod=False)),
                ("pod_streams", schema.select_streams(keyspace, one_pod=True)),
                ("namespaces", schema.select_namespaces(keyspace)),
                ("series", schema.select_series(keyspace)),
            )
        }
        self._session = session
        log.info("event=cassandra_connected hosts=%s keyspace=%s", ",".join(s.cassandra_hosts),
                 s.cassandra_keyspace)

    def _ensure_schema(self, session: Session) -> None:
        s = self._settings
        # DDL waits for schema agreement; give it more than a normal request.
        ddl_timeout = max(s.cassandra_timeout_seconds, 30.0)
        keyspace = session.cluster.metadata.keyspaces.get(s.cassandra_keyspace)
        if keyspace is None:
            session.execute(schema.create_keyspace(s), timeout=ddl_timeout)
        existing = keyspace.tables if keyspace is not None else {}
        for table, create in (
            (schema.LOG_TABLE, schema.create_log_table),
            (schema.BLOCK_TABLE, schema.create_block_table),
            (schema.STREAM_INDEX_TABLE, schema.create_stream_index_table),
            (schema.NAMESPACE_INDEX_TABLE, schema.create_namespace_index_table),
            (schema.SERIES_INDEX_TABLE, schema.create_series_index_table),
            (schema.SETTINGS_TABLE, schema.create_settings_table),
        ):
            if table not in existing:
                session.execute(create(s), timeout=ddl_timeout)
        self._check_bucket_size(session)
        self._apply_ttl(session, ddl_timeout)

    def _apply_ttl(self, session: Session, ddl_timeout: float) -> None:
        """Bring the tables' default TTL to the settings' (CASSANDRA_TTL_SECONDS, and the index
        tables' derived from it): a changed setting takes effect on every line written from now on
        (a line keeps the TTL it was written with)."""
        s = self._settings
        wanted = {
            schema.LOG_TABLE: s.cassandra_ttl_seconds,
            schema.BLOCK_TABLE: s.cassandra_ttl_seconds,
            schema.STREAM_INDEX_TABLE: schema.index_ttl_seconds(s),
            schema.NAMESPACE_INDEX_TABLE: schema.index_ttl_seconds(s),
            schema.SERIES_INDEX_TABLE: schema.index_ttl_seconds(s),
        }
        current = session.execute(
            "SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s",
            (s.cassandra_keyspace,),
        )
        for table, ttl in current:
            if table in wanted and ttl != wanted[table]:
                session.execute(schema.alter_default_ttl(s.cassandra_keyspace, table, wanted[table]),
                                timeout=ddl_timeout)
                log.warning("event=schema_changed table=%s.%s option=default_time_to_live old=%d new=%d",
                            s.cassandra_keyspace, table, ttl, wanted[table])

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
                f"Set CASSANDRA_BUCKET_SECONDS={row[0]}, or CASSANDRA_KEYSPACE to another keyspace."
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
        """Write every row (idempotently: same rows, same keys) and the index entries that find
        them; returns the partitions touched."""
        return len(self.write_batches([rows]))

    def write_batches(self, batches: Sequence[Sequence[LogRow]]) -> dict[PartitionKey, int]:
        """Several queued batches in one write; each line keeps the identity its own batch gives it
        (an offset-less line's id counts its position among its batch's lines: row_keys). Returns
        the lines written per partition."""
        session = self.connect()
        if self._settings.cassandra_layout == "blocks":
            return self._write_blocks(session, [(container, container_line_ids(container))
                                                for batch in batches for container in containers_of(batch)])
        rows = [row for batch in batches for row in batch]
        ids = [line_id for batch in batches for line_id in line_ids(batch)]
        by_partition = self._params_by_partition(rows, ids)
        index_entries = self._unindexed(by_partition)
        if self._settings.cassandra_write_mode == "batch":
            requests = [(batch, (), functools.partial(self._split_rows, params))
                        for partition in by_partition.values() for batch, params in self._batches(partition)]
        else:
            insert = self._statements["insert"]
            requests = [(insert, p, functools.partial(self._split_rows, [p]))
                        for partition in by_partition.values() for p in partition]
        requests += self._index_requests(index_entries)
        self._send(session, requests)
        self._remember_indexed(index_entries)
        return {partition: len(params) for partition, params in by_partition.items()}

    def _write_blocks(self, session: Session, containers: list[tuple[ContainerLines, list[int]]]) -> dict[PartitionKey, int]:
        """The `blocks` layout: one INSERT per block (common.blocks) of each partition's lines."""
        partitions = blocks.partition_blocks(containers, self._settings.cassandra_bucket_seconds)
        series = [(*part.key, stream or "", labels) for part in partitions for stream, labels in part.series]
        index_entries = self._not_recently_indexed(series)
        requests = [self._block_insert(part.key, block) for part in partitions for block in part.blocks]
        requests += self._index_requests(index_entries)
        self._send(session, requests)
        self._remember_indexed(index_entries)
        return {part.key: part.line_count for part in partitions}

    def merge_small_blocks(self, partition: PartitionKey, written_before_us: int) -> block_merge.MergeOutcome:
        """Merge the partition's small blocks written before the cut-off (microseconds since the
        epoch, Cassandra's WRITETIME) into fewer, bigger ones: written first, the inputs deleted
        after (common.block_merge says why that is safe to interrupt, repeat and race)."""
        session = self.connect()
        (rows,) = self._read_all("block_summaries", [partition])
        summaries = [block_merge.BlockSummary(*row) for row in rows]
        small = block_merge.settled_small_blocks(summaries, written_before_us)
        outcome = block_merge.MergeOutcome()
        for run in block_merge.chunks(small):
            found = self._read_all("block_data", [(*partition, *block.key) for block in run])
            if any(not rows for rows in found):
                continue  # merged (deleted) meanwhile by another worker: its outputs hold the lines
            merge = block_merge.plan(run, [blocks.decode_block(rows[0][0]) for rows in found])
            if merge is None:
                continue
            self._send(session, [self._block_insert(partition, block, merge.ttl_seconds) for block in merge.writes])
            delete = self._statements["delete_block"]
            self._send(session, [(delete, (*partition, *key), None) for key in merge.deletes])
            outcome = outcome.add(merge)
        outcome.small_later = sum(block_merge.is_small(b) and b.written_us >= written_before_us for b in summaries)
        return outcome

    def _split_block(self, key: tuple, block: blocks.Block, error: BaseException,
                     ttl_seconds: int | None = None) -> list[tuple]:
        halves = blocks.split_block(block)
        if halves is None:
            namespace, pod_name, container_name, _ = key
            raise BatchNeverWritable(
                f"the line of {namespace}/{pod_name}/{container_name} at ts_ns={block.first_ts} ({len(block.data)} "
                f"bytes compressed) is too large for Cassandra even alone and can never be written as it is "
                f"({_describe(error)}); raise Cassandra's native_transport_max_message_size / max_mutation_size, "
                f"then requeue the failed batch") from error
        log.warning("event=write_split lines=%d into=%d+%d error=%s", block.line_count, halves[0].line_count,
                    halves[1].line_count, _describe(error))
        return [self._block_insert(key, half, ttl_seconds) for half in halves]

    def _block_insert(self, key: tuple, block: blocks.Block, ttl_seconds: int | None = None) -> tuple:
        """The request writing one block (with a TTL of its own when given), split if too large."""
        split = functools.partial(self._split_block, key, block, ttl_seconds=ttl_seconds)
        if ttl_seconds is None:
            return self._statements["insert_block"], (*key, *block), split
        return self._statements["insert_block_with_ttl"], (*key, *block, ttl_seconds), split

    def _split_rows(self, rows: list[tuple], error: BaseException) -> list[tuple]:
        if len(rows) == 1:
            raise BatchNeverWritable(_never_writable(rows[0], error)) from error
        half = len(rows) // 2
        log.warning("event=write_split rows=%d into=%d+%d error=%s", len(rows), half, len(rows) - half,
                    _describe(error))
        return [(self._batch(part), (), functools.partial(self._split_rows, part)) for part in (rows[:half], rows[half:])]

    def _send(self, session: Session, requests: list[tuple]) -> None:
        """Run every (statement, parameters, split or None) request concurrently. A request
        Cassandra finds too large is split in halves by its `split(error)`, and the halves sent,
        until each is small enough or a single line, which can never be written (split raises)."""
        busy_rounds = 0
        while requests:
            try:
                outcomes = execute_concurrent(
                    session, [(statement, params) for statement, params, _ in requests],
                    concurrency=self._settings.cassandra_write_concurrency, raise_on_first_error=False,
                )
            except _DRIVER_ERRORS as error:
                raise StoreUnavailable(f"write failed: {_describe(error)}") from error
            failed = [(request, error) for request, (ok, error) in zip(requests, outcomes) if not ok]
            # The driver's own back-pressure (its write buffer full of large requests): nothing
            # reached Cassandra, so those requests are sent again once the buffer drained.
            busy = [request for request, error in failed if _only_client_busy(error)]
            if busy and busy_rounds < CLIENT_BUSY_ROUNDS:
                busy_rounds += 1
                time.sleep(CLIENT_BUSY_PAUSE_SECONDS * busy_rounds)
                failed = [(request, error) for request, error in failed if not _only_client_busy(error)]
            else:
                busy = []
            failures = [(split, error) for (_, _, split), error in failed]
            too_large = [(split, error) for split, error in failures if split is not None and is_too_large(error)]
            others = [error for split, error in failures if split is None or not is_too_large(error)]
            # An outage's failure first: the whole batch is tried again later, at no cost to its retries.
            for error in sorted(others, key=is_refusal):
                if is_refusal(error):
                    raise WriteRefused(f"Cassandra refused the write: {_describe(error)}") from error
                if isinstance(error, _DRIVER_ERRORS):
                    raise StoreUnavailable(f"write failed: {_describe(error)}") from error
                raise error
            requests = busy
            for split, error in too_large:
                requests += split(error)

    def _unindexed(self, by_partition: dict[tuple, list[tuple]]) -> list[tuple]:
        """The label sets (namespace, pod, container, bucket, stream or '', sorted label items) of the
        rows whose index entries this process has not written within INDEX_REFRESH_SECONDS."""
        unset = UNSET_VALUE
        entries = []
        for key, params in by_partition.items():
            seen: set[tuple] = set()
            last = None
            for p in params:
                # A container's rows mostly share their stream and labels: compare before building a key.
                if last is not None and p[7] == last[0] and p[11] == last[1]:
                    continue
                last = (p[7], p[11])
                stream, labels = p[7], p[11]
                series = (*key, "" if stream is unset else stream,
                          () if labels is unset else tuple(sorted(labels.items())))
                if series in seen:
                    continue
                seen.add(series)
                entries.append(series)
        return self._not_recently_indexed(entries)

    def _not_recently_indexed(self, series: list[tuple]) -> list[tuple]:
        """The label sets whose index entries this process has not written within INDEX_REFRESH_SECONDS."""
        now = time.monotonic()
        return [entry for entry in series if now - self._indexed.get(entry, -math.inf) > schema.INDEX_REFRESH_SECONDS]

    def _index_requests(self, entries: list[tuple]) -> list[tuple]:
        """The index entries' INSERTs as requests (statement, parameters, None): the entries of
        one index partition (the series of a bucket, the containers of a namespace's bucket, the
        namespaces of a bucket) go in UNLOGGED batches of up to BATCH_BYTES_LIMIT, so a burst of
        new containers costs a few requests, not three per container."""
        series: dict[int, list[tuple]] = defaultdict(list)
        streams, namespaces = set(), set()
        for namespace, pod_name, container_name, bucket, stream, labels in entries:
            series[bucket].append((bucket, namespace, pod_name, container_name, stream, schema.labels_id(labels),
                                   dict(labels)))
            streams.add((namespace, bucket, pod_name, container_name))
            namespaces.add((bucket, namespace))
        by_partition: list[tuple[PreparedStatement, list[tuple]]] = [
            (self._statements["insert_series"], params) for params in series.values()]
        for statement, keys, partition_of in ((self._statements["insert_stream"], streams, operator.itemgetter(0, 1)),
                                              (self._statements["insert_namespace"], namespaces, operator.itemgetter(0))):
            grouped: dict[tuple, list[tuple]] = defaultdict(list)
            for key in sorted(keys):
                grouped[partition_of(key)].append(key)
            by_partition += [(statement, params) for params in grouped.values()]
        requests = []
        for statement, params in by_partition:
            for chunk in _chunks_of_bytes(params, BATCH_BYTES_LIMIT):
                if len(chunk) == 1:
                    requests.append((statement, chunk[0], None))
                    continue
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                batch.is_idempotent = True  # index entries are keyed by their content
                for values in chunk:
                    batch.add(statement, values)
                requests.append((batch, (), None))
        return requests

    def _remember_indexed(self, entries: list[tuple]) -> None:
        if len(self._indexed) > _INDEX_MEMORY_ENTRIES:
            self._indexed.clear()
        now = time.monotonic()
        for key in entries:
            self._indexed[key] = now

    def _params_by_partition(self, rows: list[LogRow], ids: list[int]) -> dict[tuple, list[tuple]]:
        """The INSERT's parameters, in its column order, grouped by partition (namespace, pod,
        container, bucket): columns 0-3 are the same for every row of a group."""
        # Absent optional fields are UNSET, not null: a null would write a tombstone per cell.
        bucket_seconds = self._settings.cassandra_bucket_seconds
        groups: dict[tuple, list[tuple]] = defaultdict(list)
        unset = UNSET_VALUE
        for row, line_id in zip(rows, ids):
            namespace, pod_name, container_name, ts_ns = row.namespace, row.pod_name, row.container_name, row.ts_ns
            bucket = bucket_of(ts_ns, bucket_seconds)
            stream, host, pod_id, docker_id, labels = row.stream, row.host, row.pod_id, row.docker_id, row.labels
            groups[(namespace, pod_name, container_name, bucket)].append((
                namespace, pod_name, container_name, bucket, ts_ns, line_id, row.log,
                unset if stream is None else stream, unset if host is None else host,
                unset if pod_id is None else pod_id, unset if docker_id is None else docker_id,
                unset if labels is None else labels,
            ))
        return groups

    def _batches(self, params: list[tuple]) -> Iterator[tuple[BatchStatement, list[tuple]]]:
        """One partition's rows as UNLOGGED batches of about BATCH_BYTES_LIMIT each (estimated
        from the text values' lengths: log, stream, metadata, labels and partition key), with the
        rows of each."""
        key_bytes = sum(len(value) for value in params[0][:3])
        start, size, last_meta, meta_bytes = 0, 0, None, 0
        for end, p in enumerate(params):
            if p[8:] != last_meta:
                last_meta = p[8:]
                meta_bytes = _text_bytes(p[8]) + _text_bytes(p[9]) + _text_bytes(p[10]) + _labels_bytes(p[11])
            row_bytes = _ROW_OVERHEAD_BYTES + key_bytes + len(p[6]) + _text_bytes(p[7]) + meta_bytes
            if end > start and size + row_bytes > BATCH_BYTES_LIMIT:
                yield self._batch(params[start:end]), params[start:end]
                start, size = end, 0
            size += row_bytes
        yield self._batch(params[start:]), params[start:]

    def _batch(self, params: list[tuple]) -> BatchStatement:
        """One UNLOGGED batch of one partition's rows.

        Binding a row through the driver (BatchStatement.add(prepared, params)) costs ~10 µs, most
        of it per column; it was the worker's largest cost. So only the batch's first row is bound
        by the driver (which also gives the batch its routing key); the others are added with the
        bytes the driver would bind, made by the same column types' serializers: the partition key
        once, the pod's metadata (host, pod_id, docker_id, labels) once per change, the stream once
        per value, ts_ns, line_id and log per row.
        """
        insert = self._statements["insert"]
        version = insert.protocol_version
        serialize = [column.type.serialize for column in insert.column_metadata]
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.is_idempotent = True  # its rows are keyed by content (row_keys): writing twice changes nothing
        batch.add(insert, params[0])
        # Pre-serialized values need protocol v4+ (UNSET) and no column encryption; else the driver binds.
        add_serialized = getattr(BatchStatement, "_add_statement_and_params", None)
        if (add_serialized is None or version < 4 or insert.column_encryption_policy is not None
                or len(serialize) != 12):
            for p in params[1:]:
                batch.add(insert, p)
            return batch
        first = params[0]
        key = [serialize[i](first[i], version) for i in range(4)]
        serialize_ts, serialize_line_id, serialize_log = serialize[4], serialize[5], serialize[6]
        streams: dict = {UNSET_VALUE: UNSET_VALUE}
        last_meta, meta = None, []
        query_id = insert.query_id
        for p in params[1:]:
            stream = streams.get(p[7])
            if stream is None:
                stream = streams[p[7]] = serialize[7](p[7], version)
            if p[8:] != last_meta:
                last_meta = p[8:]
                meta = [v if v is UNSET_VALUE else serialize[8 + i](v, version) for i, v in enumerate(last_meta)]
            add_serialized(batch, True, query_id, [
                *key, serialize_ts(p[4], version), serialize_line_id(p[5], version),
                serialize_log(p[6], version), stream, *meta,
            ])
        return batch

    # --- reads ---

    def read_range(
        self, partition: PartitionKey, low: Bound, high: Bound, *, direction: Direction, page_size: int,
        first_page_size: int | None = None,
    ) -> Iterator[LogLine]:
        """Start reading one partition's lines between two inclusive bounds (the first page, of
        first_page_size lines if given, is requested at once; iterate the result for the lines, in
        clustering or reverse order, the later pages page_size lines each).

        Both layouts are read, whatever CASSANDRA_LAYOUT says (it only chooses how lines are
        written): a keyspace that held rows, then blocks (or the reverse) reads as one, and a
        switch never hides a line from a process that has not restarted yet."""
        session = self.connect()
        statement = self._statements[direction].bind((*partition, *low, *high))
        rows = self._start(session, statement, first_page_size or page_size, page_size, _LINES_PROFILE)
        block_lines = self._read_blocks(session, partition, low, high, direction, page_size, first_page_size)
        return _merged_layouts(iter(rows), block_lines, direction)

    def _read_blocks(self, session: Session, partition: PartitionKey, low: Bound, high: Bound, direction: Direction,
                     page_size: int, first_page_size: int | None) -> Iterator[LogLine]:
        earliest_first = max(low[0] - blocks.BLOCK_SPAN_NS, schema.LINE_ID_MIN)
        statement = self._statements[("blocks", direction)].bind((*partition, earliest_first, high[0], low[0]))
        read = self._start(session, statement, _blocks_per_page(first_page_size or page_size),
                           _blocks_per_page(page_size), _READS_PROFILE)
        return blocks.merge_blocks(read, low, high, backward=direction.backward, pod_name=partition[1],
                                   container_name=partition[2])

    @staticmethod
    def _start(session: Session, statement, first_page_size: int, page_size: int, profile) -> "RangeRead":
        statement.fetch_size = first_page_size
        try:
            future = session.execute_async(statement, execution_profile=profile)
        except _DRIVER_ERRORS as error:
            raise StoreUnavailable(f"query failed: {_describe(error)}") from error
        return RangeRead(session, statement, future, page_size, profile)

    def containers_in_buckets(
        self, namespace: str, pod_name: str | None, buckets: Sequence[int],
    ) -> list[list[tuple[str, str]]]:
        """For each bucket, the (pod_name, container_name) pairs of the namespace (or of one pod)
        that have lines in it, sorted: read from the index the workers keep."""
        if pod_name is None:
            rows = self._read_all("streams", [(namespace, b) for b in buckets])
        else:
            rows = self._read_all("pod_streams", [(namespace, b, pod_name) for b in buckets])
        return [sorted(entries) for entries in rows]

    def namespaces_in_buckets(self, buckets: Sequence[int]) -> list[list[str]]:
        return [sorted(row[0] for row in rows) for rows in self._read_all("namespaces", [(b,) for b in buckets])]

    def series_in_buckets(self, buckets: Sequence[int]) -> list[list[SeriesEntry]]:
        """For each bucket, the label sets with lines in it (SeriesEntry), sorted by their key."""
        found = []
        for rows in self._read_all("series", [(b,) for b in buckets]):
            entries = [SeriesEntry(namespace, pod_name, container_name, stream or None, dict(labels or {}))
                       for namespace, pod_name, container_name, stream, labels in rows]
            found.append(sorted(entries, key=lambda entry: entry.key))
        return found

    def _read_all(self, statement: str, params: list[tuple]) -> list[list[tuple]]:
        """One prepared read per parameter tuple, all in flight at once; their rows, in order."""
        session = self.connect()
        try:
            futures = [session.execute_async(self._statements[statement], p, execution_profile=_READS_PROFILE)
                       for p in params]
            return [list(future.result()) for future in futures]
        except _DRIVER_ERRORS as error:
            raise StoreUnavailable(f"query failed: {_describe(error)}") from error


class RangeRead:
    """The lines of one started partition read, as LogLine tuples, fetched page by
    page as they are iterated; the next page is requested before the current one is handed out,
    so Cassandra reads it while the caller works through this one."""

    def __init__(self, session: Session, statement, future, page_size: int, profile: str):
        self._session = session
        self._statement = statement
        self._future = future
        self._page_size = page_size
        self._profile = profile

    def __iter__(self) -> Iterator[LogLine]:
        try:
            result = self._future.result()
            self._statement.fetch_size = self._page_size  # a page's size is per request
            while True:
                lines = result.current_rows
                following = (
                    self._session.execute_async(self._statement, paging_state=result.paging_state,
                                                execution_profile=self._profile)
                    if result.has_more_pages else None
                )
                yield from lines
                # The driver's future holding this page sits in a reference cycle, freed only by a
                # full collection: empty the page now so its lines go with their last reference.
                lines.clear()
                if following is None:
                    return
                result = following.result()
        except _DRIVER_ERRORS as error:
            raise StoreUnavailable(f"query failed: {_describe(error)}") from error


# Index reads, at the read consistency.
_READS_PROFILE = "reads"
# Range reads build LogLine tuples straight from the driver's rows (columns in LogLine's order).
_LINES_PROFILE = "lines"
# Blocks a read fetches per page: about a page's lines (a block of the bench holds ~250), 2 to 32.
_LINES_PER_BLOCK_PAGE = 256


def _blocks_per_page(lines: int) -> int:
    return min(max(lines // _LINES_PER_BLOCK_PAGE, 2), 32)


def _merged_layouts(rows: Iterator[LogLine], block_lines: Iterator[LogLine],
                    direction: Direction) -> Iterator[LogLine]:
    """One partition's lines from both layouts, each identity once. A partition mostly lives in
    one layout (both only in the bucket of a switch, or after a batch retried across one): when a
    layout has no line in range, the other's lines pass through unmerged."""
    first_row = next(rows, None)
    first_block_line = next(block_lines, None)
    if first_block_line is None:
        if first_row is not None:
            yield first_row
            yield from rows
        return
    if first_row is None:
        yield first_block_line
        yield from block_lines
        return
    last = None
    merged = heapq.merge(itertools.chain((first_row,), rows), itertools.chain((first_block_line,), block_lines),
                         key=_identity, reverse=direction.backward)
    for line in merged:
        identity = (line.ts_ns, line.line_id)
        if identity != last:
            last = identity
            yield line


def _identity(line: LogLine) -> tuple[int, int]:
    return line.ts_ns, line.line_id


def _line_factory(column_names: list[str], rows: list[tuple]) -> list[LogLine]:
    return list(map(_as_line, rows))


# tuple.__new__ straight from C: LogLine._make is a Python function, a call per row on the driver's thread.
_as_line = functools.partial(tuple.__new__, LogLine)


def _profile(settings: Settings, consistency: str, row_factory) -> ExecutionProfile:
    return ExecutionProfile(
        # Each request goes to a replica of its partition in the local data centre (no extra hop).
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)),
        consistency_level=ConsistencyLevel.name_to_value[consistency],
        request_timeout=settings.cassandra_timeout_seconds,
        row_factory=row_factory,
    )


def _prepare_idempotent(session: Session, cql: str) -> PreparedStatement:
    """Every prepared statement here is idempotent (INSERTs of content-keyed rows, SELECTs): marked
    so, the driver may retry one on another replica after a timeout or a node's loss."""
    statement = session.prepare(cql)
    statement.is_idempotent = True
    return statement


def _libev_if_available() -> dict:
    """The libev reactor (the fastest; the driver's wheels ship it), else the driver's default."""
    try:
        from cassandra.io.libevreactor import LibevConnection
    except ImportError:  # pragma: no cover
        return {}
    return {"connection_class": LibevConnection}


def _chunks_of_bytes(params: list[tuple], limit: int) -> Iterator[list[tuple]]:
    """Index entries' parameters in chunks of about `limit` bytes (their text and map values, plus
    a row's overhead each)."""
    chunk, size = [], 0
    for values in params:
        value_bytes = _ROW_OVERHEAD_BYTES + sum(len(v) if isinstance(v, str) else _labels_bytes(v) if isinstance(v, dict)
                                                else 8 for v in values)
        if chunk and size + value_bytes > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(values)
        size += value_bytes
    if chunk:
        yield chunk


def _text_bytes(value) -> int:
    return 0 if value is UNSET_VALUE else len(value)


def _labels_bytes(labels) -> int:
    if labels is UNSET_VALUE:
        return 0
    return 4 + sum(len(k) + len(v) + _LABEL_OVERHEAD_BYTES for k, v in labels.items())


def _never_writable(params: tuple, error: BaseException) -> str:
    namespace, pod_name, container_name, _, ts_ns = params[:5]
    return (
        f"the line of {namespace}/{pod_name}/{container_name} at ts_ns={ts_ns} ({len(params[6])} characters, "
        f"labels {_labels_bytes(params[11])} bytes) is too large for Cassandra even alone and can never be written as it is "
        f"({_describe(error)}); raise Cassandra's native_transport_max_message_size / max_mutation_size, "
        f"then requeue the failed batch"
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, NoHostAvailable):
        reasons = "; ".join(f"{host}: {reason}" for host, reason in error.errors.items())
        return f"no host available ({reasons or 'none reachable'})"
    return f"{type(error).__name__}: {error}"[:500]
