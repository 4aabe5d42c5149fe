"""The compiled hot loops (common._native, built from native/ by `pip install`), when present.

Each is a fast path with a pure-Python reference beside it, which stays the rule: a JSON batch's
decode (common.records) and the line-id hashes (common.row_keys). Without the extension (a checkout
installed without Rust), those run in Python, slower and with the same results.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType

log = logging.getLogger(__name__)


@functools.cache
def native() -> ModuleType | None:
    try:
        from common import _native
    except ImportError as error:
        log.warning("event=native_extension_missing detail=%s fallback=python", error)
        return None
    return _native
