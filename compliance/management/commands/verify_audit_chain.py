"""manage.py verify_audit_chain [--org SLUG]: recompute the audit hash chains; non-zero exit if one is broken."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from compliance.selectors import audit_chains_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chains (every organization's and the platform's, or one organization's)."

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", help="verify only this organization's chain")

    def handle(self, *args, org=None, **options):
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organization with the slug {org!r}.")
        reports = audit_chains_verify(organization=organization)
        broken = []
        for report in reports:
            if report.ok:
                if report.events or options["verbosity"] > 1:
                    span = f"seq {report.first_seq}..{report.last_seq}" if report.events else "empty"
                    resumed = (
                        f", resumed from the purge checkpoint at seq {report.resumed_from_checkpoint}"
                        if report.resumed_from_checkpoint
                        else ""
                    )
                    self.stdout.write(f"ok      {report.chain_label}: {report.events} events ({span}{resumed})")
                continue
            link = report.broken
            broken.append(report)
            self.stdout.write(
                f"BROKEN  {report.chain_label}: first broken link at seq {link.seq}, event {link.event_id}: {link.reason}"
            )
        if broken:
            first = broken[0]
            raise CommandError(
                f"{len(broken)} broken chain(s); first: organization {first.chain_label}, "
                f"seq {first.broken.seq}, event {first.broken.event_id}"
            )
        self.stdout.write(self.style.SUCCESS(f"{len(reports)} chain(s) verified, no broken link."))
