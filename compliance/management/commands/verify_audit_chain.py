"""manage.py verify_audit_chain [--org SLUG]: recompute the audit hash chains and check them
against their latest signed digests; non-zero exit if a chain is broken, cut short or rewritten."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from compliance.digests import audit_digest_verify, latest_digest
from compliance.selectors import audit_chains_verify


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chains (every organization's and the platform's, or one organization's), "
        "and their heads against the latest signed digests (AUDIT_DIGEST_DIR)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", help="verify only this organization's chain")

    def handle(self, *args, org=None, **options):
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organization with the slug {org!r}.")
        reports = audit_chains_verify(organization=organization)
        failures = []  # (organization, seq, what is wrong)
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
            else:
                link = report.broken
                failures.append((report.chain_label, link.seq, f"event {link.event_id}: {link.reason}"))
                self.stdout.write(
                    f"BROKEN  {report.chain_label}: first broken link at seq {link.seq}, event {link.event_id}: {link.reason}"
                )
            # [!!] The head against the latest signed digest: a tail cut off or rewritten leaves a chain that
            # links up, which only a copy of its head kept outside the database shows.
            problems = audit_digest_verify(organization_id=report.organization_id)
            for problem in problems:
                failures.append((report.chain_label, problem.seq, problem.reason))
                self.stdout.write(f"DIGEST  {report.chain_label}: seq {problem.seq}: {problem.reason}")
            if not problems and options["verbosity"] > 1:
                digest = latest_digest(organization_id=report.organization_id)
                if digest:
                    self.stdout.write(
                        f"ok      {report.chain_label}: head matches the digest of seq {digest['seq']} signed at {digest['signed_at']}"
                    )
        if failures:
            label, seq, reason = failures[0]
            raise CommandError(f"{len(failures)} problem(s); first: organization {label}, seq {seq}: {reason}")
        self.stdout.write(self.style.SUCCESS(f"{len(reports)} chain(s) verified, no broken link."))
