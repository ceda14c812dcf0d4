"""The one place that turns a URL or path into filesystems for fsspec, pyarrow and deltalake.

Every part of lakekit accepts the same ``storage_options`` (fsspec / deltalake conventions)
or an fsspec filesystem instance; :func:`resolve` turns either into a :class:`Location`.
Credentials live here only: they never appear in a repr, a log line or an error message.

Longer than 500 lines because the S3 option tables (which keys go to s3fs, which to
deltalake) and the classification of storage failures belong beside the resolver that
uses them: split, each half would need the other's private tables.
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
from lakekit.errors import AccessDeniedError, ConfigError, NotFoundError, StorageError

__all__ = [
    "Location",
    "default_workers",
    "is_transient",
    "missing_credentials_error",
    "redact",
    "resolve",
    "retry_call",
    "storage_error",
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


# s3fs.S3FileSystem's own options and fsspec's: they go to s3fs only. Anything else s3fs
# hands to aiobotocore's AioSession, which fails with a TypeError naming the key.
_S3FS_KEYS = frozenset({
    "anon", "endpoint_url", "key", "secret", "token", "use_ssl", "client_kwargs",
    "requester_pays", "default_block_size", "default_fill_cache", "default_cache_type",
    "version_aware", "config_kwargs", "s3_additional_kwargs", "session", "username",
    "password", "cache_regions", "asynchronous", "loop", "max_concurrency",
    "fixed_upload_size", "local_expiry_check", "use_listings_cache", "listings_expiry_time",
    "max_paths", "skip_instance_cache", "profile",
})
# deltalake's S3 options (object_store's AmazonS3ConfigKey and delta-rs's own), in lower
# case; deltalake matches them case-insensitively, so AWS_CONDITIONAL_PUT, aws_conditional_put
# and conditional_put are one key. They go to deltalake only.
_DELTA_S3_KEYS = frozenset({
    "aws_access_key_id", "access_key_id", "aws_secret_access_key", "secret_access_key",
    "aws_session_token", "aws_token", "session_token", "aws_default_region", "default_region",
    "aws_region", "region", "aws_bucket", "aws_bucket_name", "bucket_name", "bucket",
    "aws_endpoint_url", "aws_endpoint", "endpoint", "aws_endpoint_url_s3",
    "aws_virtual_hosted_style_request", "virtual_hosted_style_request", "aws_s3_express",
    "s3_express", "aws_imdsv1_fallback", "imdsv1_fallback", "aws_metadata_endpoint",
    "metadata_endpoint", "aws_unsigned_payload", "unsigned_payload", "aws_checksum_algorithm",
    "checksum_algorithm", "aws_container_credentials_relative_uri",
    "aws_container_credentials_full_uri", "aws_container_authorization_token_file",
    "aws_web_identity_token_file", "aws_role_arn", "aws_role_session_name",
    "aws_endpoint_url_sts", "aws_skip_signature", "skip_signature", "aws_copy_if_not_exists",
    "copy_if_not_exists", "aws_conditional_put", "conditional_put", "aws_disable_tagging",
    "disable_tagging", "aws_request_payer", "request_payer", "aws_server_side_encryption",
    "aws_sse_kms_key_id", "aws_sse_bucket_key_enabled", "aws_sse_customer_key_base64",
    # delta-rs
    "aws_s3_locking_provider", "aws_s3_allow_unsafe_rename", "aws_s3_assume_role_arn",
    "aws_s3_role_session_name", "aws_iam_role_arn", "aws_iam_role_session_name",
    "aws_profile", "aws_s3_pool_idle_timeout_seconds", "aws_sts_pool_idle_timeout_seconds",
    "aws_s3_get_internal_server_error_retries", "aws_ec2_metadata_disabled",
    "aws_ec2_metadata_timeout", "aws_force_credential_load", "aws_config_file",
    "aws_shared_credentials_file", "max_retries", "retry_timeout",
})
# object_store's HTTP client options, also accepted with an ``aws_`` prefix.
_DELTA_CLIENT_KEYS = frozenset({
    "allow_http", "allow_invalid_certificates", "connect_timeout", "timeout",
    "pool_idle_timeout", "pool_max_idle_per_host", "http2_keep_alive_interval",
    "http2_keep_alive_timeout", "http2_keep_alive_while_idle", "http1_only", "http2_only",
    "proxy_url", "proxy_ca_certificate", "proxy_excludes", "user_agent", "content_type",
    "default_content_type", "default_headers", "randomize_addresses",
})
_DELTA_PREFIXES = ("dynamo_", "delta_dynamo_", "backoff_config.")
_DELTA_ALIASES = {  # canonical (upper-case) names of the keys lakekit maps to s3fs
    "ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
    "SESSION_TOKEN": "AWS_SESSION_TOKEN", "AWS_TOKEN": "AWS_SESSION_TOKEN",
    "REGION": "AWS_REGION", "DEFAULT_REGION": "AWS_DEFAULT_REGION",
    "ENDPOINT": "AWS_ENDPOINT_URL", "AWS_ENDPOINT": "AWS_ENDPOINT_URL",
    "ALLOW_HTTP": "AWS_ALLOW_HTTP", "SKIP_SIGNATURE": "AWS_SKIP_SIGNATURE",
}


def _is_delta_key(key: str) -> bool:
    low = key.lower()
    return (low in _DELTA_S3_KEYS or low.removeprefix("aws_") in _DELTA_CLIENT_KEYS
            or low.startswith(_DELTA_PREFIXES))


def _canonical(key: str) -> str:
    up = key.upper()
    return _DELTA_ALIASES.get(up, up)


def _s3fs_to_delta(options: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in options.items():
        if _is_delta_key(str(k)) and isinstance(v, (str, int, float, bool)):
            out[k] = str(v).lower() if isinstance(v, bool) else str(v)
    given = {_canonical(k) for k in out}

    def default(key: str, value: str) -> None:
        if key not in given:
            out[key] = value
            given.add(key)

    inverse = {v: k for k, v in _DELTA_TO_S3FS.items()}
    for k, v in options.items():
        if k in inverse and v is not None:
            default(inverse[k], str(v))
    client_kwargs = options.get("client_kwargs") or {}
    endpoint = options.get("endpoint_url") or client_kwargs.get("endpoint_url")
    if endpoint:
        default("AWS_ENDPOINT_URL", str(endpoint))
        if str(endpoint).startswith("http://"):
            default("AWS_ALLOW_HTTP", "true")
    region = client_kwargs.get("region_name") or options.get("region_name")
    if region:
        default("AWS_REGION", str(region))
    if options.get("anon"):
        default("AWS_SKIP_SIGNATURE", "true")
    return out


def _delta_to_s3fs(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options s3fs takes: its own keys, plus deltalake-style credentials, endpoint and
    region (``AWS_ACCESS_KEY_ID``, ...) translated. deltalake-only keys (``conditional_put``,
    ``AWS_S3_ALLOW_UNSAFE_RENAME``, ...) are left out; an unknown key is a ConfigError."""
    out: dict[str, Any] = {}
    delta: dict[str, Any] = {}
    for k, v in options.items():
        if k in _S3FS_KEYS:
            out[k] = v
        elif k == "region_name":  # botocore's name; s3fs takes it in client_kwargs
            delta.setdefault("AWS_REGION", v)
        elif isinstance(k, str) and _is_delta_key(k):
            delta.setdefault(_canonical(k), v)
        else:
            raise ConfigError(  # the key only: its value may be a secret
                f"unknown S3 storage option {str(k)!r}: neither s3fs nor deltalake takes it; "
                "s3fs takes key, secret, token, anon, client_kwargs (endpoint_url, "
                "region_name), config_kwargs, ...; deltalake takes AWS_* keys such as "
                "AWS_ENDPOINT_URL or AWS_CONDITIONAL_PUT (see docs/storage.md)"
            )
    for dk, sk in _DELTA_TO_S3FS.items():
        if dk in delta:
            out.setdefault(sk, delta[dk])
    client_kwargs = dict(out.get("client_kwargs") or {})
    endpoint = delta.get("AWS_ENDPOINT_URL")
    if endpoint:
        client_kwargs.setdefault("endpoint_url", endpoint)
    region = delta.get("AWS_REGION") or delta.get("AWS_DEFAULT_REGION")
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
    fs_options = options
    if protocol in ("s3", "s3a"):
        fs_options = _delta_to_s3fs(options)
        # deltalake-only keys stay in the Location's options, for delta_storage_options()
        options = {**{k: v for k, v in options.items() if k not in fs_options}, **fs_options}
    require_protocol(protocol)
    try:
        fs, path = fsspec.core.url_to_fs(text, **fs_options)
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
    "error reading a body", "end of file before message length", "error sending request",
    # ... reqwest's, e.g. a LIST reply cut short: "Error getting list response body: HTTP
    # error: request or response body error", or "error decoding response body"
    "request or response body error", "error decoding response body",
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
        # an endpoint that refuses connections after the client's own connect retries
        # (botocore, s3fs, object_store) is a wrong endpoint far more often than a blip:
        # say so now, not after lakekit's attempts too
        retry=retry_if_exception(lambda e: is_transient(e) and not _unreachable(e)),
        reraise=True,
    )
    try:
        return retrying(fn)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise  # answers the caller asked for (an exclusive create that lost), not failures
    except Exception as exc:
        error = storage_error(exc, what, attempts=attempts)
        if error is not None:
            raise error from None
        raise


