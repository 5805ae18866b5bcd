"""Shapes of /api/v1/prompts. Answers are read from the rows; request bodies are described here for the schema,
but checked by portal/prompts/services.py and core/prompts.py, whose errors name the field as a path
(`messages[0].content`, `variables.ticker.type`): a serializer could only say `messages`."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import prompts as rendering
from portal.api.serializers import UserEmail
from portal.prompts import services
from portal.prompts.models import PromptPublication, PromptTemplate, PromptVersion

SLUG_PATTERN = r"^[A-Za-z0-9_-]+$"
ENVIRONMENT_PATTERN = r"^[A-Za-z0-9_-]+$"


# A pattern, not an enum: drf-spectacular would name the enum `Role…Enum`, colliding with membership roles'.
@extend_schema_field({"type": "string", "pattern": f"^(?:{'|'.join(rendering.ROLES)})$"})
class MessageRole(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        super().__init__(choices=rendering.ROLES, **kwargs)


class MessageSerializer(serializers.Serializer):
    refuses_unknown_fields = True

    role = MessageRole()
    content = serializers.CharField(
        max_length=rendering.MAX_MESSAGE_CHARS,
        allow_blank=True,
        trim_whitespace=False,
        help_text="May name variables as {{name}}; a literal {{ is written \\{{.",
    )


class VariableSpecSerializer(serializers.Serializer):
    refuses_unknown_fields = True

    type = serializers.ChoiceField(choices=rendering.VARIABLE_TYPES, required=False, default="string")
    required = serializers.BooleanField(required=False, help_text="Default: true unless a default is given.")
    default = serializers.JSONField(required=False, allow_null=True, help_text="Of the variable's type.")
    values = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        min_length=1,
        max_length=rendering.MAX_ENUM_VALUES,
        help_text="An enum's allowed values.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)


def _variables(**kwargs) -> serializers.DictField:
    # Read back as stored (a spec's absent keys stay absent): the detailed shape documents what is sent.
    child = serializers.DictField() if kwargs.get("read_only") else VariableSpecSerializer()
    return serializers.DictField(
        child=child,
        help_text="name -> spec, for the variables the messages use; one left out is a required string.",
        **kwargs,
    )


_JSON_TYPES = {int: "integer", float: "number", str: "string", list: "array", dict: "object", bool: "boolean"}


def _parameter_schema(types: tuple) -> dict:
    names = ["number"] if float in types else [_JSON_TYPES[kind] for kind in types]
    return {"type": names[0]} if len(names) == 1 else {"oneOf": [{"type": name} for name in names]}


@extend_schema_field(
    {
        "type": "object",
        "properties": {name: _parameter_schema(types) for name, types in rendering.PARAMETERS.items()},
        "additionalProperties": False,
        "description": "Default chat parameters (a caller may override those not locked).",
    }
)
class ParametersField(serializers.DictField):
    pass


def _parameters(**kwargs) -> serializers.DictField:
    return ParametersField(**kwargs)


def _messages(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=MessageSerializer(), min_length=1, max_length=rendering.MAX_MESSAGES, **kwargs)


@extend_schema_field({"type": "object", "nullable": True, "additionalProperties": True})
class OutputSchemaField(serializers.JSONField):
    pass


class PromptChangesSerializer(serializers.Serializer):
    """`PATCH prompts/{id}`: the draft's fields to change (versions are untouched); `products` replaces the
    API products that bundle the template (tenant admins only)."""

    refuses_unknown_fields = True

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=5000, allow_blank=True, required=False)
    alias = serializers.CharField(max_length=100, required=False, help_text="The catalogue alias calls go to.")
    messages = _messages(required=False)
    variables = _variables(required=False)
    parameters = _parameters(required=False)
    locked_parameters = serializers.ListField(
        child=serializers.ChoiceField(choices=list(rendering.PARAMETERS)),
        required=False,
        help_text="Parameters a caller may not override.",
    )
    output_schema = OutputSchemaField(required=False, allow_null=True, help_text="A JSON Schema object.")
    is_shared = serializers.BooleanField(required=False, help_text="Every team of the tenant may read and call it.")
    is_private = serializers.BooleanField(required=False, help_text="Product subscribers call it, never read it.")
    products = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=services.MAX_PRODUCTS,
        help_text="Ids of the tenant's API products that bundle it.",
    )


class PromptCreateSerializer(PromptChangesSerializer):
    """`POST prompts/`: a new template, whose draft this is."""

    slug = serializers.RegexField(SLUG_PATTERN, max_length=services.MAX_SLUG_CHARS, help_text="Unique per tenant.")
    team = serializers.IntegerField(min_value=1, help_text="The owning team's id.")
    name = serializers.CharField(max_length=200)
    alias = serializers.CharField(max_length=100, help_text="The catalogue alias calls go to.")
    messages = _messages()


class PromptSerializer(serializers.ModelSerializer):
    """A template as read: its draft, its latest version's number, what each environment serves now
    (`{"prod": {"3": 90, "4": 10}}`) and the environments it can be published to."""

    messages = MessageSerializer(many=True, read_only=True)
    variables = _variables(read_only=True)
    parameters = _parameters(read_only=True)
    latest_version = serializers.SerializerMethodField()
    publications = serializers.SerializerMethodField()
    environments = serializers.SerializerMethodField()
    created_by = UserEmail(read_only=True)

    class Meta:
        model = PromptTemplate
        fields = [
            "id",
            "tenant",
            "team",
            "slug",
            "name",
            "description",
            "alias",
            "messages",
            "variables",
            "parameters",
            "locked_parameters",
            "output_schema",
            "is_shared",
            "is_private",
            "products",
            "latest_version",
            "publications",
            "environments",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True, help_text="None until a version is created."))
    def get_latest_version(self, template: PromptTemplate) -> int | None:
        if hasattr(template, "latest_version"):
            return template.latest_version
        latest = template.versions.order_by("-number").first()
        return latest.number if latest else None

    @extend_schema_field(
        {
            "type": "object",
            "description": "environment -> split (version -> percentage) it serves now.",
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
        }
    )
    def get_publications(self, template: PromptTemplate) -> dict:
        rows = getattr(template, "current_rows", None)
        if rows is None:
            rows = template.publications.filter(is_current=True).order_by("environment")
        return {row.environment: row.split for row in rows}

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_environments(self, template: PromptTemplate) -> list[str]:
        # One query per tenant on a page, not per template.
        known = self.context.setdefault("environments", {})
        if template.tenant_id not in known:
            known[template.tenant_id] = services.environments_of(template.tenant)
        return known[template.tenant_id]


class PromptVersionSummarySerializer(serializers.ModelSerializer):
    """A version as listed: the frozen draft, without its diff."""

    version = serializers.IntegerField(source="number", read_only=True)
    messages = MessageSerializer(many=True, read_only=True)
    variables = _variables(read_only=True)
    parameters = _parameters(read_only=True)
    author = UserEmail(read_only=True)

    class Meta:
        model = PromptVersion
        fields = [
            "version",
            "message",
            "author",
            "author_label",
            "alias",
            "messages",
            "variables",
            "parameters",
            "locked_parameters",
            "output_schema",
            "created_at",
        ]
        read_only_fields = fields


class PromptVersionSerializer(PromptVersionSummarySerializer):
    """A version with its unified diff against the version before (empty for version 1)."""

    class Meta(PromptVersionSummarySerializer.Meta):
        fields = [*PromptVersionSummarySerializer.Meta.fields, "diff"]
        read_only_fields = fields


class NewVersionSerializer(serializers.Serializer):
    """`POST prompts/{id}/versions`: freeze the draft as the next version."""

    refuses_unknown_fields = True

    message = serializers.CharField(
        max_length=500, allow_blank=True, required=False, help_text="What changed, like a commit message."
    )


class PublishSerializer(serializers.Serializer):
    """`POST prompts/{id}/publish`: serve `version`, or split calls between two versions with `split`
    (`{"3": 90, "4": 10}`, whole percentages summing to 100). Exactly one of the two."""

    refuses_unknown_fields = True

    environment = serializers.RegexField(ENVIRONMENT_PATTERN, max_length=32)
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    split = serializers.DictField(
        child=serializers.IntegerField(min_value=1, max_value=100),
        required=False,
        help_text="version -> percentage of calls, one or two versions.",
    )


class RollbackSerializer(serializers.Serializer):
    """`POST prompts/{id}/rollback`: the environment serves again what it served before its current
    publication."""

    refuses_unknown_fields = True

    environment = serializers.RegexField(ENVIRONMENT_PATTERN, max_length=32)


class PublicationSerializer(serializers.ModelSerializer):
    published_by = UserEmail(read_only=True)
    split = serializers.DictField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = PromptPublication
        fields = ["environment", "split", "action", "published_by", "created_at"]
        read_only_fields = fields


class RenderSerializer(serializers.Serializer):
    """`POST prompts/{id}/render`: the messages a call with these variables would send, without calling a
    model. `version` left out (or null) renders the draft."""

    refuses_unknown_fields = True

    variables = serializers.DictField(child=serializers.JSONField(), required=False, help_text="name -> value.")
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False, allow_null=True)


class RenderedSerializer(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True, help_text="None: the draft.")
    messages = MessageSerializer(many=True)
