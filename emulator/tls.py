"""TLS material for the emulator: a throwaway CA and a loopback server certificate (trustme).

Clients trust the CA through ``connection_verify=<ca.pem>``, exactly as they would a corporate CA.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class TlsMaterial:
    ca_bundle: Path
    context: ssl.SSLContext


def make_tls(directory: Path | None = None) -> TlsMaterial:
    """Create a CA and a server cert for 127.0.0.1/localhost; write the CA PEM to ``directory``."""
    folder = Path(directory or tempfile.mkdtemp(prefix="ccmigrate-emulator-"))
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="ccmigrate emulator CA")
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ca_path = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return TlsMaterial(ca_path, context)
