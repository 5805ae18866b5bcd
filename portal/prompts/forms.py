"""Console forms for prompt templates. The editor reads the messages and the variables as rows (the page adds
and removes them with JS), turns typed-in text into values of each variable's type, and puts every refusal of
core/prompts.py or the services beside the field its `param` names (`messages[1].content`, `variables.ticker`).
"""

import json
import re
from itertools import zip_longest
from typing import Any

from django import forms

from core import prompts as rendering
from routing.models import ModelAlias

# What a form reads, before core/prompts.py checks the values themselves.
MAX_JSON_CHARS = 64_000
MAX_TEXT_CHARS = 20_000  # one typed default, sample or enum list
_MESSAGE_ERROR = re.compile(r"^messages\[(\d+)\]")
_VARIABLE_ERROR = re.compile(r"^variables\.([A-Za-z_][A-Za-z0-9_]{0,63})")


def typed_value(kind: str, text: str) -> Any:
    """What a person typed as a value of this type; None when empty. Text that is not of the type is given back
    as it is, so core/prompts.py refuses it with its own message ("words must be an integer")."""
    text = text.strip() if kind != "string" else text
    if text == "":
        return None
    if kind == "integer" and re.fullmatch(r"-?\d{1,16}", text):
        return int(text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            return _NotJson(text)
    return text


class _NotJson(str):
    """Typed text that is not JSON: the form says so beside the field."""


def typed_values(specs: dict[str, dict], texts: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """(values, errors by variable) for texts typed beside each variable."""
    values, errors = {}, {}
    for name, text in texts.items():
        spec = specs.get(name)
        value = typed_value(spec["type"] if spec else "string", text)
        if isinstance(value, _NotJson):
            errors[name] = "Not valid JSON."
        elif value is not None:
            values[name] = value
    return values, errors


def _json_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=MAX_JSON_CHARS,
        label=label,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "code-input"}),
    )


