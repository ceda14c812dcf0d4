"""The sink's Kafka consumer: its settings, connecting, offsets for monitoring, signals.

Everything here talks to kafka-python or to the process, not to the table: the settings
the sink forces or defaults (offsets live in the table, so Kafka's auto-commit is off),
typed ``KEY=VALUE`` consumer options (the CLI's ``--consumer-option``), opening the
consumer with a clear error when no broker answers, seeking a partition to where the
table says it stands, committing offsets to Kafka for lag monitoring only, and the
SIGINT / SIGTERM handlers that ask a running sink to stop. kafka-python is imported
only when a consumer is opened or an option is typed.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from lakekit._deps import import_optional
from lakekit.errors import BrokerError, ConfigError
from lakekit.sink.codecs import guard_codecs
from lakekit.sink.fetch import install_bulk_records

__all__ = [
    "FORCED_CONSUMER_KEYS",
    "commit_offsets",
    "connect",
    "consumer_config",
    "consumer_options",
    "install_signal_handlers",
    "restore_signal_handlers",
    "seek",
]

log = logging.getLogger("lakekit.sink")

FORCED_CONSUMER_KEYS = ("bootstrap_servers", "group_id", "enable_auto_commit")
"""Consumer settings the sink sets itself; ``consumer_config`` may not set them."""


def consumer_config(extra: Mapping[str, Any] | None, *, bootstrap_servers: str | Any,
                    group_id: str, max_batch_bytes: int) -> dict[str, Any]:
    """The ``KafkaConsumer`` settings of a sink: ``extra`` plus its defaults and forced keys.

    Examples
    --------
    >>> config = consumer_config({"session_timeout_ms": 6000},
    ...                          bootstrap_servers="127.0.0.1:9092", group_id="g",
    ...                          max_batch_bytes=64 << 20)
    >>> config["auto_offset_reset"], config["heartbeat_interval_ms"], config["enable_auto_commit"]
    ('earliest', 1500, False)
    """
    config = dict(extra or {})
    for key in FORCED_CONSUMER_KEYS:
        if key in config:
            raise ConfigError(
                f"consumer_config may not set {key!r}: the sink sets it "
                "(offsets are committed in the Delta table, not by auto-commit)"
            )
    reset = config.setdefault("auto_offset_reset", "earliest")
    if reset not in ("earliest", "latest"):
        raise ConfigError(f"auto_offset_reset must be 'earliest' or 'latest', got {reset!r}")
    config.setdefault("max_poll_records", 5000)
    if "session_timeout_ms" in config:
        config.setdefault("heartbeat_interval_ms",
                          max(100, int(config["session_timeout_ms"]) // 4))
    # one fetch is part of the memory bound: a 64 MiB batch gets 4 MiB fetches
    config.setdefault("fetch_max_bytes",
                      max(1 << 20, min(4 << 20, max_batch_bytes // 16)))
    config.update(bootstrap_servers=bootstrap_servers, group_id=group_id,
                  enable_auto_commit=False)
    return config


def consumer_options(pairs: Iterable[tuple[str, str]], *,
                     flag: str = "--consumer-option") -> dict[str, Any]:
    """``(KEY, VALUE)`` text pairs as kafka-python settings, each typed like its default.

    ``flag`` names the option in error messages, which never echo a value (it may be a
    secret).

    Examples
    --------
    >>> consumer_options([("session-timeout-ms", "6000"), ("check_crcs", "no")])
    {'session_timeout_ms': 6000, 'check_crcs': False}
    """
    pairs = list(pairs)
    if not pairs:
        return {}
    import_optional("kafka", purpose="the Kafka sink")
    from kafka import KafkaConsumer

    defaults = KafkaConsumer.DEFAULT_CONFIG
    out: dict[str, Any] = {}
    for key, text in pairs:
        key = key.strip().replace("-", "_")
        if key not in defaults:
            raise ConfigError(f"{flag}: {key!r} is not a kafka-python consumer "
                              "setting (see kafka.KafkaConsumer's documentation)")
        default = defaults[key]
        value: Any = text
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("true", "1", "yes")
            elif isinstance(default, int) or key.endswith(("_ms", "_bytes")):
                value = int(text)
            elif isinstance(default, float):
                value = float(text)
        except ValueError:
            kind = "true or false" if isinstance(default, bool) else "a number"
            raise ConfigError(f"{flag} {key} expects {kind}") from None
        out[key] = value
    return out


def connect(config: dict[str, Any]) -> Any:
    """Open a ``KafkaConsumer`` with ``config`` (from :func:`consumer_config`), bulk
    record parsing and the codec guard (:mod:`lakekit.sink.codecs`) installed.

    Raises
    ------
    ConfigError
        kafka-python rejected a setting.
    BrokerError
        No broker answered at ``config["bootstrap_servers"]``.
    """
    import_optional("kafka", purpose="the Kafka sink")
    from kafka import KafkaConsumer
    from kafka.errors import KafkaConfigurationError, KafkaError

    try:
        # kafka-python retries the bootstrap with backoff for bootstrap_timeout_ms
        consumer = KafkaConsumer(**config)
    except KafkaConfigurationError as exc:
        raise ConfigError(f"invalid consumer_config: {exc}") from None
    except KafkaError as exc:
        raise BrokerError(
            f"no Kafka broker answered at {config['bootstrap_servers']}: {exc}; check "
            "bootstrap_servers and that the cluster is up"
        ) from None
    install_bulk_records(consumer, config)
    guard_codecs(consumer)  # a missing codec library: which, where, what to install
    return consumer


def seek(consumer: Any, kafka_tp: Any, version: int | None, *, auto_offset_reset: str) -> None:
    """Seek ``kafka_tp`` to the offset after ``version`` (the table's last offset of it);
    without one, to the end or the beginning as ``auto_offset_reset`` says."""
    if version is not None:
        consumer.seek(kafka_tp, version + 1)
    elif auto_offset_reset == "latest":
        consumer.seek_to_end(kafka_tp)
    else:
        consumer.seek_to_beginning(kafka_tp)


def commit_offsets(consumer: Any, last: Mapping[Any, int], *, sync: bool) -> None:
    """Commit the offsets after ``last`` (kafka-python ``TopicPartition`` -> last offset
    written to the table) to Kafka, for lag monitoring only: a failure is logged."""
    if not last:
        return
    from kafka.structs import OffsetAndMetadata

    offsets = {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()}
    try:
        if sync:
            consumer.commit(offsets)
        else:
            consumer.commit_async(offsets, callback=_log_commit_failure)
    except Exception as exc:  # monitoring only: the table holds the real offsets
        log.debug("committing offsets to Kafka failed (monitoring only): %s", exc)


def _log_commit_failure(offsets: Any, response: Any) -> None:
    if isinstance(response, BaseException):
        log.debug("committing offsets to Kafka failed (monitoring only): %s", response)


def install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    """Make SIGINT and SIGTERM set ``stop`` (a second one raises ``KeyboardInterrupt``:
    stop now, without flushing); returns the old handlers. Only in the main thread:
    elsewhere nothing is installed and ``{}`` is returned."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second signal: stop now, without flushing
        log.info("received %s: flushing, committing and stopping",
                 signal.Signals(signum).name)
        stop.set()

    old: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handle)
    return old


def restore_signal_handlers(old: Mapping[int, Any]) -> None:
    """Put back the handlers :func:`install_signal_handlers` returned."""
    for sig, handler in old.items():
        signal.signal(sig, handler)
