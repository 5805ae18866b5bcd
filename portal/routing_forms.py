"""The console's routing forms: how an alias routes (every key of the catalogue's `routing:` mapping) and a
deployment's routing facts. They only gather what was filled in; the catalogue importer (routing/services.py)
checks it, so the console refuses exactly what the YAML and REST refuse, and its messages go beside the field
their path names."""

import re

import yaml
from django import forms

from core.values import STRATEGIES
from routing.catalogue import dump_catalogue_yaml
from routing.engine.policy import POLICY_KEYS

_STRATEGY_LABELS = {
    "priority": "priority: in the order listed, the first that answers (the default)",
    "cheapest": "cheapest: by each request's estimated cost",
    "lowest-latency": "lowest-latency: by recent latency and time to first token",
    "weighted": "weighted: at random, in proportion to the weights below",
    "round-robin": "round-robin: each deployment in turn",
    "least-busy": "least-busy: the fewest calls in flight",
    "cascade": "cascade: the cheapest step first, climbing when its answer fails a check",
    "semantic": "semantic: by the meaning of the prompt, to the route of its nearest example",
    "learned": "learned: by the quality its trained model predicts for the prompt (manage.py train_router)",
    "bandit": "bandit: learns from feedback which deployment earns the most (Thompson sampling)",
}
_RETRY_FIELDS = {  # key in routing.retry -> (label, whole number, default)
    "max_attempts": ("Attempts in all", True, "each deployment once"),
    "base_delay_ms": ("First backoff (ms)", True, 100),
    "max_delay_ms": ("Longest backoff (ms)", True, 2000),
    "deadline_ms": ("Deadline per call (ms)", True, 30000),
}
_BREAKER_FIELDS = {
    "consecutive_failures": ("Open after failures in a row", True, 5),
    "error_rate": ("…or at this failed share (0-1)", False, 0.5),
    "min_calls": ("…of at least this many calls", True, 10),
    "window_s": ("…in the last (s)", False, 30),
    "cooldown_s": ("Stay open for (s)", False, 30),
    "half_open_probes": ("Then let through (calls)", True, 1),
}
# A problem's path inside an entry, e.g. "deployments[0].tags[1]: ..." -> "tags[1]", "..."
_PROBLEM = re.compile(r"^[a-z]+\[\d+\]\.(?P<path>[^:]+): (?P<message>.*)$", re.S)
# Limits on what the forms read; the importer checks the values themselves (and says where they are wrong).
_NAMES_MAX_CHARS = 2000


def _number_field(label: str, *, is_whole: bool, default) -> forms.Field:
    field = forms.IntegerField if is_whole else forms.FloatField
    # No bounds here: the importer's checks apply, with their paths (routing.retry.max_attempts: ...).
    return field(required=False, label=label, widget=forms.NumberInput(attrs={"placeholder": default, "step": "any"}))


def _names(text: str) -> list[str]:
    """ "a, b c" -> ["a", "b", "c"]"""
    return [name for name in re.split(r"[\s,]+", text) if name]


class CatalogueEntryForm(forms.Form):
    """A form whose refusals come from the catalogue importer: each goes beside the field its path names."""

    def field_for(self, path: str) -> str | None:
        return None

    def add_catalogue_errors(self, errors: list[str]) -> None:
        for error in errors:
            match = _PROBLEM.match(error)
            if match is None:
                self.add_error(None, error)
                continue
            # The message keeps its path, so an error reads the same as the importer's and the API's.
            self.add_error(self.field_for(match["path"]), f"{match['path']}: {match['message']}")


# --- the cascade strategy's `cascade:` mapping, edited as YAML (issue 12) --------------------------------------
_CASCADE_MAX_CHARS = 10_000


def _cascade_text(stored: dict) -> str:
    return dump_catalogue_yaml(stored["cascade"]) if "cascade" in stored else ""


