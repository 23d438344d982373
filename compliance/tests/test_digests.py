"""Signed digests of each chain's head, outside the table: written daily, carried by exports,
and used by verify_audit_chain to find a truncated or rewritten tail."""

from __future__ import annotations

import base64
import csv
import io
import json
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import call_command
from django.core.management.base import CommandError

from compliance.chain import canonical_json, event_hash
from compliance.digests import audit_digest_verify, digest_path, latest_digest
from compliance.keygen import new_private_key, public_key_of
from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify
from compliance.tests.conftest import record
from compliance.tests.superuser import EVENTS, tamper
from compliance.tests.test_views import body, export_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def digest_dir(tmp_path, settings):
    settings.AUDIT_DIGEST_DIR = str(tmp_path / "audit-digests")
    return tmp_path / "audit-digests"


def write_digests():
    from compliance import tasks

    return tasks.write_chain_digests()


def verify_with_public_key_only(digest: dict, public_b64: str) -> None:
    """What an outside verifier does: the public key and the canonical JSON, nothing of ours."""
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
    signed = {name: value for name, value in digest.items() if name != "signature"}
    public.verify(base64.b64decode(digest["signature"]), canonical_json(signed))  # raises when it does not verify


def lines_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- writing --------------------------------------------------------------------------------


def test_the_daily_task_signs_every_chains_head_into_its_file_and_the_log(
    organization, other_organization, settings, caplog, digest_dir
):
    events = [record(organization) for _ in range(3)]
    record(None, action="user.login_failed", outcome="failed")
    with caplog.at_level("INFO", logger="jagcall.audit"):
        assert write_digests() == {"digests": 3}  # the platform's chain and both organizations'
    digest = lines_of(digest_dir / f"{organization.id}.jsonl")[-1]
    assert (digest["organization_id"], digest["seq"], digest["hash"]) == (str(organization.id), 3, events[2].hash)
    assert digest["head_occurred_at"] and digest["signed_at"] and digest["key_id"]
    verify_with_public_key_only(digest, public_key_of(settings.AUDIT_DIGEST_SIGNING_KEY))
    assert lines_of(digest_dir / "platform.jsonl")[-1]["seq"] == 1
    empty = lines_of(digest_dir / f"{other_organization.id}.jsonl")[-1]
    assert (empty["seq"], empty["hash"]) == (0, "0" * 64)
    logged = [r for r in caplog.records if r.getMessage().startswith("audit chain digest")]
    assert len(logged) == 3 and digest in [r.audit_chain_digest for r in logged]
    # Appended, never rewritten; readable by its owner and group only.
    record(organization)
    write_digests()
    assert [d["seq"] for d in lines_of(digest_dir / f"{organization.id}.jsonl")] == [3, 4]
    assert stat.S_IMODE((digest_dir / f"{organization.id}.jsonl").stat().st_mode) & 0o007 == 0
    assert not AuditEvent.objects.unscoped("test: inspects rows directly").filter(action__startswith="audit.digest").exists()  # nothing written to the log itself


def test_digests_are_written_daily_by_beat(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["audit-write-chain-digests"]
    assert entry["task"] == "compliance.tasks.write_chain_digests"
    schedule = entry["schedule"]
    assert len(schedule.hour) == 1 and len(schedule.minute) == 1 and len(schedule.day_of_month) == 31


# --- verify_audit_chain with the digests -------------------------------------------------


def test_a_clean_chain_matches_its_digest(organization, capsys):
    for _ in range(3):
        record(organization)
    write_digests()
    record(organization)  # written after the digest: still fine
    call_command("verify_audit_chain", "--org", organization.slug, verbosity=2)
    assert "head matches the digest of seq 3" in capsys.readouterr().out


def test_a_truncated_tail_is_reported_with_organization_and_seq(organization, capsys, monkeypatch):
    from django.core.management import ManagementUtility
    from django.db import connections

    events = [record(organization) for _ in range(5)]
    write_digests()
    # A superuser switches the trigger off and deletes the last two rows: what is left still links up.
    tamper(f"DELETE FROM {EVENTS} WHERE id = ANY(%s)", [[events[3].id, events[4].id]])
    assert audit_chain_verify(organization_id=organization.id).ok
    with pytest.raises(CommandError) as error:
        call_command("verify_audit_chain")
    assert "organization acme-dental, seq 5: truncated tail" in str(error.value)
    out = capsys.readouterr().out
    assert "DIGEST  acme-dental: seq 5: truncated tail: the chain ends at seq 3" in out
    assert "events 4..5 were removed" in out
    monkeypatch.setattr(connections, "close_all", lambda: None)  # keep the test's transaction open
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "verify_audit_chain", "--org", organization.slug]).execute()
    assert exit_info.value.code == 1


