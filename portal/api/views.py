"""/api/v1 views of the portal: input and output only. Reads come from portal/selectors.py, every write is one
call to a service, and a service's PortalError becomes the answer through portal/api/exceptions.py.

Lists and their create (`GET`/`POST tenants/`) share a read-only viewset; each action on one object
(`POST subscriptions/{id}/approve`) is its own APIView. An object the caller cannot see answers 404, an object
they can see but may not act on 403.
"""

from collections.abc import Mapping

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import roles, selectors, services
from portal.api import serializers
from portal.api.auth import AUTHENTICATION_CLASSES
from portal.api.exceptions import handle
from portal.api.parsers import DepthSafeJSONParser
from portal.api.permissions import CanReadAuditLog, require
from portal.api.query import Filter, PageNumbers, filtered, require_path_ids
from portal.api.schema import ApiSchema
from portal.errors import InvalidInput, InvalidTransition
from portal.models import APIKey, AuditLogEntry, Invitation, Subscription
from portal.services.limits import RATE_LIMIT_FIELDS
from portal.services.products import create_product
from portal.services.residency import RESIDENCY_FIELDS


class APIDefaults:
    # What every /api/v1 view shares. (A comment, not a docstring: the schema would show it for every view
    # that has no docstring of its own.) Once settings name the exception handler, only the order of the
    # authentication classes is new here. Ids in the path are checked after authentication (an anonymous
    # caller gets 401 whatever the id) and before any query (portal/api/query.py).

    authentication_classes = AUTHENTICATION_CLASSES
    permission_classes = [IsAuthenticated]
    parser_classes = [DepthSafeJSONParser]  # the one body format the schema documents; anything else answers 415
    pagination_class = PageNumbers
    schema = ApiSchema()
    filters: tuple[Filter, ...] = ()  # exact-match query parameters of the list
    extra_error_codes: tuple[str, ...] = ()  # beyond what ApiSchema infers from the operation's shape

    def get_exception_handler(self):
        return handle

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        require_path_ids(kwargs)

    def filter_queryset(self, queryset):
        return filtered(queryset, self.request.query_params, self.filters)


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
    filters = (Filter("tenant", "tenant_id", "id"),)

    def get_queryset(self):
        return selectors.visible_teams(user=self.request.user)

    def create(self, request: Request) -> Response:
        body = serializers.TeamSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        tenant = body.validated_data["tenant"]
        require(roles.is_tenant_admin(request.user, tenant), "only the tenant's admins can create teams")
        team = services.create_team(tenant=tenant, name=body.validated_data["name"], owner=request.user)
        return Response(serializers.TeamSerializer(team).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.TeamChangesSerializer, responses={200: serializers.TeamSerializer})
    def partial_update(self, request: Request, pk: int) -> Response:
        """Change the team's RPM/TPM limits (tenant and platform admins) and/or its data residency and logging
        policy (its owners too)."""
        team = self.get_object()
        changes = _team_changes(request, team=team)
        limits = {name: changes[name] for name in RATE_LIMIT_FIELDS if name in changes}
        where = {name: changes[name] for name in RESIDENCY_FIELDS if name in changes}
        with transaction.atomic():  # all or none
            if limits:
                team = services.set_rate_limits(target=team, changes=limits, changed_by=request.user)
            if where:
                team = services.set_team_residency(team=team, changed_by=request.user, **where)
            if "stores_bodies" in changes:
                team = services.set_team_logging_policy(
                    team=team, changed_by=request.user, stores_bodies=changes["stores_bodies"]
                )
        return Response(serializers.TeamSerializer(team).data)


