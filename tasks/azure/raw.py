"""ARM list pages read as plain JSON through an SDK client's own pipeline (token, CA bundle,
retries, pacing), for lists whose SDK models we do not need or that no installed SDK covers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from azure.core.rest import HttpRequest


def json_pages(send: Callable[[HttpRequest], Any], request: HttpRequest) -> Iterator[dict]:
    """Each page's body of an ARM list (``{"value": [...], "nextLink": ...}``), following
    ``nextLink``; ``send`` is the client's request sender. HTTP errors raise as the SDK's."""
    next_request: HttpRequest | None = request
    while next_request is not None:
        response = send(next_request)
        response.raise_for_status()
        body = response.json()
        yield body
        link = body.get("nextLink")
        next_request = HttpRequest("GET", link) if link else None
