"""Errors shared by the layers."""

from __future__ import annotations


class ParameterError(ValueError):
    """A request parameter the client must fix: which one, and what to send instead."""

    def __init__(self, param: str, detail: str):
        super().__init__(f"{param}: {detail}")
        self.param = param
        self.detail = detail
