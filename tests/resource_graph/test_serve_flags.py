"""`ccmigrate emulator serve` takes the Resource Graph flags a user would try, and refuses a
churn rate that is not a share with exit code 2 and the flag named."""

from __future__ import annotations

import json
import signal
import subprocess

from tests.cli.helpers import ccmigrate_argv, no_traceback, run_cli


def test_serve_refuses_a_churn_rate_that_is_not_a_share():
    proc = run_cli("emulator", "serve", "--demo", "20", "--arg-churn", "1.5")
    assert proc.returncode == 2 and no_traceback(proc)
    assert "--arg-churn" in proc.stderr + proc.stdout


def test_serve_with_churn_and_a_tenant_cap_answers_with_the_limit_header():
    import requests

    proc = subprocess.Popen([*ccmigrate_argv(), "emulator", "serve", "--demo", "200", "--port",
                             "0", "--arg-churn", "0.01", "--arg-tenant-subscription-limit", "1"],
                            stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        token = requests.post(
            f"{info['endpoint']}/{info['tenant_id']}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": info["client_id"],
                  "client_secret": info["client_secret"],
                  "scope": "https://management.azure.com/.default"},
            verify=info["ca_bundle"], timeout=30).json()["access_token"]
        resp = requests.post(
            f"{info['endpoint']}/providers/Microsoft.ResourceGraph/resources"
            "?api-version=2022-10-01", json={"query": "ResourceContainers | project id"},
            headers={"Authorization": f"Bearer {token}"}, verify=info["ca_bundle"], timeout=30)
        assert resp.status_code == 200
        assert resp.headers["x-ms-tenant-subscription-limit-hit"] == "true"
        assert resp.json()["count"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
