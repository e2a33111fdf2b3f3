"""sandcron guest SDK for Python: write a sandcron job as one function.

    from sandcron import Context, Input, WitWorld, job, kv, log  # noqa: F401

    @job
    def run(ctx: Context, input: Input) -> dict:
        args = input.json() or {}
        log.info(f"run {ctx.run_id} of {ctx.job_name}")
        return {"hello": args.get("name", "world")}

`WitWorld` is the component's export: componentize-py looks for it in the
module it builds (`app`), so that module imports it from here.

`run` gets the job's input as an `Input` (bytes, with `.json()` and `.text()`)
and returns the run's output: bytes, a str, None (no output) or anything
`json.dumps` takes (written as JSON). Raising fails the run with kind
plugin_error: a `PluginError("why")` with exactly that message, any other
exception with the last line of its traceback (`ValueError: why`), the whole
traceback going to the run's log.

Built with componentize-py 0.25 (`sandcron build`); the `wit_world` bindings
it imports are generated at build time from `wit/`.
"""

import json as _json
import traceback as _traceback
from typing import Any, Callable, List, Optional, Tuple, Union

import wit_world as _wit_world  # type: ignore[import-not-found]
from componentize_py_types import Err as _Err  # type: ignore[import-not-found]
from wit_world.imports import http as _http  # type: ignore[import-not-found]
from wit_world.imports import kv as _kv  # type: ignore[import-not-found]
from wit_world.imports import log as _log  # type: ignore[import-not-found]
from wit_world.imports import secrets as _secrets  # type: ignore[import-not-found]

__all__ = [
    "Context",
    "HostError",
    "Input",
    "PluginError",
    "Response",
    "WitWorld",
    "http",
    "job",
    "kv",
    "log",
    "secrets",
]

#: What a body or a stored value may be given as: bytes as they are, a str
#: as UTF-8.
Data = Union[bytes, bytearray, memoryview, str]


class PluginError(Exception):
    """Fails the run (kind plugin_error) with exactly this message."""


class HostError(PluginError):
    """The daemon refused or failed a call (kv over quota, a host the job
    may not reach, a timeout...): the message says why."""


class Context:
    """What the daemon tells a run about itself."""

    __slots__ = ("tenant", "job_id", "job_name", "run_id", "attempt", "trigger", "scheduled_at_ms")

    def __init__(self, ctx: Any) -> None:
        #: The tenant that owns the job.
        self.tenant: str = ctx.tenant
        #: The job's id.
        self.job_id: str = ctx.job_id
        #: The job's name.
        self.job_name: str = ctx.job_name
        #: This run's id.
        self.run_id: str = ctx.run_id
        #: 1 for the first attempt, 2 for the first retry, ...
        self.attempt: int = ctx.attempt
        #: What started the run: "schedule", "manual", "retry" or "dependency".
        self.trigger: str = ctx.trigger.name.lower()
        #: When the run was due, milliseconds since the Unix epoch (UTC).
        self.scheduled_at_ms: int = ctx.scheduled_at

    def __repr__(self) -> str:
        return f"Context(job_name={self.job_name!r}, run_id={self.run_id!r}, attempt={self.attempt})"


class Input(bytes):
    """The job's input: its JSON as UTF-8 bytes (empty when the job has none)."""

    def text(self) -> str:
        """The input as text."""
        return self.decode("utf-8", "replace")

    def json(self) -> Any:
        """The input parsed as JSON; None when there is none."""
        if not self.strip():
            return None
        try:
            return _json.loads(self)
        except ValueError as error:
            raise PluginError(f"the input is not JSON: {error}") from None


_handler: Optional[Callable[[Context, Input], Any]] = None


def job(handler: Callable[[Context, Input], Any]) -> Callable[[Context, Input], Any]:
    """Makes `handler(ctx, input)` the job's run function (a decorator)."""
    global _handler
    _handler = handler
    return handler


def _to_bytes(value: Any) -> bytes:
    """A run's output or a request body as bytes: JSON unless bytes or str."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return _json.dumps(value).encode("utf-8")


def _data(value: Data) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


class WitWorld(_wit_world.WitWorld):  # type: ignore[misc]
    """The component's `run` export."""

    def run(self, ctx: Any, input: bytes) -> bytes:
        if _handler is None:
            raise _Err("no function was registered with @sandcron.job")
        try:
            return _to_bytes(_handler(Context(ctx), Input(input)))
        except _Err:
            raise  # a host error the job let through: its text is the message
        except PluginError as error:
            raise _Err(str(error)) from None
        except BaseException as error:
            # Anything else escaping would trap the instance (kind trap, the
            # message lost); fail the run with the traceback's last line
            # instead and keep the whole traceback in the run's log.
            _log.log(_log.Level.ERROR, _traceback.format_exc().rstrip())
            summary = _traceback.format_exception_only(type(error), error)[-1].strip()
            raise _Err(summary or type(error).__name__) from None


