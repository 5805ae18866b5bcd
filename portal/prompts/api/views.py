"""/api/v1/prompts: prompt templates over REST, with the console's permissions (portal/prompts/selectors.py).

A template the caller cannot read answers 404 (another tenant's, another team's unless shared); one they can
read but not change answers 403 on every write, before its body is looked at. Bodies are checked by the
services, whose errors name the field as a path in `param` (`messages[0].content`, `variables.ticker`).
"""

from collections.abc import Mapping

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import roles
from portal import selectors as portal_selectors
from portal.api.permissions import require
from portal.api.query import Filter
from portal.api.views import APIDefaults
from portal.errors import InvalidInput
from portal.prompts import selectors, services
from portal.prompts.api import serializers
from portal.prompts.services import PromptInvalid

MAX_VERSION = 2**31 - 1  # PositiveIntegerField


class PromptDefaults(APIDefaults):
    # (A comment, not a docstring: the schema would show it.) What the prompt views share: the API's defaults.
    pass


def _body(request: Request, shape: type, *, required: tuple = ()) -> dict:
    """The JSON object sent, with no field the shape does not have and every required one present."""
    data = request.data
    if not isinstance(data, Mapping):
        raise InvalidInput("the body must be a JSON object")
    known = shape().fields
    for name in data:
        if name not in known:
            raise PromptInvalid(f"unknown field {str(name)[:64]!r}", param=str(name)[:64])
    for name in required:
        if name not in data:
            raise PromptInvalid(f"{name} is required", param=name)
    return dict(data)


def _version_number(value, *, param: str = "version") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise PromptInvalid("a version is a positive integer", param=param)
    return value


def _readable(request: Request, pk: int):
    return get_object_or_404(selectors.templates_visible_to(request.user), pk=pk)


def _editable(request: Request, pk: int):
    template = _readable(request, pk)
    require(selectors.can_edit(request.user, template), "only the team's owners and the tenant's admins can do this")
    return template


def _read_shape(template, request: Request) -> dict:
    fresh = selectors.with_read_details(selectors.templates_visible_to(request.user)).get(pk=template.pk)
    return serializers.PromptSerializer(fresh).data


class PromptViewSet(PromptDefaults, viewsets.ReadOnlyModelViewSet):
    """Prompt templates the caller can read: their team's, their tenant's shared ones (all of a tenant's, for
    its admins and finance). The team's owners and the tenant's admins create them and change their draft."""

    serializer_class = serializers.PromptSerializer
    filters = (Filter("team", "team_id", "id"), Filter("slug", "slug", max_length=services.MAX_SLUG_CHARS))

    def get_queryset(self):
        return selectors.with_read_details(selectors.templates_visible_to(self.request.user))

    @extend_schema(request=serializers.PromptCreateSerializer, responses={201: serializers.PromptSerializer})
    def create(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, Mapping) else {}
        team = self._team(data.get("team"))
        # Who may comes before what was sent: a member learns nothing from a 400.
        require(roles.can_manage_team(request.user, team), "only the team's owners can create its prompts")
        body = _body(request, serializers.PromptCreateSerializer, required=("slug", "name", "alias", "messages"))
        body.pop("team")
        products = body.pop("products", None)
        with transaction.atomic():  # the template and its products, or neither
            template = services.create_template(actor=request.user, team=team, **body)
            if products is not None:
                services.set_products(template, actor=request.user, products=products)
        return Response(_read_shape(template, request), status=status.HTTP_201_CREATED)

    def _team(self, team_id):
        if isinstance(team_id, bool) or not isinstance(team_id, int):
            raise PromptInvalid("team is the id of the owning team", param="team")
        # Another tenant's team is refused like one that does not exist.
        team = None
        if 1 <= team_id < 2**63:
            team = portal_selectors.visible_teams(user=self.request.user).filter(pk=team_id).first()
        if team is None:
            raise PromptInvalid(f"no team {str(team_id)[:20]}", param="team")
        return team

    @extend_schema(request=serializers.PromptChangesSerializer, responses={200: serializers.PromptSerializer})
    def partial_update(self, request: Request, pk: int) -> Response:
        """Change the draft (versions never change); `products` replaces the bundling API products."""
        template = _editable(request, pk)
        changes = _body(request, serializers.PromptChangesSerializer)
        products = changes.pop("products", None)
        if not changes and products is None:
            raise InvalidInput("send at least one field to change")
        with transaction.atomic():
            if changes:
                template = services.update_draft(template, actor=request.user, **changes)
            if products is not None:
                template = services.set_products(template, actor=request.user, products=products)
        return Response(_read_shape(template, request))


