"""Azure clouds: ARM endpoint, Entra authority and token scope per cloud."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str
    arm: str
    authority: str
    scope: str


CLOUDS = {
    "public": Cloud("public", "https://management.azure.com", "https://login.microsoftonline.com",
                    "https://management.azure.com/.default"),
    "usgov": Cloud("usgov", "https://management.usgovcloudapi.net",
                   "https://login.microsoftonline.us",
                   "https://management.usgovcloudapi.net/.default"),
    "china": Cloud("china", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn",
                   "https://management.chinacloudapi.cn/.default"),
}


def resolve_cloud(setting: str) -> Cloud:
    """A named cloud, or a custom ARM endpoint (Azure Stack, private clouds) with public Entra.

    The ``--endpoint`` flag is separate: it changes where requests go, never which cloud the
    rules assume, so the emulator is still judged as the public cloud unless told otherwise.
    """
    if setting in CLOUDS:
        return CLOUDS[setting]
    public = CLOUDS["public"]
    return Cloud("custom", setting.rstrip("/"), public.authority, public.scope)
