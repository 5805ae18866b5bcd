"""The model catalogue over REST: every signed-in user reads it (never a credential), platform admins write it
through routing/services.py. Names cannot change (other entries and products refer to them)."""

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api.permissions import IsPlatformAdminOrReadOnly
from portal.api.views import APIDefaults
from routing import services
from routing.api import serializers
from routing.models import Deployment, ModelAlias, Provider


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
        entry = type(self).create_entry(values=self._values(dict(body.validated_data)), created_by=request.user)
        return Response(self.get_serializer(self._reloaded(entry)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: int) -> Response:
        entry = self.get_object()
        body = self.change_serializer_class(entry, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = self._values(dict(body.validated_data))
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
    replaces the whole list). Readable by everyone signed in, written by platform admins."""

    serializer_class = serializers.ModelAliasSerializer
    change_serializer_class = serializers.ModelAliasChangeSerializer

    def get_queryset(self):
        return ModelAlias.objects.prefetch_related("routes__deployment").order_by("name")

    @staticmethod
    def create_entry(*, values, created_by):
        return services.create_alias(values=values, created_by=created_by)

    @staticmethod
    def update_entry(alias, *, changes, updated_by):
        return services.update_alias(alias=alias, changes=changes, updated_by=updated_by)

    @extend_schema(request=serializers.ModelAliasChangeSerializer)
    def partial_update(self, request: Request, pk: int) -> Response:
        return super().partial_update(request, pk)