class PromptVersionsView(PromptDefaults, mixins.ListModelMixin, generics.GenericAPIView):
    """`GET`: the template's versions, newest first. `POST {"message"?}`: freeze the draft as the next version
    (a draft equal to the latest version is refused)."""

    serializer_class = serializers.PromptVersionSummarySerializer

    def get_queryset(self):
        return selectors.versions_of(_readable(self.request, self.kwargs["pk"])).select_related("author")

    def get(self, request: Request, pk: int) -> Response:
        return self.list(request)

    @extend_schema(request=serializers.NewVersionSerializer, responses={201: serializers.PromptVersionSerializer})
    def post(self, request: Request, pk: int) -> Response:
        template = _editable(request, pk)
        body = _body(request, serializers.NewVersionSerializer)
        version = services.create_version(template, actor=request.user, message=body.get("message", ""))
        return Response(serializers.PromptVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class PromptVersionView(PromptDefaults, APIView):
    """One version, with its diff against the version before."""

    @extend_schema(responses={200: serializers.PromptVersionSerializer})
    def get(self, request: Request, pk: int, number: str) -> Response:
        template = _readable(request, pk)
        if not (number.isdigit() and 1 <= int(number) <= MAX_VERSION):
            raise exceptions.NotFound()
        version = selectors.version_of(template, int(number))
        if version is None:
            raise exceptions.NotFound()
        return Response(serializers.PromptVersionSerializer(version).data)


class PublishPromptView(PromptDefaults, APIView):
    """`POST {"environment", "version"}` serves one version there; `{"environment", "split": {"3": 90, "4": 10}}`
    splits its calls between two. Gateways serve it within one change-feed notification."""

    @extend_schema(request=serializers.PublishSerializer, responses={200: serializers.PublicationSerializer})
    def post(self, request: Request, pk: int) -> Response:
        template = _editable(request, pk)
        body = _body(request, serializers.PublishSerializer, required=("environment",))
        if ("version" in body) == ("split" in body):
            raise PromptInvalid("send either version or split", param="version")
        if "version" in body:
            number = _version_number(body["version"])
            if number is None:
                raise PromptInvalid("a version is a positive integer", param="version")
            publication = services.publish(
                template, actor=request.user, environment=body["environment"], version=number
            )
        else:
            publication = services.publish_split(
                template, actor=request.user, environment=body["environment"], split=body["split"]
            )
        return Response(serializers.PublicationSerializer(publication).data)


class RollbackPromptView(PromptDefaults, APIView):
    """`POST {"environment"}`: back to what the environment served before its current publication."""

    @extend_schema(request=serializers.RollbackSerializer, responses={200: serializers.PublicationSerializer})
    def post(self, request: Request, pk: int) -> Response:
        template = _editable(request, pk)
        body = _body(request, serializers.RollbackSerializer, required=("environment",))
        publication = services.rollback(template, actor=request.user, environment=body["environment"])
        return Response(serializers.PublicationSerializer(publication).data)


class RenderPromptView(PromptDefaults, APIView):
    """`POST {"variables", "version"?}`: the messages a call would send (the draft's when `version` is left
    out), without calling a model. Anyone who can read the template may render it."""

    @extend_schema(request=serializers.RenderSerializer, responses={200: serializers.RenderedSerializer})
    def post(self, request: Request, pk: int) -> Response:
        template = _readable(request, pk)
        body = _body(request, serializers.RenderSerializer)
        number = _version_number(body.get("version"))
        messages = selectors.render_preview(template, version=number, values=body.get("variables"))
        return Response({"version": number, "messages": messages})
