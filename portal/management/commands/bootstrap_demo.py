"""First-run set-up for `make run`: the demo provider and catalogue, an admin login, the demo key, and one API
product with a pending request so the console has something on every page. Safe to run on every start."""

import os
import secrets
from decimal import Decimal
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import services
from portal.keys import hash_key
from portal.models import APIKey, Membership, Product, Subscription, Team
from portal.services.products import create_product
from routing.models import AliasDeployment, Deployment, ModelAlias, Provider

DEMO_ALIASES = {"demo-chat": "demo-chat-model", "gpt-4o-mini": "demo-chat-model", "demo-embed": "demo-embed-model"}
DEMO_PRODUCT = "Demo chat"
DEMO_REQUESTER = "dev@localhost"


class Command(BaseCommand):
    help = (
        "Load the demo provider and catalogue, ensure an admin, keep one demo key (printed; reused while valid), "
        "and seed an API product with a pending subscription request."
    )

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
        key, key_state = self._ensure_demo_key(team)
        self._seed_product_and_request(team)
        self.stdout.write(f"TOLLWAY_ADMIN_PASSWORD={password}")
        self.stdout.write(f"TOLLWAY_DEMO_KEY={key}")
        self.stdout.write(f"TOLLWAY_DEMO_KEY_STATE={key_state}")
        self.stdout.write(f"TOLLWAY_DEMO_KEY_FILE={self._demo_key_file()}")

    def _demo_key_file(self) -> Path:
        return settings.DATA_DIR / "demo-key"

    def _ensure_demo_key(self, team: Team) -> tuple[str, str]:
        """The demo key outlives restarts, so an exported TOLLWAY_KEY keeps working: its secret is kept beside
        the database (var/, mode 600, like the admin password) and reused while it is live. Returns the secret
        and what happened: "kept", "new" (first start) or "replaced" (the kept one was revoked, expired or
        belongs to another database), which make run announces loudly."""
        key_file = self._demo_key_file()
        state = "new"
        if key_file.exists():
            secret = key_file.read_text().strip()
            is_live = (
                APIKey.objects.filter(
                    team=team, secret_hash=hash_key(secret, pepper=settings.TOLLWAY_KEY_PEPPER), is_revoked=False
                )
                .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
                .exists()
            )
            if is_live:
                return secret, "kept"
            state = "replaced"
        # One live demo key at a time: any other is revoked before the new one is issued.
        for old in APIKey.objects.filter(team=team, name="demo key", is_revoked=False):
            services.revoke_api_key(api_key=old, actor_label="bootstrap_demo", reason="replaced by a new demo key")
        secret = services.issue_api_key(team=team, name="demo key").secret
        _write_private(key_file, secret)
        return secret, state

    def _seed_product_and_request(self, team: Team) -> None:
        """One product that needs approval and one pending request for it, so the catalogue, the approvals
        queue and the inbox show something on first start. Seeded once: after the admin decides the request,
        a restart does not file another."""
        User = get_user_model()
        admin = User.objects.get(username="admin")
        # A tenant admin of the demo organisation is who the request notifies (the inbox).
        Membership.objects.get_or_create(
            user=admin, tenant=team.tenant, team=None, defaults={"role": Membership.Role.TENANT_ADMIN}
        )
        product = Product.objects.filter(tenant=team.tenant, name=DEMO_PRODUCT).first()
        if product is None:
            product = create_product(
                name=DEMO_PRODUCT,
                created_by=admin,
                tenant=team.tenant,
                description="The demo chat models (gpt-4o-mini, demo-chat), answered by the built-in demo provider.",
                aliases=list(ModelAlias.objects.filter(name__in=["gpt-4o-mini", "demo-chat"]).order_by("name")),
                requires_approval=True,
                default_rpm=60,
            )
        if Subscription.objects.filter(product=product).exists():
            return
        requester, is_new = User.objects.get_or_create(username="demo-dev", defaults={"email": DEMO_REQUESTER})
        if is_new:
            requester.set_unusable_password()  # a name on the request, not a login
            requester.save()
        Membership.objects.get_or_create(
            user=requester, tenant=team.tenant, team=team, defaults={"role": Membership.Role.TEAM_OWNER}
        )
        services.request_subscription(
            team=team,
            product=product,
            purpose="Prototype a support chatbot on the demo chat models.",
            expected_volume="about 1,000 calls a day",
            requested_by=requester,
        )

    def _load_demo_catalogue(self, gateway_url: str) -> None:
        provider, _ = Provider.objects.update_or_create(
            name="demo",
            defaults={"kind": "openai-compatible", "base_url": f"{gateway_url}/demo-upstream/v1", "timeout_s": 30},
        )
        for name, model, capabilities in [
            ("demo-chat-model", "demo-chat", ["chat", "tools", "json"]),
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
        _write_private(password_file, password)
        return password


def _write_private(path: Path, secret: str) -> None:
    # Created with mode 600 rather than chmod-ed after: the secret is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret)
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT
