"""Kafka -> Delta: :class:`KafkaDeltaSink` streams topics into a Delta table exactly once.

kafka-python (the ``kafka`` extra) is imported only when a sink runs.
"""

from lakekit.sink.kafka import KafkaDeltaSink
from lakekit.sink.stats import CommitSummary, SinkStats

__all__ = ["CommitSummary", "KafkaDeltaSink", "SinkStats"]
