"""Input and output shapes of /api/v1. Money and prices are exact decimal strings ("0.15"), never floats.

An id in a request body is looked up among the objects the caller can see (`Visible`): another tenant's id
is refused exactly like one that does not exist, so ids cannot be probed.
"""

from datetime import timedelta

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal import selectors
from portal.api.inputs import POSITIVE_INT_MAX, TEXT_MAX_LENGTH, BoundedModelSerializer, DecimalString, StrictTypes
from portal.models import APIKey, AuditLogEntry, Invitation, Membership, Product, Subscription, Team, Tenant
from portal.services import residency
from routing.models import ModelAlias


class Visible(serializers.PrimaryKeyRelatedField):
    """A primary key among the rows `selector(user=...)` returns for the requesting user."""

    def __init__(self, selector, **kwargs) -> None:
        self.selector = selector
        super().__init__(**kwargs)

    def get_queryset(self):
        return self.selector(user=self.context["request"].user)


@extend_schema_field(OpenApiTypes.EMAIL)
class UserEmail(serializers.RelatedField):
    """A user by email address; null once the user has been deleted (the columns are SET_NULL)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value) -> str:
        return value.email or value.get_username()


class ResidencyNames(serializers.ListField):
    """A list of regions or tags: short names of letters, digits, hyphens and underscores, stored lowercase,
    each once (portal/services/residency.py checks them; this only answers in the field's name)."""

    def __init__(self, **kwargs) -> None:
        name = serializers.CharField(
            min_length=1,
            max_length=residency.SLUG_MAX_LENGTH,
            validators=[RegexValidator(r"^[A-Za-z0-9_-]+$")],
        )
        super().__init__(child=name, max_length=residency.MAX_ENTRIES, **kwargs)

    def to_internal_value(self, data):
        try:
            return residency.cleaned_slugs(data, field=self.field_name)
        except residency.InvalidResidency as exc:
            raise serializers.ValidationError(exc.problem) from None


# --- Tenants, teams and members -------------------------------------------------------------------------------


class TenantSerializer(BoundedModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["slug", "created_at"]


class TeamSerializer(BoundedModelSerializer):
    tenant = Visible(selectors.visible_tenants, queryset=Tenant.objects.all())
    allowed_regions = ResidencyNames(read_only=True, help_text="Regions its keys may reach; empty: any region.")
    required_tags = ResidencyNames(read_only=True, help_text="Tags every deployment its keys reach must carry.")
    stores_bodies = serializers.BooleanField(
        read_only=True, help_text="Logging policy: false keeps no bodies (no stored /v1/responses)."
    )

    class Meta:
        model = Team
        fields = [
            "id",
            "tenant",
            "name",
            "slug",
            "rpm_limit",
            "tpm_limit",
            *residency.RESIDENCY_FIELDS,
            "stores_bodies",
            "created_at",
        ]
        # Changed by PATCH (TeamChangesSerializer).
        read_only_fields = ["slug", "rpm_limit", "tpm_limit", "stores_bodies", "created_at"]


class MembershipSerializer(BoundedModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "team", "created_at"]
        read_only_fields = fields


class InvitationSerializer(BoundedModelSerializer):
    invited_by = UserEmail(read_only=True)
    # Every role is accepted here (one enum in the schema); the service allows only member and team_owner.
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.MEMBER)

    class Meta:
        model = Invitation
        fields = ["id", "team", "email", "role", "invited_by", "accepted_at", "created_at"]
        read_only_fields = ["team", "invited_by", "accepted_at", "created_at"]


class NewInvitationSerializer(InvitationSerializer):
    """The invitation as created: its token appears here once, for whoever delivers it to the invitee."""

    token = serializers.CharField(read_only=True)

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token"]


class AcceptInvitationSerializer(StrictTypes, serializers.Serializer):
    token = serializers.CharField(max_length=Invitation._meta.get_field("token").max_length)


# --- Products and subscriptions -------------------------------------------------------------------------------


class ProductSerializer(BoundedModelSerializer):
    tenant = Visible(selectors.visible_tenants, queryset=Tenant.objects.all(), required=False, allow_null=True)
    aliases = serializers.SlugRelatedField(
        many=True, slug_field="name", queryset=ModelAlias.objects.all(), required=False
    )
    monthly_budget_usd = DecimalString(required=False, allow_null=True)
    # Bundled by the prompt's own `products` (PATCH /api/v1/prompts/{id}), within the product's tenant.
    prompts = serializers.SlugRelatedField(
        many=True, slug_field="slug", read_only=True, help_text="Slugs of the prompt APIs subscribers may call."
    )

    class Meta:
        model = Product
        fields = [
            "id",
            "tenant",
            "name",
            "description",
            "aliases",
            "prompts",
            "requires_approval",
            "default_rpm",
            "default_tpm",
            "monthly_budget_usd",
            "is_published",
            "created_at",
        ]
        read_only_fields = ["is_published", "created_at"]
        # Uniqueness is the service's to check (platform products have no tenant for the constraint to see).
        validators: list = []
        extra_kwargs = {"default_rpm": {"min_value": 1}, "default_tpm": {"min_value": 1}}


class SubscriptionSerializer(BoundedModelSerializer):
    team = Visible(selectors.visible_teams, queryset=Team.objects.all())
    product = Visible(selectors.visible_products, queryset=Product.objects.all())
    requested_by = UserEmail(read_only=True)
    decided_by = UserEmail(read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "team",
            "product",
            "status",
            "purpose",
            "expected_volume",
            "requested_by",
            "decided_by",
            "decided_at",
            "reason",
            "rpm_limit",
            "tpm_limit",
            "created_at",
            "updated_at",
        ]
        # rpm_limit/tpm_limit: overrides of the product's defaults, changed by PATCH (RateLimitsSerializer).
        read_only_fields = ["status", "decided_at", "reason", "rpm_limit", "tpm_limit", "created_at", "updated_at"]


class RateLimitsSerializer(StrictTypes, serializers.Serializer):
    """`PATCH teams/{id}` and `subscriptions/{id}`: RPM/TPM overrides; `null` clears one (a subscription then
    uses its product's default). Only these two fields can be changed this way."""

    refuses_unknown_fields = True

    rpm_limit = serializers.IntegerField(min_value=1, max_value=POSITIVE_INT_MAX, allow_null=True, required=False)
    tpm_limit = serializers.IntegerField(min_value=1, max_value=POSITIVE_INT_MAX, allow_null=True, required=False)

    def validate(self, attrs: dict) -> dict:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["This field cannot be changed here."] for name in unknown})
        if not attrs:
            *others, last = self.fields
            raise serializers.ValidationError(f"Send {', '.join(others)} and/or {last}.")
        return attrs


