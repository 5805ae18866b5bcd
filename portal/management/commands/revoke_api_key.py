from django.core.management.base import BaseCommand, CommandError

from portal import services
from portal.models import APIKey


class Command(BaseCommand):
    help = "Revoke an API key by its prefix (sk-tw-XXXXXXXX)."

    def add_arguments(self, parser):
        parser.add_argument("prefix")

    def handle(self, *args, prefix, **options):
        try:
            api_key = APIKey.objects.get(prefix=prefix[:14])
        except APIKey.DoesNotExist:
            raise CommandError(f"no key with prefix {prefix[:14]}") from None
        services.revoke_api_key(api_key=api_key)
        self.stdout.write(f"revoked {api_key.prefix}")