def test_a_rewritten_tail_is_reported(organization, capsys):
    events = [record(organization, metadata={"n": n}) for n in range(5)]
    write_digests()
    # Rows 3..5 replaced by consistent, re-hashed ones: the chain itself verifies.
    previous = events[1].hash
    for event in AuditEvent.objects.for_org(organization).filter(seq__gte=3).order_by("seq"):
        event.metadata = {"n": "rewritten"}
        event.prev_hash = previous
        event.hash = event_hash(event)
        tamper(
            f"UPDATE {EVENTS} SET metadata = %s::jsonb, prev_hash = %s, hash = %s WHERE id = %s",
            [json.dumps(event.metadata), event.prev_hash, event.hash, event.id],
        )
        previous = event.hash
    assert audit_chain_verify(organization_id=organization.id).ok
    with pytest.raises(CommandError, match="organization acme-dental, seq 5: rewritten chain"):
        call_command("verify_audit_chain", "--org", organization.slug)
    assert "DIGEST  acme-dental: seq 5: rewritten chain: the event at seq 5 has hash" in capsys.readouterr().out


def test_a_digest_with_a_bad_signature_is_reported(organization, capsys, digest_dir):
    for _ in range(2):
        record(organization)
    write_digests()
    path = digest_dir / f"{organization.id}.jsonl"
    forged = {**lines_of(path)[-1], "seq": 1}  # someone "moves the head back" in the file
    with path.open("a") as handle:
        handle.write(json.dumps(forged) + "\n")
    with pytest.raises(CommandError, match="bad signature"):
        call_command("verify_audit_chain", "--org", organization.slug)
    out = capsys.readouterr().out
    assert f"DIGEST  acme-dental: seq 1: digest at {organization.id}.jsonl line 2: bad signature" in out
    # The forged line is not used: the latest good digest (seq 2) is what the head is checked against.
    assert latest_digest(organization_id=organization.id)["seq"] == 2


def test_rotated_keys_verify_with_the_previous_public_key(organization, settings):
    record(organization)
    old_key = settings.AUDIT_DIGEST_SIGNING_KEY
    write_digests()
    settings.AUDIT_DIGEST_SIGNING_KEY = new_private_key()
    problems = audit_digest_verify(organization_id=organization.id)
    assert len(problems) == 1 and "unknown key" in problems[0].reason and "AUDIT_DIGEST_VERIFY_KEYS" in problems[0].reason
    settings.AUDIT_DIGEST_VERIFY_KEYS = [public_key_of(old_key)]
    assert audit_digest_verify(organization_id=organization.id) == []


def test_a_digested_head_purged_by_retention_still_verifies(organization, settings):
    from datetime import timedelta

    from compliance.services import audit_purge_expired
    from compliance.tests.test_retention import aged_chain, keep_for

    keep_for(settings, 1)
    now, _events = aged_chain(organization, [timedelta(days=3), timedelta(days=2)])
    write_digests()
    audit_purge_expired(now=now)
    assert not AuditEvent.objects.for_org(organization).exists()
    assert audit_digest_verify(organization_id=organization.id) == []  # the checkpoint holds the digested hash
    call_command("verify_audit_chain", "--org", organization.slug)


def test_the_daily_verification_alerts_on_a_truncated_tail(organization, events):
    from compliance import tasks

    recorded = [record(organization) for _ in range(3)]
    write_digests()
    tamper(f"DELETE FROM {EVENTS} WHERE id = %s", [recorded[2].id])
    outcome = tasks.verify_chain(str(organization.id))
    assert outcome["broken"] is True
    [alert] = [e for e in events if e["event"] == "audit.chain_broken"]
    assert alert["seq"] == 3 and "truncated tail" in alert["reason"]


# --- exports ------------------------------------------------------------------------------------


def test_exports_carry_the_latest_signed_digest(owner_client, organization, settings):
    for _ in range(2):
        record(organization)
    # No digest yet: the export is the events alone.
    assert "chain_digest" not in body(owner_client.get(export_url(organization, "jsonl")))
    write_digests()
    expected = latest_digest(organization_id=organization.id)
    public = public_key_of(settings.AUDIT_DIGEST_SIGNING_KEY)

    lines = [json.loads(line) for line in body(owner_client.get(export_url(organization, "jsonl"))).splitlines()]
    assert lines[-1] == {"chain_digest": expected}
    verify_with_public_key_only(lines[-1]["chain_digest"], public)
    # The unfiltered export reaches the signed head: its newest event has the signed seq and hash.
    heads = [line for line in lines[:-1] if line["seq"] == expected["seq"]]
    assert heads and heads[0]["hash"] == expected["hash"]

    rows = list(csv.reader(io.StringIO(body(owner_client.get(export_url(organization, "csv"))))))
    assert rows[-1][0] == "#chain_digest"
    assert json.loads(rows[-1][1]) == expected
    verify_with_public_key_only(json.loads(rows[-1][1]), public)


# --- settings and the key tool ------------------------------------------------------------------


def test_the_key_tool_makes_a_key_and_tells_its_public_key(capsys):
    from compliance import keygen

    assert keygen.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    private = out[0].removeprefix("AUDIT_DIGEST_SIGNING_KEY=")
    assert len(base64.b64decode(private)) == 32 and public_key_of(private) in out[1]
    assert keygen.main(["--public", private]) == 0
    assert capsys.readouterr().out.strip() == public_key_of(private)
    assert keygen.main(["--public", "not-a-key"]) == 65


def test_digest_files_are_named_by_chain(organization, digest_dir):
    assert digest_path(organization.id) == digest_dir / f"{organization.id}.jsonl"
    assert digest_path(None) == digest_dir / "platform.jsonl"
