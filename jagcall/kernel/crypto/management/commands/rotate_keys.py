"""Key rotation: new primary keys for the master or organization keysets, re-wrapping, retiring."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from jagcall.kernel.crypto import keys, selectors, services
from jagcall.kernel.crypto.models import OrganizationKeyset


class Command(BaseCommand):
    help = (
        "Rotate encryption keys. --master adds a new primary key to the master keyset and re-wraps every "
        "organization keyset; --org SLUG / --all-orgs add new primary data keys; --rewrap re-wraps under the "
        "deployed master; --status shows keys and what still uses them; --retire-unused removes keys nothing "
        "references; --new-master-keyset prints a fresh master keyset for a first deployment. After rotating "
        "data keys, run `manage.py reencrypt`."
    )

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--master", action="store_true")
        group.add_argument("--org", metavar="SLUG")
        group.add_argument("--all-orgs", action="store_true")
        group.add_argument("--platform", action="store_true", help="new primary key for people's sealed secrets (TOTP)")
        group.add_argument("--rewrap", action="store_true")
        group.add_argument("--status", action="store_true")
        group.add_argument("--retire-unused", action="store_true")
        group.add_argument("--new-master-keyset", action="store_true")

    def handle(self, *args, **options):
        if options["new_master_keyset"]:
            self.stdout.write(keys.serialize_master_keyset(keys.new_handle("aead")))
            return
        if options["master"]:
            return self._rotate_master()
        if options["org"]:
            organization = Organization.objects.filter(slug=options["org"]).first()
            if organization is None:
                raise CommandError(f"No organization with short name {options['org']!r}.")
            self._rotate_orgs([organization.id])
            return
        if options["all_orgs"]:
            return self._rotate_orgs(list(OrganizationKeyset.objects.filter(destroyed_at__isnull=True).values_list("organization_id", flat=True)))
        if options["platform"]:
            from jagcall.kernel.crypto.sealed import platform_keys_rotate

            platform_keys_rotate()
            self.stdout.write(self.style.SUCCESS("New primary key for sealed secrets. Run `manage.py reencrypt` next."))
            return
        if options["rewrap"]:
            count = services.organization_keys_rewrap_all()
            self.stdout.write(self.style.SUCCESS(f"Re-wrapped {count} organization keyset(s) under the current master key."))
            return
        if options["status"]:
            return self._status()
        if options["retire_unused"]:
            return self._retire()

    # --- master --------------------------------------------------------------------
    def _master_file(self) -> Path | None:
        return Path(settings.JAGCALL_MASTER_KEYSET_FILE) if settings.JAGCALL_MASTER_KEYSET_FILE else None

    def _rotate_master(self):
        if settings.JAGCALL_MASTER_KEY_URI:
            raise CommandError("The master key lives in your KMS: rotate it there, then run `rotate_keys --rewrap`.")
        handle = keys.add_primary_key(keys.master.handle, "aead")
        file = self._master_file()
        if file is None:
            self.stdout.write("New master keyset (old keys kept for decryption). Deploy it as JAGCALL_MASTER_KEYSET "
                              "on every process, then run `manage.py rotate_keys --rewrap`:\n")
            self.stdout.write(keys.serialize_master_keyset(handle))
            return
        # Persist first: the new file still holds the old keys, so nothing becomes unreadable
        # if the re-wrap below is interrupted.
        keys.write_master_keyset(file, handle)
        keys.master.load(force=True)
        count = services.organization_keys_rewrap_all()
        self.stdout.write(self.style.SUCCESS(
            f"Master keyset {file} has a new primary key {keys.master.primary_key_id}; re-wrapped {count} organization keyset(s)."
        ))

    # --- organizations ------------------------------------------------------------
    def _rotate_orgs(self, organization_ids):
        for organization_id in organization_ids:
            services.organization_keys_create(organization_id=organization_id)
            services.organization_keys_rotate(organization_id=organization_id)
        self.stdout.write(self.style.SUCCESS(
            f"New primary data keys for {len(organization_ids)} organization(s). "
            "Run `manage.py reencrypt` to move existing data onto them."
        ))

    # --- status and retirement ------------------------------------------------------
    def _status(self):
        master_in_use = selectors.master_key_usage()
        if keys.master.handle is not None:
            for key_id in keys.key_ids(keys.master.handle):
                flags = ["primary"] if key_id == keys.master.primary_key_id else []
                flags.append("in use" if key_id in master_in_use else "unused")
                self.stdout.write(f"master key {key_id}: {', '.join(flags)}")
        else:
            self.stdout.write(f"master key: {keys.master.source}")
        fields, files = selectors.field_key_usage(), selectors.file_key_usage()
        for row in OrganizationKeyset.objects.select_related("organization").filter(destroyed_at__isnull=True):
            org_keys = keys.organization_keys(row.organization_id)
            used = fields.get(str(row.organization_id), set())
            used_files = files.get(str(row.organization_id), set())
            for kind, ids, primary, in_use in (
                ("field", org_keys.aead_key_ids, org_keys.aead_primary_id, used),
                ("file", org_keys.streaming_key_ids, org_keys.streaming_primary_id, used_files),
            ):
                for key_id in ids:
                    flags = (["primary"] if key_id == primary else []) + (["in use"] if key_id in in_use else ["unused"])
                    self.stdout.write(f"{row.organization.slug} {kind} key {key_id}: {', '.join(flags)}")

    def _retire(self):
        fields, files = selectors.field_key_usage(), selectors.file_key_usage()
        retired = 0
        for row in OrganizationKeyset.objects.filter(destroyed_at__isnull=True):
            org_keys = keys.organization_keys(row.organization_id)
            old_aead = set(org_keys.aead_key_ids) - {org_keys.aead_primary_id} - fields.get(str(row.organization_id), set())
            old_stream = set(org_keys.streaming_key_ids) - {org_keys.streaming_primary_id} - files.get(str(row.organization_id), set())
            still = (set(org_keys.aead_key_ids) - {org_keys.aead_primary_id} - old_aead) | (
                set(org_keys.streaming_key_ids) - {org_keys.streaming_primary_id} - old_stream
            )
            if still:
                self.stdout.write(f"organization {row.organization_id}: keys {sorted(still)} still in use; run `manage.py reencrypt` first")
            if old_aead or old_stream:
                services.organization_keys_retire(
                    organization_id=row.organization_id, aead_key_ids=old_aead, streaming_key_ids=old_stream
                )
                retired += len(old_aead) + len(old_stream)
        from jagcall.kernel.crypto import sealed
        from jagcall.kernel.crypto.models import PlatformKeyset

        for row in PlatformKeyset.objects.all():
            platform_handle = sealed.unwrap(row)
            unused = set(keys.key_ids(platform_handle)) - {keys.primary_key_id(platform_handle)} - selectors.sealed_key_usage()
            if unused:
                row.aead_keyset = sealed.wrap(keys.remove_keys(platform_handle, unused), row.name)
                row.save(update_fields=["aead_keyset"])
                sealed.evict()
                retired += len(unused)
        handle = keys.master.handle
        if handle is not None:
            in_use = selectors.master_key_usage()
            old_master = set(keys.key_ids(handle)) - {keys.master.primary_key_id} - in_use
            stuck = set(keys.key_ids(handle)) - {keys.master.primary_key_id} - old_master
            if stuck:
                self.stdout.write(f"master keys {sorted(stuck)} still wrap organization keysets; run `rotate_keys --rewrap` first")
            if old_master:
                new_handle = keys.remove_keys(handle, old_master)
                file = self._master_file()
                if file is None:
                    self.stdout.write("Master keyset without the retired keys; deploy it as JAGCALL_MASTER_KEYSET:\n")
                    self.stdout.write(keys.serialize_master_keyset(new_handle))
                else:
                    keys.write_master_keyset(file, new_handle)
                    keys.master.load(force=True)
                retired += len(old_master)
        self.stdout.write(self.style.SUCCESS(f"Retired {retired} key(s) that nothing references."))