def _parse_cascade_text(text: str):
    """The textarea's YAML (JSON is YAML too) as a mapping, for the importer's own checks; None when empty."""
    if not text.strip():
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise forms.ValidationError(f"Not valid YAML: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise forms.ValidationError("Must be a mapping with steps, checks and optionally max_cost_usd.")
    return value


# --- the semantic strategy's `routes:` list, edited as YAML (issue 12) ------------------------------------------
_ROUTES_MAX_CHARS = 120_000  # the policy's own bound on its examples (routing/engine/policy.py) is 100,000


def _routes_text(stored: dict) -> str:
    return dump_catalogue_yaml(stored["routes"]) if "routes" in stored else ""


def _parse_routes_text(text: str):
    if not text.strip():
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise forms.ValidationError(f"Not valid YAML: {str(exc)[:200]}") from None
    if not isinstance(value, list):
        raise forms.ValidationError("Must be a list of routes, each with name, target and examples.")
    return value


# --- part two's bandit, experiment and learned mappings, as plain fields (issue 12) ------------------------------
_BANDIT_WEIGHTS = {  # metric in routing.bandit.weights -> (label, the engine's default)
    "quality": ("Quality weight", 1),
    "cost": ("Cost weight", 0),
    "latency": ("Latency weight", 0),
}
# Every key of `routing:` the form has a field for; any other a stored mapping holds is saved back as it was.
_SHOWN_KEYS = frozenset(POLICY_KEYS)
# The arms' percentages are whole numbers from 0 to 100 (the importer's bounds); the form adds the rule across them.
_ALL_CALLS_PERCENT = 100


def _bandit_initial(stored: dict) -> dict:
    bandit = stored.get("bandit")
    if bandit is None:
        return {}
    weights = bandit.get("weights", {})
    return {
        **{f"bandit_{metric}": weights.get(metric) for metric in _BANDIT_WEIGHTS},
        "bandit_exploration": bandit.get("exploration"),
        "bandit_frozen": bandit.get("frozen", False),
    }


def _experiment_initial(stored: dict) -> dict:
    experiment = stored.get("experiment")
    if experiment is None:
        return {}
    arms = {f"arm_{name}": share for name, share in experiment.get("arms", {}).items()}
    return {"experiment_name": experiment.get("name", ""), **arms}


class AliasRoutingForm(CatalogueEntryForm):
    strategy = forms.ChoiceField(label="Strategy")
    routes = forms.CharField(
        required=False,
        max_length=_ROUTES_MAX_CHARS,
        label="Routes",
        help_text="For the semantic strategy, in YAML: a list of routes, each with a name, a target (one of this "
        "alias's deployments or another alias) and example prompts.",
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
    )
    threshold = forms.FloatField(
        required=False,
        label="Similarity threshold",
        help_text="0 to 1: a prompt less similar than this to every example goes to the default.",
        widget=forms.NumberInput(attrs={"placeholder": "0.6", "step": "any"}),
    )
    semantic_default = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Default",
        help_text="A deployment or another alias for prompts below the threshold; empty: the deployments in order.",
    )
    cascade = forms.CharField(
        required=False,
        max_length=_CASCADE_MAX_CHARS,
        label="Cascade",
        help_text="For the cascade strategy, in YAML: steps: [cheap, premium], checks: [{type: json}], "
        'max_cost_usd: "0.05".',
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    min_quality = forms.FloatField(
        required=False,
        label="Quality floor",
        help_text="0 to 1: deployments scored below it (or with no score) are skipped. A call may raise it.",
        widget=forms.NumberInput(attrs={"placeholder": "none", "step": "any"}),
    )
    fallbacks = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Fallback aliases",
        help_text="Other aliases, tried in this order when all of this one's deployments fail. Separate with commas.",
    )
    bandit_exploration = forms.FloatField(
        required=False,
        label="Exploration",
        help_text="0 to 1: the share of calls sent to a deployment drawn at random, so none starves.",
        widget=forms.NumberInput(attrs={"placeholder": "0.1", "step": "any"}),
    )
    bandit_frozen = forms.BooleanField(
        required=False,
        label="Frozen: stop learning and exploring, serve the best so far",
    )
    experiment_name = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Experiment name",
        help_text="Names the split in x-tollway-route and the comparison; renaming it reshuffles who gets which arm.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    learned_trade_off = forms.FloatField(
        required=False,
        label="Trade-off",
        help_text="0 (the default): the cheapest deployment predicted to meet the quality floor. Above 0: the best "
        "predicted quality minus this times its cost over the dearest one's.",
        widget=forms.NumberInput(attrs={"placeholder": "0", "step": "any"}),
    )

    def __init__(self, *args, deployments: tuple[str, ...], stored: dict, **kwargs) -> None:
        retry, breaker = stored.get("retry", {}), stored.get("breaker", {})
        initial = {
            "strategy": stored.get("strategy", "priority"),
            "min_quality": stored.get("min_quality"),
            "fallbacks": ", ".join(stored.get("fallbacks", [])),
            **{f"retry_{key}": value for key, value in retry.items()},
            **{f"breaker_{key}": value for key, value in breaker.items()},
            **{f"weight_{name}": value for name, value in stored.get("weights", {}).items()},
        }
        initial["cascade"] = _cascade_text(stored)
        initial["routes"] = _routes_text(stored)
        initial["threshold"] = stored.get("threshold")
        initial["semantic_default"] = stored.get("default", "")
        initial.update(_bandit_initial(stored))
        initial.update(_experiment_initial(stored))
        initial["learned_trade_off"] = stored.get("learned", {}).get("trade_off")
        super().__init__(*args, initial=initial, **kwargs)
        self.deployments = deployments
        self.fields["strategy"].choices = [(s, _STRATEGY_LABELS.get(s, s)) for s in STRATEGIES]
        for name in deployments:
            self.fields[f"weight_{name}"] = _number_field(name, is_whole=False, default="none")
        for metric, (label, default) in _BANDIT_WEIGHTS.items():
            self.fields[f"bandit_{metric}"] = _number_field(label, is_whole=False, default=default)
        for name in deployments:
            self.fields[f"arm_{name}"] = _number_field(f"{name} (%)", is_whole=True, default="0")
        for key, (label, is_whole, default) in _RETRY_FIELDS.items():
            self.fields[f"retry_{key}"] = _number_field(label, is_whole=is_whole, default=default)
        for key, (label, is_whole, default) in _BREAKER_FIELDS.items():
            self.fields[f"breaker_{key}"] = _number_field(label, is_whole=is_whole, default=default)
        # A key the form has no field for (one a later release adds) is saved back as stored, never dropped.
        self.kept = {key: value for key, value in stored.items() if key not in _SHOWN_KEYS}
        # An empty trade-off beside a stored `learned: {}` keeps that (it says the same as no key at all).
        self.has_learned = "learned" in stored

    def weight_fields(self):
        return [self[f"weight_{name}"] for name in self.deployments]

    def bandit_weight_fields(self):
        return [self[f"bandit_{metric}"] for metric in _BANDIT_WEIGHTS]

    def arm_fields(self):
        return [self[f"arm_{name}"] for name in self.deployments]

    def retry_fields(self):
        return [self[f"retry_{key}"] for key in _RETRY_FIELDS]

    def breaker_fields(self):
        return [self[f"breaker_{key}"] for key in _BREAKER_FIELDS]

    def routing(self) -> dict:
        """The `routing:` mapping the form describes (only what was filled in), for the importer to check."""
        data = self.cleaned_data
        mapping: dict = {"strategy": data["strategy"]}
        if data["min_quality"] is not None:
            mapping["min_quality"] = data["min_quality"]
        weights = {name: data[f"weight_{name}"] for name in self.deployments if data[f"weight_{name}"] is not None}
        if weights:
            mapping["weights"] = weights
        if fallbacks := _names(data["fallbacks"]):
            mapping["fallbacks"] = fallbacks
        for section, keys in (("retry", _RETRY_FIELDS), ("breaker", _BREAKER_FIELDS)):
            values = {key: data[f"{section}_{key}"] for key in keys if data[f"{section}_{key}"] is not None}
            if values:
                mapping[section] = values
        if data.get("cascade"):
            mapping["cascade"] = data["cascade"]
        # Whatever the strategy, filled-in routes are sent: the importer refuses them beside another strategy
        # (saying so beside the field) rather than this form dropping them.
        if data.get("routes"):
            mapping["routes"] = data["routes"]
        if data.get("threshold") is not None:
            mapping["threshold"] = data["threshold"]
        if data.get("semantic_default", "").strip():
            mapping["default"] = data["semantic_default"].strip()
        if bandit := self._bandit():
            mapping["bandit"] = bandit
        if experiment := self._experiment():
            mapping["experiment"] = experiment
        if data.get("learned_trade_off") is not None:
            mapping["learned"] = {"trade_off": data["learned_trade_off"]}
        elif self.has_learned:
            mapping["learned"] = {}
        return {**mapping, **self.kept}

    def _bandit(self) -> dict:
        """`bandit:` when any of its fields is set; the engine's defaults fill the rest."""
        data = self.cleaned_data
        bandit: dict = {}
        weights = {m: data[f"bandit_{m}"] for m in _BANDIT_WEIGHTS if data.get(f"bandit_{m}") is not None}
        if weights:
            bandit["weights"] = weights
        if data.get("bandit_exploration") is not None:
            bandit["exploration"] = data["bandit_exploration"]
        if data.get("bandit_frozen"):
            bandit["frozen"] = True
        return bandit

    def _experiment(self) -> dict:
        """`experiment:` when it has a name or an arm; the importer says what is missing."""
        data = self.cleaned_data
        arms = {name: data[f"arm_{name}"] for name in self.deployments if data.get(f"arm_{name}") is not None}
        name = data.get("experiment_name", "").strip()
        if not name and not arms:
            return {}
        return {"name": name, "arms": arms}

    def clean(self):
        data = super().clean()
        # The engine takes arms adding up to under 100 (the rest of the calls follow the strategy alone); over
        # 100 the last arms would silently get less than they say, so the form refuses it.
        shares = [data.get(f"arm_{name}") for name in self.deployments]
        total = sum(share for share in shares if share is not None)
        if total > _ALL_CALLS_PERCENT:
            # Beside the first arm, where the split is read from: the total is about all of them.
            first = next(name for name, share in zip(self.deployments, shares, strict=True) if share is not None)
            self.add_error(f"arm_{first}", f"The arms add up to {total}%: at most {_ALL_CALLS_PERCENT}% of calls.")
        return data

    def clean_routes(self):
        return _parse_routes_text(self.cleaned_data["routes"])

    def clean_cascade(self):
        return _parse_cascade_text(self.cleaned_data["cascade"])

    def field_for(self, path: str) -> str | None:
        parts = path.split(".")
        if parts[0] != "routing" or len(parts) == 1:
            return None
        key = re.sub(r"\[\d+\]$", "", parts[1])
        if key == "cascade":
            return "cascade"
        if key in ("routes", "threshold"):
            return key
        if key == "default":
            return "semantic_default"
        if key in ("strategy", "min_quality", "fallbacks"):
            return key
        if len(parts) > 2 and key in ("weights", "retry", "breaker"):
            name = f"{key.removesuffix('s')}_{parts[2]}"
            return name if name in self.fields else None
        if key == "bandit" and len(parts) > 2:
            name = f"bandit_{parts[3]}" if parts[2] == "weights" and len(parts) > 3 else f"bandit_{parts[2]}"
            return name if name in self.fields else None
        if key == "experiment" and len(parts) > 2:
            name = f"arm_{parts[3]}" if parts[2] == "arms" and len(parts) > 3 else f"experiment_{parts[2]}"
            return name if name in self.fields else None
        if key == "learned" and parts[2:] == ["trade_off"]:
            return "learned_trade_off"
        return None


class DeploymentRoutingForm(CatalogueEntryForm):
    quality = forms.FloatField(
        required=False,
        label="Quality",
        help_text="Your score for this model, from 0 to 1; an alias's quality floor compares against it.",
        widget=forms.NumberInput(attrs={"placeholder": "none", "step": "any"}),
    )
    region = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Region",
        help_text="Where it runs, e.g. eu: teams limited to some regions only reach deployments in them.",
    )
    tags = forms.CharField(
        required=False,
        max_length=_NAMES_MAX_CHARS,
        label="Tags",
        help_text="e.g. zero-retention; teams may require some. Separate with commas.",
    )
    rpm_limit = forms.IntegerField(required=False, label="Requests per minute", help_text="The provider's quota.")
    tpm_limit = forms.IntegerField(required=False, label="Tokens per minute", help_text="The provider's quota.")

    def changes(self) -> dict:
        data = self.cleaned_data
        return {**data, "region": data["region"].strip(), "tags": _names(data["tags"])}

    def field_for(self, path: str) -> str | None:
        key = re.sub(r"\[\d+\]$", "", path)
        return key if key in self.fields else None
