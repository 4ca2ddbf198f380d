"""The in-process mock: botocore requests answered by the same pipeline, without a socket.

    import boto3
    from opscm.mock import mock_opsworkscm

    with mock_opsworkscm() as mock:            # also @mock_opsworkscm, @mock_opsworkscm(ca_key_bits=...)
        client = boto3.client("opsworkscm", region_name="us-east-1")
        ...

or, for one client or session only, ``OpsWorksCMMock().attach(client)``. Only the event
``before-send.opsworkscm`` is hooked (see ``mock_routing``): other services are never touched.
Signatures are not checked: any credentials act as one account.
"""

from __future__ import annotations

import inspect
import io
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse

from .app.composition import Application, Settings
from .context_decorating import decorate
from .domain.regions import OPSWORKS_CM_REGIONS
from .mock_routing import EVENT, activate, claim, deactivate, events_of, innermost
from .protocol.json11 import HttpRequest
from .service import schedule
from .service.ports import Clock
from .store.database import shared_memory_url


class _RawResponse(io.BytesIO):
    """What botocore's AWSResponse reads a body from."""

    def stream(self, **_kwargs):
        yield self.getvalue()


# What the pipeline reads of a request when signatures are not checked (the mock's): botocore's
# header mapping is slow to walk whole, and these are all the mock needs.
_PIPELINE_HEADERS = ("x-amz-target", "content-type", "authorization")


def _pipeline_headers(headers) -> dict[str, str]:
    picked = {}
    for name in _PIPELINE_HEADERS:
        value = headers.get(name)  # botocore's headers are case-insensitive
        if value is not None:
            picked[name] = value.decode() if isinstance(value, bytes) else value
    return picked


class OpsWorksCMMock:
    def __init__(
        self,
        *,
        account_id: str = "123456789012",
        ca_key_bits: int = 2048,
        server_limit: int = 10,
        run_jobs: bool = True,
        data_dir: Path | None = None,
        clock: Clock | None = None,
        regions: Sequence[str] = OPSWORKS_CM_REGIONS,
    ):
        # A data_dir given by the caller is kept (to reopen it, as after a restart), its database
        # in a file. Else the database is in memory, shared by the job threads' connections (a
        # commit there costs half of one appended to a file's WAL), and the rest in a temporary dir.
        self._own_data_dir = data_dir is None
        self._data_dir = Path(tempfile.mkdtemp(prefix="opscm-mock-")) if data_dir is None else Path(data_dir)
        settings = Settings(
            data_dir=self._data_dir,
            database_url=shared_memory_url(self._data_dir.name) if self._own_data_dir else None,
            verify_signatures=False,
            mock_account_id=account_id,
            # As the server: a client scoped to another region is refused; unsigned requests get the first.
            regions=tuple(regions),
            mock_region=regions[0],
            ca_key_bits=ca_key_bits,
            server_limit=server_limit,
            endpoint_host="opscm.local",
            # No surprise backups or maintenance in a test suite: call mock.tick() to run the scheduler.
            schedule_interval=0,
            retention_interval=0,
            durable=False,
            public_url="http://opscm.local",
        )
        self.app = Application(settings, clock)
        if run_jobs:
            self.app.start()
        self._attached: list = []
        self._closed = False

    def attach(self, client_or_session) -> None:
        """Answer this boto3/botocore client's or session's opsworkscm requests in-process.

        A session's hook reaches the clients it creates afterwards. An attached mock answers before
        an active ``mock_opsworkscm``.
        """
        events = events_of(client_or_session)
        events.register_first(EVENT, self._answer)
        self._attached.append(events)

    def _answer(self, request, **_kwargs) -> AWSResponse | None:
        # Closed: a client made from an attached session still has this hook; it no longer answers.
        if self._closed or not claim(request):
            return None
        return self.respond(request)

    def respond(self, request) -> AWSResponse:
        """Answer one botocore request (an AWSPreparedRequest) through the pipeline."""
        url = urlsplit(request.url)
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode("utf-8")
        http_request = HttpRequest(
            method=request.method,
            path=url.path or "/",
            query=url.query,
            headers=_pipeline_headers(request.headers),
            body=body,
        )
        response = self.app.pipeline.handle(http_request)
        return AWSResponse(request.url, response.status, dict(response.headers), _RawResponse(response.body))

    def wait_for_jobs(self, timeout: float = 60.0) -> None:
        """Return once background jobs are done (a created server is HEALTHY, a deleted one gone)."""
        deadline = time.monotonic() + timeout
        while self.app.jobs.run_pending() or self.app.jobs.unfinished():
            if time.monotonic() > deadline:
                raise TimeoutError("opscm jobs still running")
            time.sleep(0.02)

    def tick(self) -> int:
        """Run the scheduler once now (automated backups, maintenance due at the clock's time)."""
        return schedule.tick(self.app.deps)

    def close(self) -> None:
        self._closed = True
        for events in self._attached:
            events.unregister(EVENT, self._answer)
        self.app.close()
        if self._own_data_dir:
            shutil.rmtree(self._data_dir, ignore_errors=True)

    def __enter__(self) -> OpsWorksCMMock:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MockScope:
    """A context manager (a fresh, active OpsWorksCMMock each time it is entered) and a decorator."""

    def __init__(self, **options):
        inspect.signature(OpsWorksCMMock).bind(**options)  # a misspelt option fails where it is written
        self._options = options
        self._entered: list[OpsWorksCMMock] = []

    def __enter__(self) -> OpsWorksCMMock:
        mock = OpsWorksCMMock(**self._options)
        activate(mock)
        self._entered.append(mock)
        return mock

    def __exit__(self, *exc) -> None:
        mock = self._entered.pop()
        try:
            deactivate(mock)
        finally:
            mock.close()

    def __call__(self, target):
        # Each run of the target in a scope of its own, so concurrent or recursive runs do not share one.
        return decorate(target, lambda: MockScope(**self._options))


def mock_opsworkscm(target=None, /, **options):
    """Answer every opsworkscm client created inside in-process, as moto's ``mock_aws`` does.

    ``with mock_opsworkscm(**options) as mock``, ``@mock_opsworkscm`` or
    ``@mock_opsworkscm(**options)`` on a function, a coroutine function or a class (each ``test*``
    method; for a ``unittest.TestCase``, setUp, the test and tearDown share one mock). The options
    are those of ``OpsWorksCMMock``. Clients and sessions made inside are answered by the innermost
    active mock; ones made before are not (attach them). Other services are untouched.
    """
    scope = MockScope(**options)
    return scope if target is None else scope(target)


def active_mock() -> OpsWorksCMMock:
    """The innermost active ``mock_opsworkscm``'s mock (to wait for its jobs in a decorated test)."""
    mock = innermost()
    if mock is None:
        raise RuntimeError("no mock_opsworkscm is active")
    return mock
