"""Which Loki stream labels hold the names a row is stored under (settings LOKI_*_LABEL): one
mapping for the push decoder and the read side alike."""

from __future__ import annotations

import dataclasses

from common.settings import Settings


@dataclasses.dataclass(frozen=True)
class LokiLabelNames:
    namespace: str = "namespace"
    pod: str = "pod"
    container: str = "container"
    stream: str = "stream"

    @classmethod
    def of(cls, settings: Settings) -> LokiLabelNames:
        return cls(settings.loki_namespace_label, settings.loki_pod_label, settings.loki_container_label,
                   settings.loki_stream_label)
