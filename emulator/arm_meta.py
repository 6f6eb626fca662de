"""ARM's own endpoints a client calls before any resource: cloud metadata, subscriptions, tenants.

Tools no one here wrote (the Azure CLI, azure-mgmt-resource's ``SubscriptionClient``) discover a
cloud and its subscriptions through these: ``az cloud register --endpoint-resource-manager``
reads ``/metadata/endpoints``, ``az login`` lists ``/subscriptions`` (and ``/tenants`` when no
tenant is named), and tenant-wide tools page ``/subscriptions`` to find their scope.
"""

from __future__ import annotations

from typing import Any

from .http import ArmError, Request, Response, Router, require_api_version
from .world import World, page_list

router = Router()

# Shape of a subscription's ``subscriptionPolicies``; values are those real listings show for an
# Enterprise Agreement subscription (Subscription.subscriptionPolicies in
# specification/resources/resource-manager/Microsoft.Resources/subscriptions/stable/2022-12-01/
# subscriptions.json: locationPlacementId, quotaId, spendingLimit On|Off|CurrentPeriodOff).
_POLICIES = {
    "locationPlacementId": "Public_2014-09-01",
    "quotaId": "EnterpriseAgreement_2014-09-01",
    "spendingLimit": "Off",
}


@router.route("GET", "/metadata/endpoints", "auth")
def cloud_metadata(world: World, req: Request) -> Response:
    """The cloud's endpoints, unauthenticated as in Azure (``az`` fetches it with a plain GET).

    Shape: api-version 2022-09-01 answers one object (2019-05-01 answered a list of clouds), read
    by azure-cli's ``_arm_to_cli_mapper`` (src/azure-cli-core/azure/cli/core/cloud.py: ``name``,
    ``authentication.loginEndpoint``, ``authentication.audiences[0]`` as both the token audience
    and ``management``, ``resourceManager``, ``suffixes.*``) and by hashicorp/go-azure-sdk's
    ``sdk/internal/metadata`` (Authentication{loginEndpoint, audiences, tenant,
    identityProvider}, DnsSuffixes). The emulator is the Entra authority (emulator/auth.py), so
    ``loginEndpoint`` and ``resourceManager`` are both its own URL; the audience is the URL too,
    with the trailing slash Azure's audiences carry (``https://management.core.windows.net/``).
    Services the emulator does not serve get reserved ``.invalid`` names (RFC 2606), never a real
    Azure host, so a stray call fails fast instead of reaching Azure.
    """
    base = world.base_url.rstrip("/")
    version = req.api_version or "2022-09-01"
    cloud: dict[str, Any] = {
        "name": "CcmigrateEmulator",
        "portal": base,
        "resourceManager": f"{base}/",
        "authentication": {
            "loginEndpoint": base,
            "audiences": [f"{base}/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "graph": "https://graph.emulator.invalid/",
        "graphAudience": "https://graph.emulator.invalid/",
        "microsoftGraphResourceId": "https://graph.emulator.invalid/",
        "media": "https://media.emulator.invalid",
        "batch": "https://batch.emulator.invalid/",
        "sqlManagement": "https://sql.emulator.invalid/",
        "activeDirectoryDataLake": "https://datalake.emulator.invalid/",
        "gallery": "https://gallery.emulator.invalid/",
        "vmImageAliasDoc": "https://aliases.emulator.invalid/aliases.json",
        "logAnalyticsResourceId": "https://loganalytics.emulator.invalid",
        "appInsightsResourceId": "https://appinsights.emulator.invalid",
        "appInsightsTelemetryChannelResourceId": "https://dc.appinsights.emulator.invalid/v2/track",
        "attestationResourceId": "https://attest.emulator.invalid",
        "synapseAnalyticsResourceId": "https://synapse.emulator.invalid",
        "ossrdbmsResourceId": "https://ossrdbms.emulator.invalid",
        "suffixes": {
            "acrLoginServer": "acr.emulator.invalid",
            "attestationEndpoint": "attest.emulator.invalid",
            "azureDataLakeAnalyticsCatalogAndJob": "adla.emulator.invalid",
            "azureDataLakeStoreFileSystem": "adls.emulator.invalid",
            "azureFrontDoorEndpointSuffix": "afd.emulator.invalid",
            "keyVaultDns": "vault.emulator.invalid",
            "mariadbServerEndpoint": "mariadb.emulator.invalid",
            "mhsmDns": "mhsm.emulator.invalid",
            "mysqlServerEndpoint": "mysql.emulator.invalid",
            "postgresqlServerEndpoint": "postgres.emulator.invalid",
            "sqlServerHostname": "sql.emulator.invalid",
            "storage": "storage.emulator.invalid",
            "storageSyncEndpointSuffix": "afs.emulator.invalid",
            "synapseAnalytics": "synapse.emulator.invalid",
        },
    }
    # Older api-versions (2019-05-01 and before) answer a list of every cloud the ARM knows.
    return Response(200, [cloud] if version < "2020" else cloud)


def _subscription(world: World, sub: dict) -> dict:
    """One ARM Subscription (subscriptions.json 2022-12-01, definition ``Subscription``)."""
    sid = sub["subscriptionId"]
    return {
        "id": f"/subscriptions/{sid}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sid,
        "tenantId": sub.get("tenantId", world.state.tenant_id),
        "displayName": sub.get("displayName", sid),
        "state": sub.get("state", "Enabled"),
        "subscriptionPolicies": dict(_POLICIES),
        **({"tags": sub["tags"]} if isinstance(sub.get("tags"), dict) else {}),
    }


@router.route("GET", "/subscriptions", "read")
def list_subscriptions(world: World, req: Request) -> Response:
    """Subscriptions_List: the subscriptions the caller can read, paged with ``nextLink``.

    Azure lists only subscriptions the principal has a role on, so a subscription in the
    ``forbidden_scopes`` fault is left out (unverified that Azure hides it rather than listing
    it: Subscriptions_List documents "all subscriptions for a tenant" the caller can access).
    """
    require_api_version(req)
    subs = [
        _subscription(world, s)
        for s in sorted(world.state.subscriptions.values(), key=lambda s: s["subscriptionId"])
        if not world.faults.forbidden(f"/subscriptions/{s['subscriptionId']}")
    ]
    return page_list(world, req, subs)


@router.route("GET", "/subscriptions/{sub}", "read")
def get_subscription(world: World, req: Request, sub: str) -> Response:
    """Subscriptions_Get; an unknown id is ARM's 404 ``SubscriptionNotFound``."""
    require_api_version(req)
    world.require_subscription(sub)
    return Response(200, _subscription(world, world.state.subscriptions[sub.lower()]))


@router.route("GET", "/tenants", "read")
def list_tenants(world: World, req: Request) -> Response:
    """Tenants_List: the caller's home tenant as a TenantIdDescription (GetTenants.json example,
    subscriptions/stable/2022-12-01/examples: id ``/tenants/{id}``, tenantId, tenantCategory,
    countryCode, displayName, domains, defaultDomain, tenantType)."""
    require_api_version(req)
    tenant = world.state.tenant_id or (world.issuer.tenant_id if world.issuer else "")
    if not tenant:
        raise ArmError(404, "TenantNotFound", "The emulator's fleet names no tenant.")
    domain = "emulator.onmicrosoft.invalid"
    return Response(
        200,
        {
            "value": [
                {
                    "id": f"/tenants/{tenant}",
                    "tenantId": tenant,
                    "tenantCategory": "Home",
                    "countryCode": "US",
                    "displayName": "ccmigrate emulator",
                    "domains": [domain],
                    "defaultDomain": domain,
                    "tenantType": "AAD",
                }
            ]
        },
    )
