from django.conf import settings
from django.core.management.base import BaseCommand

from billing.services import recover_usage_outbox


class Command(BaseCommand):
    help = "Store usage records left in the outbox by gateway processes that died before flushing them."

    def handle(self, *args, **options):
        recovered = recover_usage_outbox(directory=settings.TOLLWAY_USAGE_OUTBOX_DIR)
        self.stdout.write(f"recovered {recovered} usage records")
