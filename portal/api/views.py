"""/api/v1 views of the portal: input and output only. Reads come from portal/selectors.py, every write is one
call to a service, and a service's PortalError becomes the answer through portal/api/exceptions.py.

Lists and their create (`GET`/`POST tenants/`) share a read-only viewset; each action on one object
(`POST subscriptions/{id}/approve`) is its own APIView. An object the caller cannot see answers 404, an object
they can see but may not act on 403.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import roles, selectors, services
from portal.api import serializers
from portal.api.auth import AUTHENTICATION_CLASSES
from portal.api.exceptions import handle
from portal.api.permissions import CanReadAuditLog, require
from portal.errors import InvalidInput, InvalidTransition
from portal.models import APIKey, Invitation
from portal.services.products import create_product


class APIDefaults:
    # What every /api/v1 view shares. (A comment, not a docstring: the schema would show it for every view
    # that has no docstring of its own.) Once settings name the exception handler, only the order of the
    # authentication classes is new here.

    authentication_classes = AUTHENTICATION_CLASSES
    permission_classes = [IsAuthenticated]

    def get_exception_handler(self):
        return handle


def _filtered(queryset, request: Request, params: dict[str, str]):
    """Exact-match filters from the query string: {query parameter: model lookup}."""
    for param, lookup in params.items():
        value = request.query_params.get(param)
        if value:
            try:
                queryset = queryset.filter(**{lookup: value})
            except (ValueError, DjangoValidationError):
                raise exceptions.ValidationError({param: ["not a valid value"]}) from None
    return queryset


def _filters(*names: str, numeric: tuple[str, ...] = ()) -> list[OpenApiParameter]:
    return [OpenApiParameter(n, OpenApiTypes.INT if n in numeric else OpenApiTypes.STR) for n in names]


# --- Tenants and teams ----------------------------------------------------------------------------------------


class TenantViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Tenants the caller belongs to (every tenant, for platform admins). Anyone signed in may create one and
    becomes its admin."""

    serializer_class = serializers.TenantSerializer

    def get_queryset(self):
        return selectors.visible_tenants(user=self.request.user)

    def create(self, request: Request) -> Response:
        body = serializers.TenantSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = services.create_tenant(name=body.validated_data["name"], admin=request.user)
        return Response(serializers.TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)


class TeamViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Teams the caller can see. Tenant admins create teams (and become their owner)."""

    serializer_class = serializers.TeamSerializer

    def get_queryset(self):
        return _filtered(selectors.visible_teams(user=self.request.user), self.request, {"tenant": "tenant_id"})

    def create(self, request: Request) -> Response:
        body = serializers.TeamSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        tenant = body.validated_data["tenant"]
        require(roles.is_tenant_admin(request.user, tenant), "only the tenant's admins can create teams")
        team = services.create_team(tenant=tenant, name=body.validated_data["name"], owner=request.user)
        return Response(serializers.TeamSerializer(team).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.RateLimitsSerializer, responses={200: serializers.TeamSerializer})
    def partial_update(self, request: Request, pk: int) -> Response:
        """Change the team's RPM/TPM limits (tenant and platform admins)."""
        team = self.get_object()
        changes = _rate_limits(request, tenant=team.tenant)
        team = services.set_rate_limits(target=team, changes=changes, changed_by=request.user)
        return Response(serializers.TeamSerializer(team).data)


def _rate_limits(request: Request, *, tenant) -> dict:
    # Who may comes before what was sent: a member learns nothing from a 400.
    require(roles.is_tenant_admin(request.user, tenant), "only the tenant's admins can change rate limits")
    body = serializers.RateLimitsSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def _visible_team(request: Request, team_id: int):
    return get_object_or_404(selectors.visible_teams(user=request.user), pk=team_id)


