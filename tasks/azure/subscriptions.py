"""ARM's subscription list (``GET /subscriptions``), for scopes Resource Graph cuts short.

A tenant-scope Resource Graph query covers only the first 10,000 subscriptions (MD
``governance/resource-graph/concepts/guidance-for-throttled-requests.md``) and a management-group
scope the first 5,000 (MD ``concepts/query-language.md``, "Query scope"), signalled by
``x-ms-tenant-subscription-limit-hit: true``. ARM's Subscriptions_List has no such cap
(``specification/resources/resource-manager/Microsoft.Resources/subscriptions/stable/2022-12-01/
subscriptions.json``: paged with ``nextLink``), so the full list comes from there.
"""

from __future__ import annotations

from typing import Any

from azure.core.rest import HttpRequest

from .errors import azure_call
from .raw import json_pages

API_VERSION = "2022-12-01"


def list_subscriptions(client) -> list[dict[str, Any]]:
    """Every subscription the credential can read, as ``{subscriptionId, name, state}``.

    ``client`` is any ARM management client of ours (its pipeline carries the credential, the
    CA bundle, retries and pacing); the request goes through its ``_send_request``.
    """
    out: list[dict[str, Any]] = []
    request = HttpRequest("GET", f"/subscriptions?api-version={API_VERSION}")
    with azure_call("listing the subscriptions through ARM"):
        for body in json_pages(client._send_request, request):
            for sub in body.get("value") or []:
                out.append({"subscriptionId": sub["subscriptionId"],
                            "name": sub.get("displayName") or sub["subscriptionId"],
                            "state": sub.get("state") or ""})
    return out
