from django.core.management.base import BaseCommand, CommandError

from routing.catalogue import rotate_credentials
from routing.credentials import CredentialError


class Command(BaseCommand):
    help = "Re-encrypt every stored provider key under the newest of TOLLWAY_FERNET_KEYS (see routing/credentials)."

    def handle(self, *args, **options):
        try:
            count = rotate_credentials()
        except CredentialError as exc:
            raise CommandError(f"{exc}; nothing was re-encrypted") from None
        self.stdout.write(f"re-encrypted {count} provider key(s) under the newest Fernet key")