class PromptEditorForm(forms.Form):
    """The draft. Slug and team are asked for only when the template is created."""

    name = forms.CharField(max_length=200)
    slug = forms.CharField(
        max_length=100, help_text="How callers name it: <code>POST /v1/prompts/&lt;slug&gt;/completions</code>."
    )
    team = forms.ModelChoiceField(queryset=None, empty_label=None, help_text="Its owners change it.")
    alias = forms.ChoiceField(label="Model alias", help_text="The catalogue alias its calls go to.")
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    parameters = _json_field("Parameters", 'Defaults for each call, as JSON: {"temperature": 0.2, "max_tokens": 300}.')
    locked_parameters = forms.MultipleChoiceField(
        required=False,
        label="Locked parameters",
        choices=[(name, name) for name in rendering.PARAMETERS],
        widget=forms.CheckboxSelectMultiple,
        help_text="Callers may override the other parameters.",
    )
    output_schema = _json_field("Output schema", "A JSON Schema the answer must validate against; empty for none.")
    is_shared = forms.BooleanField(required=False, label="Shared: every team of the organisation may call it")
    is_private = forms.BooleanField(required=False, label="Private: product subscribers call it but never see its text")

    def __init__(self, data=None, *, teams=None, template=None, **kwargs):
        super().__init__(data, **kwargs)
        self.template = template
        aliases = list(ModelAlias.objects.order_by("name").values_list("name", flat=True))
        if template is not None and template.alias not in aliases:
            aliases.insert(0, template.alias)  # removed from the catalogue since: shown, refused on save
        self.fields["alias"].choices = [(name, name) for name in aliases]
        if template is None:
            self.fields["team"].queryset = teams
            self.fields["team"].label_from_instance = lambda team: f"{team.tenant.name} / {team.name}"
        else:
            del self.fields["slug"], self.fields["team"]
            self.initial.update(
                name=template.name,
                alias=template.alias,
                description=template.description,
                parameters=json.dumps(template.parameters, indent=2) if template.parameters else "",
                locked_parameters=template.locked_parameters,
                output_schema=json.dumps(template.output_schema, indent=2) if template.output_schema else "",
                is_shared=template.is_shared,
                is_private=template.is_private,
            )
        self.message_rows = self._message_rows(data, template)
        self.variable_rows = self._variable_rows(data, template)
        self.messages_error = ""
        self.variables_error = ""

    # --- the rows ------------------------------------------------------------------------------------------

    @staticmethod
    def _message_rows(data, template) -> list[dict]:
        if data is None:
            messages = (
                template.messages if template else [{"role": "system", "content": ""}, {"role": "user", "content": ""}]
            )
            return [{"role": m["role"], "content": m["content"], "error": ""} for m in messages]
        # One past the limit, so core/prompts.py refuses too many rather than this form dropping some.
        roles = data.getlist("message_role")[: rendering.MAX_MESSAGES + 1]
        contents = data.getlist("message_content")[: rendering.MAX_MESSAGES + 1]
        return [
            {"role": role[:20], "content": content, "error": ""}
            for role, content in zip_longest(roles, contents, fillvalue="")
        ]

    def _variable_rows(self, data, template) -> list[dict]:
        """One row per variable the messages use, in first-use order, with what was typed for it."""
        names = []
        for row in self.message_rows:
            for name in rendering.variables_in(row["content"][: rendering.MAX_MESSAGE_CHARS]):
                if name not in names:
                    names.append(name)
        stored = template.variables if template else {}
        rows = []
        for name in names[: rendering.MAX_VARIABLES + 1]:
            spec = stored.get(name, {"type": "string", "required": True})
            if data is None:
                default = spec.get("default")
                row = {
                    "type": spec["type"],
                    "required": spec.get("required", True),
                    "default": "" if default is None else _as_text(default),
                    "values": ", ".join(spec.get("values", [])),
                    "sample": "",
                }
            else:
                row = {
                    "type": data.get(f"var_{name}_type", "string")[:20],
                    "required": data.get(f"var_{name}_required") == "on",
                    "default": data.get(f"var_{name}_default", "")[:MAX_TEXT_CHARS],
                    "values": data.get(f"var_{name}_values", "")[:MAX_TEXT_CHARS],
                    "sample": data.get(f"var_{name}_sample", "")[:MAX_TEXT_CHARS],
                }
            rows.append({"name": name, "error": "", **row})
        return rows

    # --- what the services are given -----------------------------------------------------------------------

    def clean_parameters(self):
        return _parse_json(self.cleaned_data["parameters"], empty={})

    def clean_output_schema(self):
        return _parse_json(self.cleaned_data["output_schema"], empty=None)

    def messages(self) -> list[dict]:
        return [{"role": row["role"], "content": row["content"]} for row in self.message_rows]

    def variables(self) -> dict:
        specs = {}
        for row in self.variable_rows:
            spec: dict[str, Any] = {"type": row["type"], "required": row["required"]}
            if row["type"] == "enum":
                spec["values"] = [value.strip() for value in row["values"].split(",") if value.strip()]
            default = typed_value(row["type"], row["default"])
            if isinstance(default, _NotJson):
                row["error"] = "The default is not valid JSON."
            elif default is not None:
                # A default fills in a missing value, so a variable with one is never missing: not required.
                spec["default"], spec["required"] = default, False
            specs[row["name"]] = spec
        return specs

    def samples(self) -> tuple[dict, dict[str, str]]:
        specs = {row["name"]: {"type": row["type"]} for row in self.variable_rows}
        return typed_values(specs, {row["name"]: row["sample"] for row in self.variable_rows})

    def draft(self) -> dict:
        """The services' keyword arguments (call after is_valid)."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "alias": data["alias"],
            "description": data["description"],
            "messages": self.messages(),
            "variables": self.variables(),
            "parameters": data["parameters"],
            "locked_parameters": list(data["locked_parameters"]),
            "output_schema": data["output_schema"],
            "is_shared": data["is_shared"],
            "is_private": data["is_private"],
        }

    def has_row_errors(self) -> bool:
        return any(row["error"] for row in self.message_rows + self.variable_rows)

    def add_prompt_error(self, message: str, param: str) -> None:
        """A refusal beside the field its param names: a message row, a variable row, or a form field."""
        if match := _MESSAGE_ERROR.match(param):
            index = int(match[1])
            if index < len(self.message_rows):
                self.message_rows[index]["error"] = message
                return
        if match := _VARIABLE_ERROR.match(param):
            for row in self.variable_rows:
                if row["name"] == match[1]:
                    row["error"] = message
                    return
        head = param.split(".")[0].split("[")[0]
        if head == "messages":
            self.messages_error = message
        elif head == "variables":
            self.variables_error = message
        elif head in self.fields:
            self.add_error(head, message)
        else:
            self.add_error(None, message)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _parse_json(text: str, *, empty):
    if not text.strip():
        return empty
    try:
        return json.loads(text)
    except ValueError as exc:
        raise forms.ValidationError(f"Not valid JSON: {str(exc)[:200]}") from None


class VersionForm(forms.Form):
    message = forms.CharField(
        required=False,
        max_length=500,
        label="What changed",
        widget=forms.TextInput(attrs={"placeholder": "Shorter answers"}),
    )


class EnvironmentForm(forms.Form):
    name = forms.CharField(
        max_length=32, label="New environment", widget=forms.TextInput(attrs={"placeholder": "canary"})
    )