class TeamChangesSerializer(RateLimitsSerializer):
    """`PATCH teams/{id}`: the team's RPM/TPM limits (tenant admins), and its data residency and logging policy
    (team owners too): `allowed_regions` replaces the regions its keys may reach ([] for any region),
    `required_tags` the tags every deployment they reach must carry, `stores_bodies` false keeps none of its
    calls' bodies (and deletes its stored responses). Fields left out stay as they are."""

    allowed_regions = ResidencyNames(required=False)
    required_tags = ResidencyNames(required=False)
    stores_bodies = serializers.BooleanField(required=False)


class DecisionSerializer(StrictTypes, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=TEXT_MAX_LENGTH)


# --- API keys -------------------------------------------------------------------------------------------------


class APIKeySerializer(BoundedModelSerializer):
    """A key as listed: by its prefix, never its secret or hash."""

    team = Visible(selectors.visible_teams, queryset=Team.objects.all())
    subscriptions = Visible(
        selectors.visible_subscriptions, queryset=Subscription.objects.all(), many=True, required=False
    )
    allowed_regions = ResidencyNames(
        required=False, help_text="Within the team's regions, when it has some; empty: the team's."
    )
    required_tags = ResidencyNames(required=False, help_text="Required on top of the team's tags.")

    class Meta:
        model = APIKey
        fields = [
            "id",
            "prefix",
            "name",
            "team",
            "source",
            "subscriptions",
            "allowed_aliases",
            "expires_at",
            "rpm_limit",
            "tpm_limit",
            *residency.RESIDENCY_FIELDS,
            "is_revoked",
            "revoked_at",
            "last_used_at",
            "rotated_from",
            "created_at",
        ]
        read_only_fields = [
            "prefix",
            "source",
            "allowed_aliases",
            "is_revoked",
            "revoked_at",
            "last_used_at",
            "rotated_from",
            "created_at",
        ]
        extra_kwargs = {"rpm_limit": {"min_value": 1}, "tpm_limit": {"min_value": 1}}

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value

    def validate(self, attrs: dict) -> dict:
        if "team" in attrs:
            try:
                residency.check_key_residency(
                    team=attrs["team"],
                    allowed_regions=attrs.get("allowed_regions"),
                    required_tags=attrs.get("required_tags"),
                )
            except residency.InvalidResidency as exc:
                raise serializers.ValidationError({exc.field: [exc.problem]}) from None
        return attrs


class IssuedKeySerializer(APIKeySerializer):
    """A key just created or rotated: the only answer that carries its secret."""

    secret = serializers.SerializerMethodField()

    class Meta(APIKeySerializer.Meta):
        fields = [*APIKeySerializer.Meta.fields, "secret"]

    @extend_schema_field(serializers.CharField(help_text="The whole key. Shown this once; store it now."))
    def get_secret(self, api_key: APIKey) -> str:
        return self.context["secret"]


class RevokeSerializer(StrictTypes, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=TEXT_MAX_LENGTH)


class RotateSerializer(StrictTypes, serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        required=False,
        default=24 * 3600,
        min_value=0,
        max_value=int(timedelta(days=30).total_seconds()),
        help_text="How long the old key keeps working (default one day, at most 30 days).",
    )


# --- Audit log ------------------------------------------------------------------------------------------------


class AuditLogEntrySerializer(BoundedModelSerializer):
    actor = UserEmail(read_only=True)

    class Meta:
        model = AuditLogEntry
        fields = [
            "id",
            "tenant",
            "actor",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "reason",
            "details",
            "created_at",
        ]
        read_only_fields = fields