class log:
    """Lines in the run's log (`print` goes there too)."""

    @staticmethod
    def trace(message: str) -> None:
        _log.log(_log.Level.TRACE, str(message))

    @staticmethod
    def debug(message: str) -> None:
        _log.log(_log.Level.DEBUG, str(message))

    @staticmethod
    def info(message: str) -> None:
        _log.log(_log.Level.INFO, str(message))

    @staticmethod
    def warn(message: str) -> None:
        _log.log(_log.Level.WARN, str(message))

    @staticmethod
    def error(message: str) -> None:
        _log.log(_log.Level.ERROR, str(message))


class kv:
    """Durable key-value state private to the job (keys up to 1 KiB, values
    up to 1 MiB)."""

    @staticmethod
    def get(key: str) -> Optional[bytes]:
        """The value under `key`, or None."""
        value = _kv.get(key)
        return None if value is None else bytes(value)

    @staticmethod
    def get_text(key: str) -> Optional[str]:
        """The value under `key` as text, or None."""
        value = _kv.get(key)
        return None if value is None else bytes(value).decode("utf-8", "replace")

    @staticmethod
    def get_json(key: str) -> Any:
        """The value under `key` parsed as JSON, or None."""
        value = _kv.get(key)
        return None if value is None else _json.loads(bytes(value))

    @staticmethod
    def set(key: str, value: Data) -> None:
        """Stores `value` (bytes, or a str as UTF-8) under `key`."""
        try:
            _kv.set(key, _data(value))
        except _Err as error:
            raise HostError(str(error.value)) from None

    @staticmethod
    def set_json(key: str, value: Any) -> None:
        """Stores `value` as JSON under `key`."""
        kv.set(key, _json.dumps(value))

    @staticmethod
    def delete(key: str) -> None:
        """Removes `key`."""
        try:
            _kv.delete(key)
        except _Err as error:
            raise HostError(str(error.value)) from None

    @staticmethod
    def keys(prefix: str = "") -> List[str]:
        """The keys that start with `prefix`, in order."""
        return list(_kv.keys(prefix))


class Response:
    """An HTTP response."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """The first header called `name` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response(status={self.status}, {len(self.body)} bytes)"


class http:
    """Outbound HTTP to the hosts in the job's http_allow."""

    @staticmethod
    def fetch(
        method: str,
        url: str,
        headers: Optional[List[Tuple[str, str]]] = None,
        body: Any = None,
        timeout_ms: Optional[int] = None,
    ) -> Response:
        """Sends a request; raises HostError when the daemon refuses or the
        request fails (the message says why). A body that is not bytes or
        str is sent as JSON."""
        request = _http.Request(method, url, list(headers or []), _to_bytes(body), timeout_ms)
        try:
            response = _http.fetch(request)
        except _Err as error:
            raise HostError(str(error.value)) from None
        return Response(response.status, list(response.headers), bytes(response.body))

    @staticmethod
    def get(url: str, headers: Optional[List[Tuple[str, str]]] = None, timeout_ms: Optional[int] = None) -> Response:
        """A GET of `url`."""
        return http.fetch("GET", url, headers, None, timeout_ms)

    @staticmethod
    def post(
        url: str,
        body: Any,
        headers: Optional[List[Tuple[str, str]]] = None,
        timeout_ms: Optional[int] = None,
    ) -> Response:
        """A POST of `body` (sent as JSON, with its content type, unless it
        is bytes or str)."""
        headers = list(headers or [])
        if not isinstance(body, (bytes, bytearray, memoryview, str)) and not any(
            key.lower() == "content-type" for key, _ in headers
        ):
            headers.append(("content-type", "application/json"))
        return http.fetch("POST", url, headers, body, timeout_ms)


class secrets:
    """Secrets of the tenant that the job was granted by name."""

    @staticmethod
    def get(name: str) -> Optional[str]:
        """The secret's value, or None when it does not exist or the job was
        not granted it. Values are masked as [secret:NAME] in the run's log
        and output."""
        return _secrets.get(name)