_UNREACHABLE_MARKERS = ("could not connect", "connection refused", "connect error")


def _unreachable(exc: BaseException) -> bool:
    """True for a refused connection anywhere in the chain of ``exc``: nothing listens at
    the endpoint. (botocore's ``EndpointConnectionError`` alone is not enough: it also
    wraps a connection reset mid-request, which is worth retrying.)"""
    seen: BaseException | None = exc
    for _ in range(10):  # bounded: chains are short, and may loop
        if seen is None:
            return False
        low = str(seen).lower()
        if isinstance(seen, ConnectionRefusedError) or "connection refused" in low \
                or "connect call failed" in low:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
_NOT_FOUND_MARKERS = ("nosuchkey", "404 not found", "not found (404)")
_NO_BUCKET_MARKERS = ("nosuchbucket", "bucket does not exist")
_DENIED_MARKERS = (
    "accessdenied", "access denied", "403 forbidden", "forbidden (403)", "invalidaccesskeyid",
    "signaturedoesnotmatch", "accountproblem", "allaccessdisabled",
)


def storage_error(
    exc: BaseException,
    what: str,
    *,
    attempts: int | None = None,
    scrub: Callable[[str], str] = redact,
) -> StorageError | None:
    """The :class:`StorageError` a user should see for a storage failure ``exc``, or ``None``
    when ``exc`` is not a storage failure (a bug, a bad argument, a lakekit error).

    ``what`` names the operation and its credential-free URL. A missing path or bucket is a
    :class:`NotFoundError`, a refusal (HTTP 403) an :class:`AccessDeniedError` (also a
    ``PermissionError``), missing credentials and unreachable storage say what to do, and
    any other ``OSError`` (s3fs's and deltalake's generic S3 errors) a :class:`StorageError`
    with its first line. ``scrub`` removes credentials from the text of ``exc``.

    Examples
    --------
    >>> storage_error(FileNotFoundError("gone"), "s3://b/x: reading")
    NotFoundError('s3://b/x: reading: not found')
    >>> storage_error(ValueError("bad"), "s3://b/x") is None
    True
    """
    if isinstance(exc, StorageError):
        return exc
    text = str(exc)
    low = text.lower()
    if any(m in low for m in _NO_BUCKET_MARKERS):
        bucket = re.search(r"<BucketName>([^<]+)</BucketName>", text)
        name = f" {bucket.group(1)!r}" if bucket else ""
        return NotFoundError(
            f"{what}: the bucket{name} does not exist; check the URL, or create the bucket"
        )
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"{what}: not found")
    if isinstance(exc, PermissionError) or (
        isinstance(exc, OSError) and any(m in low for m in _DENIED_MARKERS)
    ):
        return AccessDeniedError(
            f"{what}: access denied (403); check the credentials (key, secret, profile) "
            "and that they may read and write this bucket and path"
        )
    missing = missing_credentials_error(exc, what)
    if missing is not None:
        return missing
    if is_transient(exc):
        after = f" after {attempts} attempts" if attempts else ""
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        detail = f": {scrub(first[:200])}" if first else ""
        if any(m in low for m in _UNREACHABLE_MARKERS) or "EndpointConnection" in (
                type(exc).__name__):
            return StorageError(
                f"{what}: cannot reach the storage{after}: {type(exc).__name__}{detail}; "
                "check the endpoint URL and the network"
            )
        return StorageError(
            f"{what}: storage error{after}: {type(exc).__name__}{detail}; "
            "check that the storage (endpoint URL) is reachable"
        )
    if not isinstance(exc, OSError):
        return None
    if any(m in low for m in _NOT_FOUND_MARKERS):
        return NotFoundError(f"{what}: not found")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    first = scrub(first[:300])
    return StorageError(f"{what}: storage error: {first}")


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
