"""The model catalogue over REST: every signed-in user reads it (never a credential), platform admins write it
through routing/services.py. Names cannot change (other entries and products refer to them)."""

import re
from contextlib import contextmanager

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api.permissions import IsPlatformAdminOrReadOnly
from portal.api.views import APIDefaults
from routing import selectors, services
from routing.api import serializers
from routing.catalogue import CatalogueError
from routing.models import Deployment, ModelAlias, Provider

# "aliases[0].routing.retry.max_attempts: must be ..." -> field "routing", the rest of the path, the message
_ENTRY_PROBLEM = re.compile(r"^[a-z]+\[\d+\](?:\.(?P<field>[a-z_0-9]+)(?P<within>[^:]*))?: (?P<message>.*)$", re.S)


@contextmanager
def problems_by_field():
    """A refused entry answers 400 with its problems under the fields they are about, as a serializer's are;
    a problem inside a mapping keeps its path: {"routing": ["routing.retry.max_attempts: must be ..."]}."""
    try:
        yield
    except CatalogueError as exc:
        problems: dict[str, list[str]] = {}
        for error in exc.errors:
            match = _ENTRY_PROBLEM.match(error)
            if match is None or match["field"] is None:
                problems.setdefault("non_field_errors", []).append(match["message"] if match else error)
            elif match["within"].startswith("."):  # a key inside a mapping (a list's index is left out, as ever)
                problems.setdefault(match["field"], []).append(f"{match['field']}{match['within']}: {match['message']}")
            else:
                problems.setdefault(match["field"], []).append(match["message"])
        raise ValidationError(problems) from None


class CatalogueViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Every signed-in user reads the catalogue; platform admins create (`POST`) and change (`PATCH`) entries."""

    permission_classes = [IsPlatformAdminOrReadOnly]
    change_serializer_class: type
    create_entry = update_entry = None  # services, set by each subclass

    def _values(self, validated: dict) -> dict:
        return validated

    def create(self, request: Request) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        with problems_by_field():
            entry = type(self).create_entry(values=self._values(dict(body.validated_data)), created_by=request.user)
        return Response(self.get_serializer(self._reloaded(entry)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: int) -> Response:
        entry = self.get_object()
        body = self.change_serializer_class(entry, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = self._values(dict(body.validated_data))
        with problems_by_field():
            entry = type(self).update_entry(entry, changes=changes, updated_by=request.user)
        return Response(self.get_serializer(self._reloaded(entry)).data)

    def _reloaded(self, entry):
        return self.get_queryset().get(pk=entry.pk)


class ProviderViewSet(CatalogueViewSet):
    """Upstream providers. `api_key` is write-only and stored encrypted; `has_api_key` says whether one is stored.
    `base_url` must pass the platform's upstream checks (no metadata or link-local addresses; loopback and
    private ones only where the platform allows them). Readable by everyone signed in, written by platform
    admins."""

    serializer_class = serializers.ProviderSerializer
    change_serializer_class = serializers.ProviderChangeSerializer

    def get_queryset(self):
        return Provider.objects.order_by("name")

    @staticmethod
    def create_entry(*, values, created_by):
        return services.create_provider(values=values, created_by=created_by)

    @staticmethod
    def update_entry(provider, *, changes, updated_by):
        return services.update_provider(provider=provider, changes=changes, updated_by=updated_by)

    @extend_schema(request=serializers.ProviderChangeSerializer)
    def partial_update(self, request: Request, pk: int) -> Response:
        return super().partial_update(request, pk)


class DeploymentViewSet(CatalogueViewSet):
    """Models served by a provider (named by `provider`), with prices in USD per million tokens as decimal
    strings. Readable by everyone signed in, written by platform admins."""

    serializer_class = serializers.DeploymentSerializer
    change_serializer_class = serializers.DeploymentChangeSerializer

    def get_queryset(self):
        return Deployment.objects.select_related("provider").order_by("name")

    def _values(self, validated: dict) -> dict:
        if "provider" in validated:
            validated["provider"] = validated["provider"].name
        return validated

    @staticmethod
    def create_entry(*, values, created_by):
        return services.create_deployment(values=values, created_by=created_by)

    @staticmethod
    def update_entry(deployment, *, changes, updated_by):
        return services.update_deployment(deployment=deployment, changes=changes, updated_by=updated_by)

    @extend_schema(request=serializers.DeploymentChangeSerializer)
    def partial_update(self, request: Request, pk: int) -> Response:
        return super().partial_update(request, pk)


class ModelAliasViewSet(CatalogueViewSet):
    """The names clients send as `model`; `deployments` lists deployment names in priority order (a PATCH
    replaces the whole list), `routing` says how they are chosen (the catalogue's `routing:` mapping; a PATCH
    replaces it whole, null or {} routes by priority); `learned_model` is the learned router it routes with
    (read-only: `manage.py train_router` makes them). Readable by everyone signed in, written by platform admins."""

    serializer_class = serializers.ModelAliasSerializer
    change_serializer_class = serializers.ModelAliasChangeSerializer

    def get_queryset(self):
        aliases = ModelAlias.objects.prefetch_related("routes__deployment").order_by("name")
        return selectors.with_latest_learned_router(aliases)

    @staticmethod
    def create_entry(*, values, created_by):
        return services.create_alias(values=values, created_by=created_by)

    @staticmethod
    def update_entry(alias, *, changes, updated_by):
        return services.update_alias(alias=alias, changes=changes, updated_by=updated_by)

    @extend_schema(request=serializers.ModelAliasChangeSerializer)
    def partial_update(self, request: Request, pk: int) -> Response:
        return super().partial_update(request, pk)
