"""Key rotation: new primary keys for the master or organization keysets, re-wrapping, retiring."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jagcall.kernel.crypto import keys, registry, retirement, sealed, selectors, services
from jagcall.kernel.crypto.models import OrganizationKeyset, PlatformKeyset


class Command(BaseCommand):
    help = (
        "Rotate encryption keys. --master adds a new primary key to the master keyset and re-wraps every "
        "organization keyset; --org SLUG / --all-orgs add new primary data keys; --rewrap re-wraps under the "
        "deployed master; --status shows keys and what still uses them; --retire-unused removes keys nothing "
        "references once they stopped being primary longer ago than the key cache allows (it says what keeps the "
        "others, and when to retry); --new-master-keyset prints a fresh master keyset for a first deployment. After rotating "
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
            organization_id = registry.tenant_id_for(options["org"])
            if organization_id is None:
                raise CommandError(f"No organization with short name {options['org']!r}.")
            self._rotate_orgs([organization_id])
            return
        if options["all_orgs"]:
            destroyed = set(OrganizationKeyset.objects.filter(destroyed_at__isnull=False).values_list("organization_id", flat=True))
            return self._rotate_orgs([i for i in registry.tenant_ids() if i not in destroyed])
        if options["platform"]:
            services.platform_keys_rotate(name=sealed.NAME)
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
        fields, files = selectors.field_key_counts(), selectors.file_key_counts()
        rows = list(OrganizationKeyset.objects.filter(destroyed_at__isnull=True).order_by("created_at"))
        labels = registry.tenant_labels([row.organization_id for row in rows])
        for row in rows:
            org = str(row.organization_id)
            org_keys = keys.organization_keys(row.organization_id)
            for kind, ids, primary, in_use in (
                ("field", org_keys.aead_key_ids, org_keys.aead_primary_id, fields.get(org, {})),
                ("file", org_keys.streaming_key_ids, org_keys.streaming_primary_id, files.get(org, {})),
            ):
                for key_id in ids:
                    flags = (["primary"] if key_id == primary else []) + (
                        [f"in use ({sum(in_use[key_id].values())})"] if in_use.get(key_id) else ["unused"]
                    )
                    self.stdout.write(f"{labels[org]} {kind} key {key_id}: {', '.join(flags)}")
        sealed_in_use = selectors.sealed_key_counts()
        for row in PlatformKeyset.objects.order_by("name"):
            platform = keys.platform_keys(row.name)
            for key_id in platform.key_ids:
                flags = (["primary"] if key_id == platform.primary_id else []) + (
                    [f"in use ({sum(sealed_in_use[key_id].values())})"] if sealed_in_use.get(key_id) else ["unused"]
                )
                self.stdout.write(f"platform keyset {row.name} key {key_id}: {', '.join(flags)}")
        unbound = selectors.sealed_unbound_count()
        if unbound:
            self.stdout.write(self.style.WARNING(
                f"{unbound} sealed secret(s) are in the old format that is not bound to their owner: run `manage.py reencrypt`."
            ))

    def _retire(self):
        report = retirement.keys_retire_unused()
        if report.master_handle is not None:
            file = self._master_file()
            if file is None:
                self.stdout.write("Master keyset without the retired keys; deploy it as JAGCALL_MASTER_KEYSET:\n")
                self.stdout.write(keys.serialize_master_keyset(report.master_handle))
            else:
                keys.write_master_keyset(file, report.master_handle)
                keys.master.load(force=True)
        for line in report.retired:
            self.stdout.write(f"retired {line}")
        for line in report.refused:
            self.stdout.write(self.style.WARNING(f"kept {line}"))
        summary = f"Retired {len(report.retired)} group(s) of keys that nothing uses."
        if report.refused:
            summary += f" Kept {len(report.refused)} group(s): see above for what still uses them and when to retry."
        self.stdout.write(self.style.SUCCESS(summary))
