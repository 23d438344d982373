"""`manage.py billing_prices_sync`: create at Stripe the plans' products, prices and usage meters it lacks."""

from django.core.management.base import BaseCommand, CommandError

from jagcall.kernel.providers import ProviderError


class Command(BaseCommand):
    help = "Create the plans' products, prices (by lookup key) and usage meters that Stripe does not have yet."

    def handle(self, *args, **options):
        from billing.services.prices import prices_sync

        try:
            prices = prices_sync()
        except ProviderError as error:
            raise CommandError(f"Stripe: {error.message}") from error
        for key, price in sorted(prices.items()):
            self.stdout.write(f"{key}: {price}")
        self.stdout.write(self.style.SUCCESS(f"{len(prices)} prices ready at Stripe."))
