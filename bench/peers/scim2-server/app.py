"""scim2-server peer for scimd's benchmark harness (see BENCHMARKS.md).

scim2-server's own `scim2-server` command serves its WSGI application from
Python's threaded wsgiref server; here its ASGI application runs under uvicorn
(uvloop, httptools), the faster way to serve it. scim2-server ships only a
synchronous in-memory storage, so a thin adapter exposes it to the ASGI
application: every call is in-process and quick, and the event loop is single
threaded, so calling it directly is safe. No authentication, as for the SCIMMY
peer.

    uvicorn --app-dir bench/peers/scim2-server app:app --port 8082
"""

from contextlib import asynccontextmanager
from typing import Any

from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import InMemoryStorage
from scim2_server.storage import AsyncScimStorage
from scim2_server.utils import load_default_provider


class AsyncInMemoryStorage(AsyncScimStorage):
    """scim2-server's InMemoryStorage behind the asynchronous storage interface."""

    supports_cursors = True

    def __init__(self) -> None:
        self.inner = InMemoryStorage()

    async def get(self, resource_type, resource_id, *, response_parameters=None):
        return self.inner.get(
            resource_type, resource_id, response_parameters=response_parameters
        )

    async def search(self, resource_types, search_request, *, position: Any = None):
        return self.inner.search(resource_types, search_request, position=position)

    async def create(self, resource_type, resource):
        return self.inner.create(resource_type, resource)

    async def update(self, resource_type, resource, *, expected_version=None):
        return self.inner.update(
            resource_type, resource, expected_version=expected_version
        )

    async def delete(self, resource_type, resource_id, *, expected_version=None):
        return self.inner.delete(
            resource_type, resource_id, expected_version=expected_version
        )

    def operation(self):
        @asynccontextmanager
        async def enclose():
            with self.inner.operation():
                yield

        return enclose()


app = ASGIApplication(AsyncInMemoryStorage(), load_default_provider())
