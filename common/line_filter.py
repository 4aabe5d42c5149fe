"""Server-side line filters for queries and tails: substring, regular expression, stream.

Regular expressions run on RE2 (google-re2): matching time is linear in the line's length, so
no pattern can make a query hang (Python's `re` backtracks exponentially on `(a+)+$`). Lines are
at most MAX_LINE_BYTES long and a query examines at most QUERY_MAX_SCAN_ROWS of them, which
bounds a filtered query's cost whatever the pattern.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import re2

from common.errors import ParameterError
from common.log_store import LogLine

STREAMS = ("stdout", "stderr")
MAX_PATTERN_CHARS = 256
# RE2's memory budget for one compiled pattern: a pattern needing more is refused, not run.
_MAX_PATTERN_MEMORY = 8 * 1024 * 1024


class FilterError(ParameterError):
    """A filter parameter that cannot be applied."""


@dataclasses.dataclass(frozen=True)
class LineFilter:
    contains: str | None = None
    regex: str | None = None
    stream: str | None = None

    def predicate(self) -> Callable[[LogLine], bool] | None:
        """A test for one line, or None when every line passes. Raises FilterError."""
        tests: list[Callable[[LogLine], bool]] = []
        if self.stream is not None:
            if self.stream not in STREAMS:
                raise FilterError("stream", f"must be one of {', '.join(STREAMS)}, got {self.stream!r}")
            stream = self.stream
            tests.append(lambda line: line.stream == stream)
        if self.contains is not None:
            if not self.contains:
                raise FilterError("contains", "must not be empty")
            needle = self.contains
            tests.append(lambda line: needle in line.log)
        if self.regex is not None:
            search = compile_pattern(self.regex).search
            tests.append(lambda line: search(line.log) is not None)
        if not tests:
            return None
        if len(tests) == 1:
            return tests[0]
        return lambda line: all(test(line) for test in tests)


def compile_pattern(pattern: str):
    if not pattern:
        raise FilterError("regex", "must not be empty")
    return compile_re2(pattern)


def compile_re2(pattern: str, *, param: str = "regex", anchored: bool = False):
    """`pattern` compiled on RE2 within this module's limits; `anchored` matches whole values only.

    Raises FilterError naming `param`. The empty pattern is allowed here (it matches everything).
    """
    if len(pattern) > MAX_PATTERN_CHARS:
        raise FilterError(param, f"longer than {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_PATTERN_MEMORY
    try:
        compiled = re2.compile(pattern, options)
        if anchored:
            # As Prometheus anchors label matchers: the whole value, `.` matching newlines too.
            # Compiled alone first, so that errors quote the client's pattern, not this wrapper.
            compiled = re2.compile(f"^(?s:{pattern})$", options)
        return compiled
    except re2.error as error:
        message = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) else str(error)
        raise FilterError(
            param, f"{message} (RE2 syntax: no backreferences or look-around)"
        ) from None
