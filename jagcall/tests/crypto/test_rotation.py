"""Rotation, re-encryption (resumable, verified), retirement and crypto-shredding."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from datetime import timezone as dt_timezone

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from django.utils import timezone

from jagcall.kernel.crypto import keys, retirement, selectors, services
from jagcall.kernel.crypto.errors import EncryptedFileError, KeyRetirementRefused, KeysetDestroyed
from jagcall.kernel.crypto.fields import ciphertext_key_id
from jagcall.kernel.crypto.models import OrganizationKeyset, PlatformKeyset, ReencryptionCheckpoint
from tests.crypto_example.models import SecretNote

pytestmark = pytest.mark.django_db
# Rows are read back through _base_manager: these tests look at rows as stored (some moved to
# another organization by raw SQL), as the kernel itself does, not through the tenancy scope.


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def seed(organization, count=5, files=2):
    notes = []
    for n in range(count):
        note = SecretNote(organization=organization, title=f"n{n}", body=f"secret body {n}", details={"n": n}, phone=f"+1415555{n:04d}")
        if n < files:
            note.attachment.save(f"r{n}.wav", ContentFile(b"audio secret %d " % n * 5000), save=False)
        note.save()
        notes.append(note)
    return notes


def let_the_grace_period_pass(master_file=None):
    """Rotations happened longer ago than any key cache (moves the recorded moments back, like a clock would)."""
    earlier = timezone.now() - keys.retirement_grace() - timedelta(seconds=1)
    OrganizationKeyset.objects.filter(rotated_at__isnull=False).update(rotated_at=earlier)
    PlatformKeyset.objects.filter(rotated_at__isnull=False).update(rotated_at=earlier)
    if master_file is not None:
        os.utime(master_file, (earlier.timestamp(), earlier.timestamp()))
        keys.master.load(force=True)


def snapshot(organization):
    result = {}
    for note in SecretNote.objects.for_org(organization).order_by("title"):
        content = note.attachment.open().read() if note.attachment else None
        result[note.title] = (note.body, note.details, note.phone, content)
    return result


def test_rotate_then_reencrypt_leaves_everything_readable_and_nothing_under_the_old_key(organization, other_organization):
    seed(organization)
    seed(other_organization, count=2, files=1)
    before = snapshot(organization), snapshot(other_organization)
    old = keys.organization_keys(organization.id)

    output = run("rotate_keys", "--org", organization.slug)
    assert "reencrypt" in output
    new = keys.organization_keys(organization.id)
    assert new.aead_primary_id != old.aead_primary_id and old.aead_primary_id in new.aead_key_ids
    assert (snapshot(organization), snapshot(other_organization)) == before  # old keys still decrypt

    output = run("reencrypt")
    assert "100.0%" in output and "under the current primary keys" in output
    assert selectors.field_key_usage()[str(organization.id)] == {new.aead_primary_id}
    assert selectors.file_key_usage()[str(organization.id)] == {new.streaming_primary_id}
    assert (snapshot(organization), snapshot(other_organization)) == before

    # Nothing references the old keys any more, so they can go once no cache can hold them as primary.
    let_the_grace_period_pass()
    run("rotate_keys", "--retire-unused")
    keys.evict()
    retired = keys.organization_keys(organization.id)
    assert retired.aead_key_ids == (new.aead_primary_id,)
    assert retired.streaming_key_ids == (new.streaming_primary_id,)
    assert (snapshot(organization), snapshot(other_organization)) == before


def test_old_keys_in_use_are_not_retired(organization):
    seed(organization, count=2, files=1)
    old = keys.organization_keys(organization.id)
    run("rotate_keys", "--org", organization.slug)
    let_the_grace_period_pass()
    output = run("rotate_keys", "--retire-unused")
    assert "still encrypts" in output and "run `manage.py reencrypt`" in output.lower()
    keys.evict()
    assert old.aead_primary_id in keys.organization_keys(organization.id).aead_key_ids
    assert SecretNote.objects.for_org(organization).get(title="n0").body == "secret body 0"


def test_reencrypt_resumes_after_an_interruption(organization):
    seed(organization, count=5, files=0)
    run("rotate_keys", "--org", organization.slug)
    output = run("reencrypt", "--batch-size", "2", "--max-batches", "1")
    assert "Paused" in output
    checkpoint = ReencryptionCheckpoint.objects.get(target="crypto_example.secretnote")
    assert (checkpoint.done, checkpoint.rewritten, checkpoint.finished_at) == (2, 2, None)
    primary = keys.organization_keys(organization.id).aead_primary_id
    keys_now = sorted(ciphertext_key_id(bytes(n.__dict__["body"])) == primary for n in SecretNote._base_manager.order_by("pk"))
    assert keys_now == [False, False, False, True, True]

    run("reencrypt", "--batch-size", "2")
    checkpoint.refresh_from_db()
    assert checkpoint.finished_at is not None
    assert checkpoint.done == 5 and checkpoint.rewritten == 5  # the first batch was not redone
    assert selectors.field_key_usage()[str(organization.id)] == {primary}


def test_master_rotation_rewraps_every_organization(organization, other_organization, tmp_path, swap_master):
    master_file = tmp_path / "master.json"
    keys.write_master_keyset(master_file, keys.new_handle("aead"))
    swap_master(file=str(master_file))
    seed(organization, count=2, files=1)
    seed(other_organization, count=1, files=0)
    before = snapshot(organization), snapshot(other_organization)
    old_master = keys.master.primary_key_id

    output = run("rotate_keys", "--master")
    assert "re-wrapped 2 organization keyset(s)" in output
    new_master = keys.master.primary_key_id
    assert new_master != old_master
    assert set(OrganizationKeyset.objects.values_list("master_key_id", flat=True)) == {new_master}
    on_disk = json.loads(master_file.read_text())
    assert on_disk["primaryKeyId"] == new_master and len(on_disk["key"]) == 2

    output = run("rotate_keys", "--retire-unused")
    assert "Retiring becomes possible at" in output  # the file just changed: other processes may hold the old primary
    assert len(json.loads(master_file.read_text())["key"]) == 2
    let_the_grace_period_pass(master_file)
    run("rotate_keys", "--retire-unused")
    assert len(json.loads(master_file.read_text())["key"]) == 1
    swap_master(file=str(master_file))  # a fresh process: reload from the file
    assert (snapshot(organization), snapshot(other_organization)) == before


def test_inline_master_rotation_prints_the_keyset_to_deploy(organization, swap_master):
    swap_master(inline=keys.serialize_master_keyset(keys.new_handle("aead")))
    output = run("rotate_keys", "--master")
    printed = output[output.index("{"):]
    assert len(json.loads(printed)["key"]) == 2
    assert "--rewrap" in output


def test_destroying_an_organizations_keys_shreds_its_data_only(organization, other_organization):
    mine = seed(organization, count=2, files=1)
    theirs_before = snapshot(other_organization) if seed(other_organization, count=2, files=1) else None
    services.organization_keys_destroy(organization_id=organization.id)

    with pytest.raises(KeysetDestroyed):
        SecretNote._base_manager.get(pk=mine[0].pk).body
    with pytest.raises(KeysetDestroyed):
        SecretNote._base_manager.get(pk=mine[0].pk).attachment.open().read()
    row = OrganizationKeyset.objects.get(organization_id=organization.id)
    assert row.aead_keyset is None and row.streaming_keyset is None and row.destroyed_at is not None
    # The ciphertexts (as in a backup) are still there, and useless.
    assert SecretNote._base_manager.get(pk=mine[0].pk).__dict__["body"] is not None
    assert snapshot(other_organization) == theirs_before
    # Nothing brings the keys back: a new write for that organization is refused too.
    with pytest.raises(KeysetDestroyed):
        SecretNote.objects.create(organization=organization, title="after", body="new secret")


def test_status_lists_keys_and_what_uses_them(organization):
    seed(organization, count=1, files=1)
    output = run("rotate_keys", "--status")
    assert f"{organization.slug} field key" in output and "primary, in use" in output
    assert "master key" in output


def test_a_reader_with_another_master_cannot_open_the_keys(organization, swap_master):
    seed(organization, count=1, files=0)
    swap_master(inline=keys.serialize_master_keyset(keys.new_handle("aead")))
    with pytest.raises(keys.KeyConfigurationError, match="not the master keyset these keys were wrapped with"):
        SecretNote.objects.for_org(organization).get().body
    from jagcall.kernel.crypto.checks import master_keyset_matches_database

    assert master_keyset_matches_database() == []  # not asked to look at a database
    problems = master_keyset_matches_database(databases=["default"])
    assert [p.id for p in problems] == ["crypto.E001"]


def test_retiring_a_key_still_in_use_is_refused_saying_what_uses_it(organization):
    seed(organization, count=3, files=1)
    old = keys.organization_keys(organization.id)
    services.organization_keys_rotate(organization_id=organization.id)
    let_the_grace_period_pass()
    with pytest.raises(KeyRetirementRefused) as refusal:
        retirement.organization_keys_retire(
            organization_id=organization.id, aead_key_ids={old.aead_primary_id}, streaming_key_ids={old.streaming_primary_id}
        )
    message = str(refusal.value)
    assert f"field key {old.aead_primary_id} still encrypts 3 values of crypto_example.secretnote.body" in message
    assert "3 values of crypto_example.secretnote.phone" in message
    assert f"file key {old.streaming_primary_id} still encrypts 1 file of crypto_example.secretnote.attachment" in message
    assert "Run `manage.py reencrypt`" in message
    keys.evict()
    assert old.aead_primary_id in keys.organization_keys(organization.id).aead_key_ids
    assert SecretNote.objects.for_org(organization).get(title="n2").body == "secret body 2"


def test_retiring_is_refused_until_no_key_cache_can_still_hold_the_old_primary(organization, settings):
    settings.JAGCALL_KEY_CACHE_SECONDS = 300
    assert keys.retirement_grace() > timedelta(seconds=300)
    seed(organization, count=1, files=0)
    old = keys.organization_keys(organization.id)
    services.organization_keys_rotate(organization_id=organization.id)
    run("reencrypt")  # nothing uses the old key any more...
    rotated_at = OrganizationKeyset.objects.get(organization_id=organization.id).rotated_at
    with pytest.raises(KeyRetirementRefused) as refusal:  # ...but a process may still encrypt under it
        retirement.organization_keys_retire(
            organization_id=organization.id, aead_key_ids={old.aead_primary_id}, streaming_key_ids=set(),
            now=rotated_at + timedelta(seconds=301),
        )
    ready = rotated_at + keys.retirement_grace()
    assert "JAGCALL_KEY_CACHE_SECONDS=300" in str(refusal.value)
    assert f"Retiring becomes possible at {ready.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M:%S} UTC" in str(refusal.value)
    output = run("rotate_keys", "--retire-unused")
    assert "Retiring becomes possible at" in output and f"organization {organization.slug}" in output
    keys.evict()
    assert old.aead_primary_id in keys.organization_keys(organization.id).aead_key_ids

    retirement.organization_keys_retire(
        organization_id=organization.id, aead_key_ids={old.aead_primary_id}, streaming_key_ids=set(), now=ready
    )
    keys.evict()
    assert old.aead_primary_id not in keys.organization_keys(organization.id).aead_key_ids
    assert SecretNote.objects.for_org(organization).get().body == "secret body 0"


def test_the_primary_key_is_never_retired(organization):
    seed(organization, count=1, files=0)
    primary = keys.organization_keys(organization.id).aead_primary_id
    with pytest.raises(KeyRetirementRefused, match="is the primary key"):
        retirement.organization_keys_retire(organization_id=organization.id, aead_key_ids={primary}, streaming_key_ids=set())


def test_a_write_under_a_cached_old_key_after_rotation_is_counted_before_retiring(organization, settings):
    """A process whose cache still holds the old primary writes after the rotation: the count sees it."""
    seed(organization, count=1, files=0)
    stale = keys.organization_keys(organization.id)  # this process cached the keys
    rotated = services.organization_keys_rotate(organization_id=organization.id)
    keys._cache[keys._cache_key(organization.id)] = (float("inf"), stale)  # as another process's cache would
    late = SecretNote.objects.create(organization=organization, title="late", body="written with the old primary")
    keys.evict()
    assert ciphertext_key_id(bytes(SecretNote._base_manager.get(pk=late.pk).__dict__["body"])) == stale.aead_primary_id
    with pytest.raises(KeyRetirementRefused, match="still encrypts 2 values of crypto_example.secretnote.body"):
        retirement.organization_keys_retire(
            organization_id=organization.id, aead_key_ids={stale.aead_primary_id}, streaming_key_ids=set(),
            now=rotated.rotated_at + keys.retirement_grace(),
        )
    assert SecretNote._base_manager.get(pk=late.pk).body == "written with the old primary"


def test_a_master_keyset_file_changed_by_another_process_is_picked_up_within_the_cache_time(tmp_path, swap_master, settings):
    master_file = tmp_path / "master.json"
    keys.write_master_keyset(master_file, keys.new_handle("aead"))
    swap_master(file=str(master_file))
    first = keys.master.primary_key_id
    rotated = keys.add_primary_key(keys.master.handle, "aead")
    keys.write_master_keyset(master_file, rotated)  # as `rotate_keys --master` in another process
    os.utime(master_file, ns=(master_file.stat().st_atime_ns, master_file.stat().st_mtime_ns + 1_000_000))
    assert keys.master.primary_key_id == first  # still cached in this process
    keys.master._recheck_at = 0  # the cache time has passed
    assert keys.master.primary_key_id == keys.primary_key_id(rotated) != first
    assert keys.master.changed_at().timestamp() == pytest.approx(master_file.stat().st_mtime, abs=0.01)
