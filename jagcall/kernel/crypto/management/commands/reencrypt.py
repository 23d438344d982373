"""Rewrite every encrypted field and file under the current primary keys."""

import sys

from django.core.management.base import BaseCommand, CommandError

from jagcall.kernel.crypto.reencrypt import VerificationError, reencrypt_all


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted field and file under the current primary keys, in batches. "
        "Resumes where an interrupted run stopped; verifies each rewritten value."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
        parser.add_argument("--restart", action="store_true", help="start over instead of resuming")
        parser.add_argument("--max-batches", type=int, help="stop after this many batches per model (resume later)")

    def handle(self, *args, batch_size, restart, max_batches, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        tty = getattr(self.stdout, "isatty", lambda: False)()

        def report(progress):
            percent = 100 * progress.done / progress.total if progress.total else 100
            width = 30
            bar = "#" * int(width * percent / 100)
            line = (f"{progress.target:<40} [{bar:<{width}}] {progress.done}/{progress.total} "
                    f"({percent:5.1f}%), {progress.rewritten} rewritten")
            self.stdout.write(("\r" + line) if tty else line, ending="" if tty else "\n")
            sys.stdout.flush()

        try:
            results = reencrypt_all(batch_size=batch_size, restart=restart, max_batches=max_batches, report=report)
        except VerificationError as error:
            raise CommandError(f"verification failed, stopped: {error}") from None
        if tty:
            self.stdout.write("")
        unfinished = [c.target for c in results if c.finished_at is None]
        for checkpoint in results:
            state = "done" if checkpoint.finished_at else "paused"
            self.stdout.write(f"{checkpoint.target}: {checkpoint.done} checked, {checkpoint.rewritten} rewritten ({state})")
        if unfinished:
            self.stdout.write(self.style.WARNING(f"Paused before the end of: {', '.join(unfinished)}. Run again to resume."))
        else:
            self.stdout.write(self.style.SUCCESS("Every encrypted value and file is under the current primary keys."))