class TeamMembersView(APIDefaults, generics.GenericAPIView):
    """`GET`: the team's members, for anyone who can see the team. `POST {"email", "role"}`: invite someone
    (team owners and tenant admins); the answer carries the invitation's token once."""

    serializer_class = serializers.MembershipSerializer

    def get_queryset(self):
        return selectors.team_memberships(team=_visible_team(self.request, self.kwargs["team_id"]))

    def get(self, request: Request, team_id: int) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(serializers.MembershipSerializer(page, many=True).data)

    @extend_schema(request=serializers.InvitationSerializer, responses={201: serializers.NewInvitationSerializer})
    def post(self, request: Request, team_id: int) -> Response:
        team = _visible_team(request, team_id)
        require(roles.can_manage_team(request.user, team), "only the team's owners can invite members")
        body = serializers.InvitationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invitation = services.invite_member(team=team, invited_by=request.user, **body.validated_data)
        return Response(serializers.NewInvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class TeamInvitationsView(APIDefaults, generics.ListAPIView):
    """Invitations of a team, for its owners and the tenant's admins (tokens are never listed)."""

    serializer_class = serializers.InvitationSerializer

    def get_queryset(self):
        team = _visible_team(self.request, self.kwargs["team_id"])
        require(roles.can_manage_team(self.request.user, team), "only the team's owners can see its invitations")
        return selectors.team_invitations(team=team)


class AcceptInvitationView(APIDefaults, APIView):
    """`POST {"token"}`: join the team the invitation is for, as the signed-in user it was sent to."""

    @extend_schema(request=serializers.AcceptInvitationSerializer, responses={200: serializers.MembershipSerializer})
    def post(self, request: Request) -> Response:
        body = serializers.AcceptInvitationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invitation = get_object_or_404(Invitation.objects.select_related("team__tenant"), token=body.data["token"])
        membership = services.accept_invitation(invitation=invitation, user=request.user)
        return Response(serializers.MembershipSerializer(membership).data)


# --- Products and subscriptions -------------------------------------------------------------------------------


class ProductViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Platform products and the caller's tenants' products. Platform admins create products for every tenant
    (no `tenant`); tenant admins for their tenant (`tenant` may be left out when they administer one)."""

    serializer_class = serializers.ProductSerializer

    def get_queryset(self):
        return selectors.visible_products(user=self.request.user)

    def create(self, request: Request) -> Response:
        body = serializers.ProductSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        if "tenant" not in values:
            values["tenant"] = self._implied_tenant(request.user)
        product = create_product(created_by=request.user, **values)
        return Response(serializers.ProductSerializer(product).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _implied_tenant(user):
        if roles.is_platform_admin(user):
            return None  # a platform product
        administered = list(selectors.administered_tenants(user=user)[:2])
        if len(administered) > 1:
            raise InvalidInput("you administer several tenants: say which one in `tenant`")
        # None for someone who administers nothing: the service refuses them with 403.
        return administered[0] if administered else None


@extend_schema_view(list=extend_schema(parameters=_filters("status", "team", "product", numeric=("team", "product"))))
class SubscriptionViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Subscriptions of the teams the caller can see. Team owners request them (`status` starts `pending`,
    or `active` for a product that needs no approval)."""

    serializer_class = serializers.SubscriptionSerializer

    def get_queryset(self):
        subscriptions = selectors.visible_subscriptions(user=self.request.user)
        return _filtered(subscriptions, self.request, {"status": "status", "team": "team_id", "product": "product_id"})

    def create(self, request: Request) -> Response:
        body = serializers.SubscriptionSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        subscription = services.request_subscription(requested_by=request.user, **body.validated_data)
        subscription.refresh_from_db()  # a product without approval has been activated meanwhile
        return Response(serializers.SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.RateLimitsSerializer, responses={200: serializers.SubscriptionSerializer})
    def partial_update(self, request: Request, pk: int) -> Response:
        """Override the product's RPM/TPM defaults for this subscription (tenant and platform admins)."""
        subscription = self.get_object()
        changes = _rate_limits(request, tenant=subscription.team.tenant)
        subscription = services.set_rate_limits(target=subscription, changes=changes, changed_by=request.user)
        return Response(serializers.SubscriptionSerializer(subscription).data)


class SubscriptionDecisionView(APIDefaults, APIView):
    """`POST {"reason"?}`: tenant and platform admins only; a move the status does not allow answers 409."""

    decide = None  # the service, set by each subclass

    @extend_schema(request=serializers.DecisionSerializer, responses={200: serializers.SubscriptionSerializer})
    def post(self, request: Request, pk: int) -> Response:
        subscription = get_object_or_404(selectors.visible_subscriptions(user=request.user), pk=pk)
        body = serializers.DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decide = type(self).decide
        subscription = decide(subscription=subscription, decided_by=request.user, reason=body.data["reason"])
        return Response(serializers.SubscriptionSerializer(subscription).data)


class ApproveSubscriptionView(SubscriptionDecisionView):
    decide = services.approve_subscription


class RejectSubscriptionView(SubscriptionDecisionView):
    decide = services.reject_subscription


class SuspendSubscriptionView(SubscriptionDecisionView):
    decide = services.suspend_subscription


class ResumeSubscriptionView(SubscriptionDecisionView):
    decide = services.resume_subscription


# --- API keys -------------------------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(parameters=_filters("team", numeric=("team",))))
class APIKeyViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Keys of the teams the caller can see, by prefix. Team owners and tenant admins create portal keys,
    which reach only the aliases of their team's active subscriptions (or of the `subscriptions` given)."""

    serializer_class = serializers.APIKeySerializer

    def get_queryset(self):
        return _filtered(selectors.visible_api_keys(user=self.request.user), self.request, {"team": "team_id"})

    @extend_schema(request=serializers.APIKeySerializer, responses={201: serializers.IssuedKeySerializer})
    def create(self, request: Request) -> Response:
        body = serializers.APIKeySerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        require(roles.can_manage_team(request.user, values["team"]), "only the team's owners can create keys")
        issued = services.issue_api_key(
            source=APIKey.Source.PORTAL,
            created_by=request.user,
            subscriptions=list(values.pop("subscriptions", [])),
            **values,
        )
        answer = serializers.IssuedKeySerializer(issued.api_key, context={"secret": issued.secret})
        return Response(answer.data, status=status.HTTP_201_CREATED)


def _key_to_manage(request: Request, pk: int) -> APIKey:
    api_key = get_object_or_404(selectors.visible_api_keys(user=request.user).select_related("team__tenant"), pk=pk)
    require(roles.can_manage_team(request.user, api_key.team), "only the team's owners can manage its keys")
    return api_key


class RevokeAPIKeyView(APIDefaults, APIView):
    """`POST {"reason"?}`: the key stops working on every gateway process within one snapshot refresh."""

    @extend_schema(request=serializers.RevokeSerializer, responses={200: serializers.APIKeySerializer})
    def post(self, request: Request, pk: int) -> Response:
        api_key = _key_to_manage(request, pk)
        body = serializers.RevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if api_key.is_revoked:
            raise InvalidTransition("this key is revoked already")
        api_key = services.revoke_api_key(api_key=api_key, revoked_by=request.user, reason=body.data["reason"])
        return Response(serializers.APIKeySerializer(api_key).data)


class RotateAPIKeyView(APIDefaults, APIView):
    """`POST {"grace_seconds"?}`: a new key with the same scope (its secret shown once); the old one keeps
    working for the grace period."""

    @extend_schema(request=serializers.RotateSerializer, responses={201: serializers.IssuedKeySerializer})
    def post(self, request: Request, pk: int) -> Response:
        api_key = _key_to_manage(request, pk)
        body = serializers.RotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = services.rotate_api_key(api_key=api_key, rotated_by=request.user, grace_s=body.data["grace_seconds"])
        answer = serializers.IssuedKeySerializer(issued.api_key, context={"secret": issued.secret})
        return Response(answer.data, status=status.HTTP_201_CREATED)


# --- Audit log ------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=_filters("tenant", "action", "target_type", "target_id", numeric=("tenant",)))
)
class AuditLogViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Tenant admins read their tenants' entries, platform admins every entry; anyone else gets 403."""

    serializer_class = serializers.AuditLogEntrySerializer
    permission_classes = [CanReadAuditLog]

    def get_queryset(self):
        entries = selectors.visible_audit_log(user=self.request.user)
        lookups = {"tenant": "tenant_id", "action": "action", "target_type": "target_type", "target_id": "target_id"}
        return _filtered(entries, self.request, lookups)
