"""The one place that turns a URL or path into filesystems for fsspec, pyarrow and deltalake.

Every part of lakekit accepts the same ``storage_options`` (fsspec / deltalake conventions)
or an fsspec filesystem instance; :func:`resolve` turns either into a :class:`Location`.
Credentials live here only: they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fsspec
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem

from lakekit._deps import require_protocol
from lakekit.errors import ConfigError, NotFoundError, StorageError

__all__ = [
    "Location",
    "default_workers",
    "is_transient",
    "missing_credentials_error",
    "redact",
    "resolve",
    "retry_call",
]

T = TypeVar("T")

# deltalake (object_store) keys <-> s3fs keys.
_DELTA_TO_S3FS = {
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_SESSION_TOKEN": "token",
}
_SECRET_KEY_PATTERN = re.compile(r"(secret|token|password|key|credential|sas|signature)", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(text: str, secrets: Mapping[str, Any] | None = None) -> str:
    """Remove credentials from ``text``: URL user-info and the values of secret options.

    Examples
    --------
    >>> redact("s3://AKIA:hunter2@bucket/x")
    's3://***@bucket/x'
    """
    out = _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    for value in _secret_values(secrets or {}):
        out = out.replace(value, "***")
    return out


def _secret_values(options: Mapping[str, Any]) -> list[str]:
    values: list[str] = []
    for k, v in options.items():
        if isinstance(v, Mapping):
            values.extend(_secret_values(v))
        elif isinstance(v, str) and len(v) >= 4 and _SECRET_KEY_PATTERN.search(str(k)):
            values.append(v)
    return sorted(values, key=len, reverse=True)


@dataclass(frozen=True, repr=False, eq=False)
class Location:
    """A resolved storage location: a filesystem plus a path on it.

    Build one with :func:`resolve`. ``path`` is in the filesystem's own terms (no
    protocol for object stores, an absolute path for local disk).
    """

    fs: fsspec.AbstractFileSystem
    path: str
    protocol: str
    _options: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    @property
    def url(self) -> str:
        """The location as a URL, without credentials."""
        if self.is_local:
            return self.path
        return f"{self.protocol}://{self.path}"

    @property
    def is_local(self) -> bool:
        """True for the local filesystem, where reads are cheap and latency is negligible."""
        return isinstance(self.fs, LocalFileSystem)

    def child(self, path: str) -> Location:
        """The same filesystem at another path."""
        return Location(self.fs, path, self.protocol, self._options)

    def url_of(self, path: str) -> str:
        """A credential-free URL for ``path`` on this filesystem."""
        return path if self.is_local else f"{self.protocol}://{path}"

    def pyarrow_filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem for this location (native for local disk)."""
        if self.is_local:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def delta_uri(self) -> str:
        """The URI deltalake expects for this location."""
        if self.is_local:
            return os.path.abspath(self.path)
        if self.protocol in ("s3", "s3a"):
            return f"s3://{self.path}"
        if self.protocol in ("gs", "gcs"):
            return f"gs://{self.path}"
        if self.protocol in ("az", "abfs", "abfss"):
            return f"abfss://{self.path}"
        raise ConfigError(
            f"Delta tables are not supported on the {self.protocol!r} filesystem "
            "(use local disk, s3://, gs:// or abfss://)"
        )

    def delta_storage_options(self) -> dict[str, str]:
        """Storage options in deltalake / object_store terms (credentials included)."""
        if self.is_local:
            return {}
        if self.protocol in ("s3", "s3a"):
            return _s3fs_to_delta(self._options)
        return {str(k): str(v) for k, v in self._options.items() if not isinstance(v, Mapping)}

    def write_whole(self, path: str, body: bytes, *, exclusive: bool) -> None:
        """Write a small file so that readers see the old content or all of the new,
        never a part; with ``exclusive``, only if ``path`` does not exist
        (``FileExistsError`` otherwise), decided atomically even between racing writers.

        Object stores: one ``PUT``, conditional (``If-None-Match: *``) when exclusive.
        Local disk: a complete temporary file renamed or hard-linked into place, because
        fsspec's local ``mode="create"`` checks and then writes.
        """
        if self.is_local:
            _write_local(path, body, exclusive=exclusive)
        else:
            self.fs.pipe_file(path, body, mode="create" if exclusive else "overwrite")

    def secrets(self) -> Mapping[str, Any]:
        """The options, for :func:`redact` only."""
        return self._options

    def redact(self, text: str) -> str:
        """Remove this location's credentials from ``text``."""
        return redact(text, self._options)


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}


