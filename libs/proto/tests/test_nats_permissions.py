"""The deployed NATS configuration is rendered from the one permission table."""

from __future__ import annotations

from pathlib import Path

from chat_proto.nats_permissions import PERMISSIONS, SERVICES, deployed_accounts

ROOT = Path(__file__).resolve().parents[3]


def test_deployed_accounts_files_are_current() -> None:
    # compose's, and the Kubernetes base's copy (kustomize reads no file outside the base)
    for path in (
        ROOT / "deploy" / "nats" / "accounts.conf",
        ROOT / "deploy" / "k8s" / "base" / "nats" / "accounts.conf",
    ):
        assert path.read_text() == deployed_accounts(), "run: python -m chat_proto.nats_permissions > " + str(path)


def test_every_service_has_its_own_inbox_and_no_wildcard_everything() -> None:
    assert set(PERMISSIONS) == set(SERVICES)
    for service, p in PERMISSIONS.items():
        assert f"_INBOX_{service}.>" in p["subscribe"]
        assert ">" not in p["publish"] and ">" not in p["subscribe"]
        others = [f"_INBOX_{o}.>" for o in SERVICES if o != service]
        assert not set(others) & set(p["subscribe"])
