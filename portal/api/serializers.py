"""Input and output shapes of /api/v1. Money and prices are exact decimal strings ("0.15"), never floats.

An id in a request body is looked up among the objects the caller can see (`Visible`): another tenant's id
is refused exactly like one that does not exist, so ids cannot be probed.
"""

import re
from collections.abc import Mapping
from datetime import timedelta

from django.db import models
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal import selectors
from portal.models import APIKey, AuditLogEntry, Invitation, Membership, Product, Subscription, Team, Tenant
from routing.models import ModelAlias

# Columns' ranges on PostgreSQL (SQLite stores anything): a number outside answers 400, not a DataError.
# Subclasses before their bases: the first match wins.
INTEGER_RANGES = {
    models.PositiveSmallIntegerField: (0, 2**15 - 1),
    models.SmallIntegerField: (-(2**15), 2**15 - 1),
    models.PositiveBigIntegerField: (0, 2**63 - 1),
    models.BigIntegerField: (-(2**63), 2**63 - 1),
    models.PositiveIntegerField: (0, 2**31 - 1),
    models.IntegerField: (-(2**31), 2**31 - 1),
}
# A TextField has no limit in the database: this one keeps a purpose, reason or description to a few pages.
TEXT_MAX_LENGTH = 5000
POSITIVE_INT_MAX = 2**31 - 1
ID_MAX = 2**63 - 1


class StrictTypes:
    """A serializer that takes JSON types as the schema states them. DRF would take `0` for the string "0",
    `"5"` or `5.0` for the integer 5 and `"yes"` for true: a client that sends the wrong type learns it (400)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {}
            for name, field in self.fields.items():
                expected = None if field.read_only or data.get(name) is None else _json_type_of(field)
                if expected and not _is_json_type(data[name], expected):
                    errors[name] = [f"Must be {expected}, not {type(data[name]).__name__}."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _json_type_of(field) -> str | None:
    if isinstance(field, serializers.CharField):
        return "a string"
    if isinstance(field, serializers.BooleanField):
        return "true or false"
    if isinstance(field, serializers.IntegerField | serializers.PrimaryKeyRelatedField):
        return "an integer"
    if isinstance(field, serializers.FloatField):
        return "a number"
    return None


def _is_json_type(value, expected: str) -> bool:
    if expected == "a string":
        return isinstance(value, str)
    if expected == "true or false":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if expected == "an integer" else isinstance(value, int | float)


class BoundedModelSerializer(StrictTypes, serializers.ModelSerializer):
    """A ModelSerializer whose inputs are all bounded before they reach a row or a log line: integers within
    their column's range, TextFields within TEXT_MAX_LENGTH (CharFields already have their max_length); and
    typed as the schema says (StrictTypes)."""

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        for column, (low, high) in INTEGER_RANGES.items():
            if isinstance(model_field, column):
                kwargs["min_value"] = max(kwargs.get("min_value", low), low)
                kwargs["max_value"] = min(kwargs.get("max_value", high), high)
                break
        if isinstance(model_field, models.TextField) and "max_length" not in kwargs:
            kwargs["max_length"] = TEXT_MAX_LENGTH
        return field_class, kwargs


class Visible(serializers.PrimaryKeyRelatedField):
    """A primary key among the rows `selector(user=...)` returns for the requesting user."""

    def __init__(self, selector, **kwargs) -> None:
        self.selector = selector
        super().__init__(**kwargs)

    def get_queryset(self):
        return self.selector(user=self.context["request"].user)


# Up to 9 digits before the point and 10 after, no sign. DecimalField(max_digits=20, decimal_places=10) would
# take 10 before it, but SQLite keeps decimals as floats: 9999999999.9999999999 comes back as 10000000000,
# which has 21 digits at 10 places, and every read of that row fails.
_DECIMAL = r"\d{1,9}(?:\.\d{1,10})?"
# The same, but not zero: a nonzero digit before the point, or else after it (without lookaheads, which
# schema tools do not all support: a fraction with its first nonzero digit after k zeros, k = 0..9).
_NONZERO_FRACTION = "|".join(f"0{{{k}}}[1-9]\\d{{0,{9 - k}}}" for k in range(10))
_POSITIVE_DECIMAL = rf"0{{0,8}}[1-9]\d{{0,8}}(?:\.\d{{1,10}})?|0{{1,9}}\.(?:{_NONZERO_FRACTION})"


class DecimalString(serializers.DecimalField):
    """DecimalField(max_digits=20, decimal_places=10) read and written as an exact decimal string: "0.15", "10"
    (or with all ten places, `shortest=False`: "0.1500000000"). Input must be such a string, matching the pattern
    the schema shows (no float, sign, exponent or spaces); `positive=True` refuses zero too."""

    default_error_messages = {
        "not_decimal_string": 'Send a decimal string such as "0.15" (at most 9 digits, 10 places).'
    }

    def __init__(self, *, positive: bool = False, shortest: bool = True, **kwargs) -> None:
        self.pattern = re.compile(_POSITIVE_DECIMAL if positive else _DECIMAL)
        self.shortest = shortest
        super().__init__(max_digits=20, decimal_places=10, coerce_to_string=True, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not self.pattern.fullmatch(data):
            self.fail("not_decimal_string")
        return super().to_internal_value(data)

    def to_representation(self, value):
        if value is None or not self.shortest:
            return super().to_representation(value)
        return format(value.normalize(), "f")


@extend_schema_field(OpenApiTypes.EMAIL)
class UserEmail(serializers.RelatedField):
    """A user by email address; null once the user has been deleted (the columns are SET_NULL)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value) -> str:
        return value.email or value.get_username()


# --- Tenants, teams and members -------------------------------------------------------------------------------


class TenantSerializer(BoundedModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["slug", "created_at"]


class TeamSerializer(BoundedModelSerializer):
    tenant = Visible(selectors.visible_tenants, queryset=Tenant.objects.all())

    class Meta:
        model = Team
        fields = ["id", "tenant", "name", "slug", "rpm_limit", "tpm_limit", "created_at"]
        read_only_fields = ["slug", "rpm_limit", "tpm_limit", "created_at"]  # changed by PATCH (RateLimits)


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

    class Meta:
        model = Product
        fields = [
            "id",
            "tenant",
            "name",
            "description",
            "aliases",
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
            raise serializers.ValidationError("Send rpm_limit and/or tpm_limit.")
        return attrs


class DecisionSerializer(StrictTypes, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=TEXT_MAX_LENGTH)


# --- API keys -------------------------------------------------------------------------------------------------


class APIKeySerializer(BoundedModelSerializer):
    """A key as listed: by its prefix, never its secret or hash."""

    team = Visible(selectors.visible_teams, queryset=Team.objects.all())
    subscriptions = Visible(
        selectors.visible_subscriptions, queryset=Subscription.objects.all(), many=True, required=False
    )

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
