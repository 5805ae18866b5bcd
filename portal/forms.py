"""Console forms. They validate input and offer only choices the user may pick; services do the writing."""

import re
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from portal.models import Membership, Product, Subscription, Team, Tenant
from portal.services import residency

_TEXTAREA = {"rows": 3}


class CreateTeamForm(forms.Form):
    """A team in one of the user's organisations, or a new organisation when they have none to administer."""

    organisation = forms.ModelChoiceField(queryset=Tenant.objects.none(), empty_label=None)
    organisation_name = forms.CharField(
        max_length=200,
        label="Organisation name",
        help_text="Your company or group, e.g. “Acme Corp”. You will be its admin.",
    )
    team_name = forms.CharField(
        max_length=200, label="Team name", help_text="Keys, subscriptions and usage belong to a team."
    )

    def __init__(self, *args, organisations: QuerySet[Tenant], **kwargs):
        super().__init__(*args, **kwargs)
        # With an organisation to administer, the team goes there; otherwise the user founds one.
        if organisations.exists():
            self.fields["organisation"].queryset = organisations
            del self.fields["organisation_name"]
        else:
            del self.fields["organisation"]

    @property
    def creates_organisation(self) -> bool:
        return "organisation_name" in self.fields

    # The services refuse these too; checking here puts the message beside the field that caused it.
    def clean_organisation_name(self) -> str:
        name = self.cleaned_data["organisation_name"].strip()
        if Tenant.objects.filter(name=name).exists():
            raise forms.ValidationError("That name is taken. Pick another, or ask its admin to invite you.")
        return name

    def clean(self):
        data = super().clean()
        organisation, team_name = data.get("organisation"), (data.get("team_name") or "").strip()
        if organisation and Team.objects.filter(tenant=organisation, name=team_name).exists():
            self.add_error("team_name", f"{organisation.name} already has a team with that name.")
        return data


class InviteMemberForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(
        choices=[(Membership.Role.MEMBER, "Member"), (Membership.Role.TEAM_OWNER, "Team owner")],
        initial=Membership.Role.MEMBER,
        help_text="Owners manage keys, members and subscriptions; members can see them.",
    )


class SubscribeForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    purpose = forms.CharField(
        widget=forms.Textarea(attrs=_TEXTAREA),
        max_length=2000,
        help_text="What will this team build with it? Admins read this before approving.",
    )
    expected_volume = forms.CharField(
        max_length=200,
        required=False,
        label="Expected volume",
        widget=forms.TextInput(attrs={"placeholder": "e.g. 2M tokens a month"}),
    )

    def __init__(self, *args, teams: QuerySet[Team], product: Product, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
        self.product = product

    def clean_team(self) -> Team:
        team = self.cleaned_data["team"]
        held = Subscription.objects.filter(
            team=team, product=self.product, status__in=[Subscription.Status.PENDING, Subscription.Status.ACTIVE]
        ).first()
        if held:
            raise forms.ValidationError(f"{team.name} has this product already ({held.get_status_display().lower()}).")
        return team


class ResidencyNamesField(forms.CharField):
    """Regions or tags typed as one line, "eu, us-east"; cleaned to the list the services store."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        # Room for the most names allowed, each at its longest, with ", " between them.
        kwargs.setdefault("max_length", residency.MAX_ENTRIES * (residency.SLUG_MAX_LENGTH + 2))
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def clean(self, value) -> list[str]:
        text = super().clean(value)
        names = [name for name in re.split(r"[,\s]+", text) if name]
        try:
            return residency.cleaned_slugs(names, field="names")
        except residency.InvalidResidency as exc:
            raise forms.ValidationError(exc.sentence()) from None


def _regions_help(team: Team) -> str:
    if team.allowed_regions:
        return f"Comma-separated, within the team's: {', '.join(team.allowed_regions)}. Empty: all of those."
    return "Comma-separated, e.g. “eu”. Empty: any region the team may use."


class ResidencyForm(forms.Form):
    """A team's data residency, on its page (posted there with form=residency)."""

    NAME = "residency"

    allowed_regions = ResidencyNamesField(
        label="Allowed regions",
        help_text="Comma-separated, e.g. “eu, us-east”. Calls go only to deployments in these regions. "
        "Empty: any region.",
    )
    required_tags = ResidencyNamesField(
        label="Required tags",
        help_text="Comma-separated, e.g. “zero-retention”. Calls go only to deployments carrying every one.",
    )


class LoggingPolicyForm(forms.Form):
    """A team's logging policy, on its page (posted there with form=logging)."""

    NAME = "logging"

    stores_bodies = forms.BooleanField(
        required=False,
        label="Store bodies of calls",
        help_text="Kept: /v1/responses answers, so that previous_response_id can continue a conversation. "
        "Unticked: nothing is kept (previous_response_id is refused) and the responses stored so far are deleted. "
        "Usage records are kept either way.",
    )


EXPIRY_CHOICES = [("", "Never"), ("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year")]


class NewKeyForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        help_text="Where the key is used, e.g. “checkout-service prod”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    subscriptions = forms.ModelMultipleChoiceField(
        queryset=Subscription.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to reach every active subscription of the team, now and later.",
    )
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, label="Expires"
    )
    rpm_limit = forms.IntegerField(
        required=False, min_value=1, label="Requests per minute", help_text="Optional limit for this key."
    )
    tpm_limit = forms.IntegerField(
        required=False, min_value=1, label="Tokens per minute", help_text="Optional limit for this key."
    )
    allowed_regions = ResidencyNamesField(label="Allowed regions")
    required_tags = ResidencyNamesField(
        label="Required tags",
        help_text="Comma-separated; deployments must carry these on top of the team's own required tags.",
    )

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team
        self.fields["allowed_regions"].help_text = _regions_help(team)
        if team.required_tags:
            self.fields["required_tags"].help_text += f" The team requires: {', '.join(team.required_tags)}."
        self.fields["subscriptions"].queryset = (
            Subscription.objects.filter(team=team, status=Subscription.Status.ACTIVE)
            .select_related("product")
            .order_by("product__name")
        )
        self.fields["subscriptions"].label_from_instance = lambda subscription: subscription.product.name

    def clean(self):
        data = super().clean()
        # The service refuses this too; checking here puts the message beside the field.
        if "allowed_regions" in data:
            outside = residency.regions_outside_team(team=self.team, regions=data["allowed_regions"])
            if outside:
                listed = ", ".join(self.team.allowed_regions)
                self.add_error("allowed_regions", f"Not among the team's regions ({listed}): {', '.join(outside)}.")
        return data

    def expires_at(self):
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None


GRACE_CHOICES = [
    (0, "Old key ends now"),
    (3600, "Old key lasts 1 hour"),
    (24 * 3600, "Old key lasts 24 hours"),
    (7 * 24 * 3600, "Old key lasts 7 days"),
]


class RotateKeyForm(forms.Form):
    grace_s = forms.TypedChoiceField(choices=GRACE_CHOICES, coerce=int, initial=24 * 3600, label="Grace period")


class RevokeKeyForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class DecisionForm(forms.Form):
    """Approve, suspend and resume may carry a note; a rejection must say why (the team reads it)."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, required=False)

    def __init__(self, *args, reason_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required
        if reason_required:
            self.fields["reason"].error_messages["required"] = "Say why, so the team knows what to change."


class NewProductForm(forms.Form):
    """Publish an API product. Platform admins may offer it to every tenant; tenant admins to their own."""

    EVERY_TENANT = ""

    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    tenant = forms.ChoiceField(label="Offered to", required=False)
    aliases = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, label="Models", help_text="The aliases the product grants."
    )
    requires_approval = forms.BooleanField(required=False, initial=True, label="Subscribing needs an admin's approval")
    default_rpm = forms.IntegerField(required=False, min_value=1, label="Requests per minute")
    default_tpm = forms.IntegerField(required=False, min_value=1, label="Tokens per minute")
    monthly_budget_usd = forms.DecimalField(
        required=False, min_value=0, max_digits=20, decimal_places=2, label="Monthly budget (USD)"
    )

    def __init__(self, *args, tenants: QuerySet[Tenant], may_publish_to_all: bool, **kwargs):
        from routing.models import ModelAlias

        super().__init__(*args, **kwargs)
        self.fields["aliases"].queryset = ModelAlias.objects.order_by("name")
        choices = [(self.EVERY_TENANT, "Every organisation")] if may_publish_to_all else []
        choices += [(str(tenant.pk), tenant.name) for tenant in tenants.order_by("name")]
        self.fields["tenant"].choices = choices
        self._tenants = {str(tenant.pk): tenant for tenant in tenants}
        self._may_publish_to_all = may_publish_to_all

    def clean_tenant(self) -> Tenant | None:
        value = self.cleaned_data.get("tenant") or self.EVERY_TENANT
        if value == self.EVERY_TENANT:
            if not self._may_publish_to_all:
                raise forms.ValidationError("Choose one of your organisations.")
            return None
        return self._tenants[value]


class BudgetForm(forms.Form):
    """A budget as /api/v1/budgets/ takes it. The target is one choice, "scope:id", among the tenants, teams,
    keys and subscriptions the user administers; billing.budgets validates the rest beside its field."""

    target = forms.ChoiceField(label="Applies to", help_text="An organisation, a team, one key or one subscription.")
    period = forms.ChoiceField(
        choices=[("monthly", "Monthly"), ("daily", "Daily")],
        help_text="A UTC calendar month or day. It covers the whole period: spend before the budget was made counts.",
    )
    limit_usd = forms.DecimalField(
        required=False, max_digits=20, decimal_places=10, label="Limit (USD)", help_text="Set this, tokens, or both."
    )
    limit_tokens = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, label="Limit (tokens)")
    action = forms.ChoiceField(
        choices=[("block", "Block calls"), ("downgrade", "Downgrade to another model")],
        label="At 100%",
        help_text="Blocked calls get HTTP 429 until the period ends; downgraded ones go to the alias below.",
    )
    downgrade_alias = forms.ChoiceField(required=False, label="Downgrade to")
    thresholds = forms.CharField(
        required=False,
        max_length=200,
        initial="80, 100",
        label="Notify at (%)",
        help_text="Whole percentages, comma-separated: admins and finance (and team owners) hear when each is crossed.",
    )
    webhook_url = forms.URLField(required=False, max_length=500, label="Webhook URL")
    is_active = forms.BooleanField(required=False, initial=True, label="Active (enforced and shown on dashboards)")

    def __init__(self, *args, targets: list[tuple[str, list[tuple[str, str]]]], aliases: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = targets
        self._targets = {value for _, options in targets for value, _ in options}
        self.fields["downgrade_alias"].choices = [("", "—")] + [(name, name) for name in aliases]

    def clean_target(self) -> tuple[str, int]:
        value = self.cleaned_data["target"]
        if value not in self._targets:
            raise forms.ValidationError("Choose one of the listed targets.")
        scope, target_id = value.split(":")
        return scope, int(target_id)

    def clean_thresholds(self) -> list[int]:
        text = self.cleaned_data["thresholds"].replace(";", ",")
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("Whole percentages separated by commas, e.g. 50, 80, 100.") from None

    def budget_fields(self) -> dict:
        """The cleaned values as billing.budgets.create_budget / update_budget take them."""
        data = self.cleaned_data
        scope, target_id = data["target"]
        return {
            "scope": scope,
            "target_id": target_id,
            "period": data["period"],
            "limit_usd": data["limit_usd"],
            "limit_tokens": data["limit_tokens"],
            "action": data["action"],
            "downgrade_alias": data["downgrade_alias"],
            "thresholds": data["thresholds"],
            "webhook_url": data["webhook_url"],
            "is_active": data["is_active"],
        }


class QuotaForm(forms.Form):
    """A subscription's RPM/TPM and monthly budget, set by an admin when approving or later. Empty RPM/TPM
    follow the product's defaults; an empty budget means the subscription has no budget of its own."""

    rpm_limit = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1, label="Requests per minute")
    tpm_limit = forms.IntegerField(required=False, min_value=1, max_value=2**31 - 1, label="Tokens per minute")
    monthly_budget_usd = forms.DecimalField(
        required=False,
        min_value=Decimal("0.0000000001"),
        max_digits=20,
        decimal_places=10,
        label="Monthly budget (USD)",
    )

    def __init__(self, *args, product: Product, **kwargs):
        super().__init__(*args, **kwargs)
        for name, default in (("rpm_limit", product.default_rpm), ("tpm_limit", product.default_tpm)):
            shown = f"{default:,}" if default else "no limit"
            self.fields[name].help_text = f"Empty: the product's default ({shown})."
            self.fields[name].widget.attrs["placeholder"] = str(default or "")
        self.fields[
            "monthly_budget_usd"
        ].help_text = "Calls are refused (429) once the subscription spends this in a calendar month. Empty: no budget."