def _team_changes(request: Request, *, team) -> dict:
    # Who may comes before what was sent, as for rate limits: a member learns nothing from a 400. Only the
    # residency fields and the logging policy are a team owner's to change; anything else asks for a tenant
    # admin.
    sent = set(request.data) if isinstance(request.data, Mapping) else set()
    if sent & {*RESIDENCY_FIELDS, "stores_bodies"} and not sent & set(RATE_LIMIT_FIELDS):
        message = "only the team's owners and the tenant's admins can change its data residency and logging policy"
        require(roles.can_manage_team(request.user, team), message)
    else:
        require(roles.is_tenant_admin(request.user, team.tenant), "only the tenant's admins can change rate limits")
    body = serializers.TeamChangesSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def _rate_limits(request: Request, *, tenant) -> dict:
    # Who may comes before what was sent: a member learns nothing from a 400.
    require(roles.is_tenant_admin(request.user, tenant), "only the tenant's admins can change rate limits")
    body = serializers.RateLimitsSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def _visible_team(request: Request, team_id: int):
    return get_object_or_404(selectors.visible_teams(user=request.user), pk=team_id)


class TeamMembersView(APIDefaults, mixins.ListModelMixin, generics.GenericAPIView):
    """`GET`: the team's members, one page at a time, for anyone who can see the team. `POST {"email", "role"}`:
    invite someone (team owners and tenant admins); the answer carries the invitation's token once."""

    serializer_class = serializers.MembershipSerializer

    def get_queryset(self):
        return selectors.team_memberships(team=_visible_team(self.request, self.kwargs["team_id"]))

    def get(self, request: Request, team_id: int) -> Response:
        return self.list(request)

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

    extra_error_codes = ("404",)  # no invitation has this token

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


class SubscriptionViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Subscriptions of the teams the caller can see. Team owners request them (`status` starts `pending`,
    or `active` for a product that needs no approval)."""

    serializer_class = serializers.SubscriptionSerializer
    filters = (
        Filter("status", "status", "choice", choices=tuple(Subscription.Status.values)),
        Filter("team", "team_id", "id"),
        Filter("product", "product_id", "id"),
    )

    def get_queryset(self):
        return selectors.visible_subscriptions(user=self.request.user)

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
    extra_error_codes = ("409",)

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


class APIKeyViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Keys of the teams the caller can see, by prefix. Team owners and tenant admins create portal keys,
    which reach only the aliases of their team's active subscriptions (or of the `subscriptions` given)."""

    serializer_class = serializers.APIKeySerializer
    filters = (Filter("team", "team_id", "id"),)

    def get_queryset(self):
        return selectors.visible_api_keys(user=self.request.user)

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

    extra_error_codes = ("409",)  # revoked already

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
    working for the grace period. A key is rotated once: its successor is rotated next (409 otherwise)."""

    extra_error_codes = ("409",)

    @extend_schema(request=serializers.RotateSerializer, responses={201: serializers.IssuedKeySerializer})
    def post(self, request: Request, pk: int) -> Response:
        api_key = _key_to_manage(request, pk)
        body = serializers.RotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = services.rotate_api_key(api_key=api_key, rotated_by=request.user, grace_s=body.data["grace_seconds"])
        answer = serializers.IssuedKeySerializer(issued.api_key, context={"secret": issued.secret})
        return Response(answer.data, status=status.HTTP_201_CREATED)


# --- Audit log ------------------------------------------------------------------------------------------------


class AuditLogViewSet(APIDefaults, viewsets.ReadOnlyModelViewSet):
    """Tenant admins read their tenants' entries, platform admins every entry; anyone else gets 403."""

    serializer_class = serializers.AuditLogEntrySerializer
    permission_classes = [CanReadAuditLog]
    filters = (
        Filter("tenant", "tenant_id", "id"),
        Filter("action", "action", max_length=AuditLogEntry._meta.get_field("action").max_length),
        Filter("target_type", "target_type", max_length=AuditLogEntry._meta.get_field("target_type").max_length),
        Filter("target_id", "target_id", max_length=AuditLogEntry._meta.get_field("target_id").max_length),
    )

    def get_queryset(self):
        return selectors.visible_audit_log(user=self.request.user)