def _write_local(path: str, body: bytes, *, exclusive: bool) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{uuid.uuid4().hex}.tmp")
    # os.open, not mkstemp: the file gets the umask's mode (0644), not 0600, so that other
    # users of a shared location can read it
    with os.fdopen(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), "wb") as f:
        f.write(body)
    try:
        if not exclusive:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # fails with FileExistsError for all racers but one
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            _create_exclusive(path, body)  # a filesystem without hard links
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _create_exclusive(path: str, body: bytes) -> None:
    with open(path, "xb") as f:
        try:
            f.write(body)
        except BaseException:
            os.unlink(path)  # never leave a half-written file behind
            raise


def _s3fs_to_delta(options: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in options.items():
        if k.isupper() and isinstance(v, (str, int, float, bool)):
            out[k] = str(v).lower() if isinstance(v, bool) else str(v)
    inverse = {v: k for k, v in _DELTA_TO_S3FS.items()}
    for k, v in options.items():
        if k in inverse and v is not None:
            out.setdefault(inverse[k], str(v))
    client_kwargs = options.get("client_kwargs") or {}
    endpoint = options.get("endpoint_url") or client_kwargs.get("endpoint_url")
    if endpoint:
        out.setdefault("AWS_ENDPOINT_URL", str(endpoint))
        if str(endpoint).startswith("http://"):
            out.setdefault("AWS_ALLOW_HTTP", "true")
    region = client_kwargs.get("region_name") or options.get("region_name")
    if region:
        out.setdefault("AWS_REGION", str(region))
    if options.get("anon"):
        out.setdefault("AWS_SKIP_SIGNATURE", "true")
    return out


def _delta_to_s3fs(options: Mapping[str, Any]) -> dict[str, Any]:
    """Accept deltalake-style AWS_* keys for the fsspec side too."""
    out: dict[str, Any] = {k: v for k, v in options.items() if not k.isupper()}
    for dk, sk in _DELTA_TO_S3FS.items():
        if dk in options:
            out.setdefault(sk, options[dk])
    client_kwargs = dict(out.get("client_kwargs") or {})
    endpoint = options.get("AWS_ENDPOINT_URL") or options.get("AWS_ENDPOINT")
    if endpoint:
        client_kwargs.setdefault("endpoint_url", endpoint)
    region = options.get("AWS_REGION") or options.get("AWS_DEFAULT_REGION")
    if region:
        client_kwargs.setdefault("region_name", region)
    if "endpoint_url" in out:
        client_kwargs.setdefault("endpoint_url", out.pop("endpoint_url"))
    if client_kwargs:
        out["client_kwargs"] = client_kwargs
    return out


def resolve(
    source: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    filesystem: fsspec.AbstractFileSystem | None = None,
) -> Location:
    """Resolve a URL or local path into a :class:`Location`.

    Parameters
    ----------
    source
        A local path, a ``file://`` URL or any fsspec URL (``s3://bucket/key``,
        ``memory://x``, ...).
    storage_options
        Options for the filesystem, fsspec style (``key``, ``secret``,
        ``client_kwargs={"endpoint_url": ...}``) or deltalake style (``AWS_ACCESS_KEY_ID``,
        ``AWS_ENDPOINT_URL``, ...); both are understood for S3.
    filesystem
        An fsspec filesystem instance; wins over ``storage_options``. The path is then
        taken relative to it (a protocol prefix, if any, is stripped).

    Examples
    --------
    >>> loc = resolve("memory://bucket/data")
    >>> loc.protocol, loc.path
    ('memory', '/bucket/data')
    """
    text = os.fspath(source)
    options = dict(storage_options or {})
    if re.match(r"s3a?://[^/@\s]+@", text):
        # s3fs does not read credentials from a URL: it would take them for the bucket name
        # and echo them in its errors.
        raise ConfigError(
            f"{redact(text)}: credentials in an s3:// URL are not supported; "
            "pass them in storage_options"
        )
    if filesystem is not None:
        protocol = _protocol_of(filesystem)
        path = filesystem._strip_protocol(text)
        opts = dict(getattr(filesystem, "storage_options", {}) or {})
        if not isinstance(path, str):
            path = path[0]
        return Location(filesystem, path, protocol, opts)
    protocol, _ = fsspec.core.split_protocol(text)
    protocol = protocol or "file"
    if protocol in ("s3", "s3a"):
        options = _delta_to_s3fs(options)
    require_protocol(protocol)
    try:
        fs, path = fsspec.core.url_to_fs(text, **options)
    except ImportError as exc:  # fsspec knows the protocol, but no implementation is installed
        raise ConfigError(f"no filesystem is installed for {protocol}:// URLs: {exc}") from None
    except ValueError as exc:
        hint = ""
        if "Protocol not known" in str(exc):
            hint = ("; use a local path or an fsspec URL such as s3://, gs://, abfs://, "
                    "memory:// or file:// (see docs/storage.md)")
        raise ConfigError(redact(f"cannot resolve {text!r}: {exc}{hint}", options)) from None
    if protocol == "file":
        path = os.path.abspath(path)
    return Location(fs, path, _protocol_of(fs), options)


def _protocol_of(fs: fsspec.AbstractFileSystem) -> str:
    proto = fs.protocol
    if isinstance(proto, (tuple, list)):
        proto = proto[0]
    return "file" if proto in ("file", "local") else str(proto)


def default_workers(location: Location) -> int:
    """A default pool size: about the core count for local disk, many for remote stores."""
    cores = os.cpu_count() or 2
    if location.is_local:
        return max(1, min(cores, 16))
    return 32


_TRANSIENT_MARKERS = (
    "slowdown", "slow down", "throttl", "toomanyrequests", "too many requests",
    "serviceunavailable", "service unavailable", "internalerror", "internal error",
    "requesttimeout", "request timeout", "connection reset", "connection aborted",
    "connection refused", "broken pipe", "timed out", "temporarily unavailable",
    " 500", " 502", " 503", " 504",
    # a body cut short (aiohttp's ClientPayloadError, http.client's IncompleteRead)
    "payload is not completed", "not enough data to satisfy", "incompleteread",
    # ... and deltalake's (object_store / hyper)
    "error reading a body", "end of file before message length",
)
_PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError,
)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: connection resets, timeouts, 5xx and throttling.

    403 / 404 (``PermissionError`` / ``FileNotFoundError``) are never transient.
    """
    if isinstance(exc, _PERMANENT_TYPES):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and exc.errno in (
        errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE, errno.EAGAIN,
    ):
        return True
    name = type(exc).__name__.lower()
    if any(s in name for s in ("timeout", "connection", "throttl", "serverdisconnected",
                               "payload", "incompleteread", "responsestreaming")):
        return True
    message = str(exc).lower()
    return any(m in message for m in _TRANSIENT_MARKERS)


def retry_call(
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int = 5,
    base_delay: float = 0.1,
    max_delay: float = 5.0,
) -> T:
    """Call ``fn``, retrying transient storage errors with exponential backoff.

    Raises :class:`NotFoundError` for a missing path and :class:`StorageError` once the
    attempts are spent; both name ``what`` (a credential-free description).

    Examples
    --------
    >>> retry_call(lambda: 42, what="answer")
    42
    """
    from tenacity import (
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential,
        wait_random,
    )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        # base_delay * 2**n (at most max_delay) plus up to base_delay of jitter; tenacity's
        # wait_exponential_jitter adds up to a whole second of jitter whatever base_delay is.
        wait=wait_exponential(multiplier=base_delay, max=max_delay) + wait_random(0, base_delay),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    try:
        return retrying(fn)
    except FileNotFoundError as exc:
        if isinstance(exc, NotFoundError):
            raise
        raise NotFoundError(f"{what}: not found") from None
    except PermissionError:
        raise StorageError(f"{what}: access denied (check credentials and permissions)") from None
    except Exception as exc:
        if is_transient(exc):
            raise StorageError(
                f"{what}: storage error after {attempts} attempts: {type(exc).__name__}; "
                "check that the storage (endpoint URL) is reachable"
            ) from None
        missing = missing_credentials_error(exc, what)
        if missing is not None:
            raise missing from None
        raise


def missing_credentials_error(exc: BaseException, what: str) -> StorageError | None:
    """A one-line :class:`StorageError` saying what to do when ``exc`` is "no credentials".

    botocore's ``NoCredentialsError`` / ``PartialCredentialsError`` (found by name, so
    botocore is not imported here) and deltalake's credential-loading error; ``None`` for
    any other error.
    """
    named = type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError")
    if not named and "error occurred while loading credentials" not in str(exc):
        return None  # the second: deltalake (object_store) finding no credentials
    return StorageError(
        f"{what}: no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(or AWS_PROFILE), pass storage_options={'key': ..., 'secret': ...}, or "
        "{'anon': True} for a public bucket (see docs/storage.md)"
    )
