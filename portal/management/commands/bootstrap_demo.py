"""First-run set-up for `make run`: the demo provider and catalogue, an admin login and a fresh demo key."""

import secrets
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from portal import services
from portal.models import APIKey
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider

DEMO_ALIASES = {"demo-chat": "demo-chat-model", "gpt-4o-mini": "demo-chat-model", "demo-embed": "demo-embed-model"}


class Command(BaseCommand):
    help = "Load the demo provider and catalogue, ensure an admin, issue a fresh demo key (printed)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--gateway-url", required=True, help="where this gateway listens, e.g. http://127.0.0.1:8000"
        )
        parser.add_argument("--with-demo-provider", action="store_true")

    @transaction.atomic
    def handle(self, *args, gateway_url, with_demo_provider, **options):
        if with_demo_provider:
            self._load_demo_catalogue(gateway_url.rstrip("/"))
        password = self._ensure_admin()
        team = services.ensure_team(team_name="demo", tenant_name="Demo")
        # One live demo key at a time: the previous one is revoked, the new secret is shown once.
        for old in APIKey.objects.filter(team=team, name="demo key", is_revoked=False):
            services.revoke_api_key(api_key=old)
        key = services.issue_api_key(team=team, name="demo key").secret
        self.stdout.write(f"TOLLWAY_ADMIN_PASSWORD={password}")
        self.stdout.write(f"TOLLWAY_DEMO_KEY={key}")

    def _load_demo_catalogue(self, gateway_url: str) -> None:
        provider, _ = Provider.objects.update_or_create(
            name="demo",
            defaults={"kind": "openai-compatible", "base_url": f"{gateway_url}/demo-upstream/v1", "timeout_s": 30},
        )
        for name, model, capabilities in [
            ("demo-chat-model", "demo-chat", ["chat", "json"]),
            ("demo-embed-model", "demo-embed", ["embeddings"]),
        ]:
            Deployment.objects.update_or_create(
                name=name,
                defaults={
                    "provider": provider,
                    "model": model,
                    "input_per_1m": Decimal("0.15"),
                    "output_per_1m": Decimal("0.60"),
                    "context_window": 128000,
                    "capabilities": capabilities,
                },
            )
        for alias_name, deployment_name in DEMO_ALIASES.items():
            alias, _ = ModelAlias.objects.get_or_create(name=alias_name)
            if not alias.routes.exists():
                AliasDeployment.objects.create(alias=alias, deployment=Deployment.objects.get(name=deployment_name))

    def _ensure_admin(self) -> str:
        # The embedded default keeps the generated admin password beside its database (var/, mode 600).
        password_file = settings.DATA_DIR / "admin-password"
        User = get_user_model()
        if password_file.exists() and User.objects.filter(username="admin").exists():
            return password_file.read_text().strip()
        password = secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        # The console signs in by email, with verification mandatory: the admin's address is known good.
        EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
        password_file.write_text(password)
        password_file.chmod(0o600)
        return password
