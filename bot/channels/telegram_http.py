"""The Bot API's HTTP transport on aiohttp, the client the rest of the project already uses.

python-telegram-bot's default transport (httpx) spends more CPU per call than aiohttp, and
every update costs the assistant one or two calls (a button press is answerCallbackQuery plus
editMessageText): measured with bench/load_bench.py, the transport is most of a reply's CPU.
Timeouts keep python-telegram-bot's meaning and defaults; errors become its TimedOut and
NetworkError, so its retries and the channel's error handling see what they would see with httpx.
"""

from __future__ import annotations

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_TIMEOUT = 5.0  # seconds, as python-telegram-bot's HTTPXRequest: read, write, connect
DEFAULT_POOL_TIMEOUT = 1.0
MEDIA_WRITE_TIMEOUT = 20.0


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` over one aiohttp session with a bounded connection pool."""

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_TIMEOUT,
        pool_timeout: float | None = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | None = BaseRequest.DEFAULT_NONE,
        write_timeout: float | None = BaseRequest.DEFAULT_NONE,
        connect_timeout: float | None = BaseRequest.DEFAULT_NONE,
        pool_timeout: float | None = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized")
        files = bool(request_data and request_data.contains_files)
        pool, connect = _chosen(pool_timeout, self._pool_timeout), _chosen(connect_timeout, self._connect_timeout)
        timeout = aiohttp.ClientTimeout(
            total=None,
            # aiohttp's `connect` is waiting for a pooled connection *and* opening a new one (TCP, TLS), so it
            # gets both budgets; `sock_connect` alone bounds the opening, as httpx's connect timeout does.
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=_chosen(read_timeout, self._read_timeout)
            if not files
            else _chosen(write_timeout, MEDIA_WRITE_TIMEOUT),
        )
        try:
            async with self._session.request(method, url, timeout=timeout, **_body(request_data)) as response:
                return response.status, await response.read()
        except TimeoutError as error:
            if isinstance(error, aiohttp.ConnectionTimeoutError):
                reason = "no free pooled connection, or none could be opened; the request was not sent"
                raise TimedOut(f"Timed out connecting to the Bot API: {reason}") from error
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error


def _chosen(value: float | None, default: float | None) -> float | None:
    return default if value is BaseRequest.DEFAULT_NONE else value


def _body(request_data: RequestData | None) -> dict:
    """JSON for plain calls (the Bot API accepts it; one dumps instead of one per parameter),
    multipart form data when a file is uploaded."""
    if request_data is None:
        return {}
    if not request_data.contains_files:
        return {"data": request_data.json_payload, "headers": {"Content-Type": "application/json"}}
    form = aiohttp.FormData(request_data.json_parameters)
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return {"data": form}
