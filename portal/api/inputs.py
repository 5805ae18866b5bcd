"""What a client may send to /api/v1, before it reaches a row or a log line: JSON types as the schema states
them (StrictTypes), numbers within their column's range and text within a length (BoundedModelSerializer),
money as a bounded decimal string (DecimalString). The serializers build on these."""

import re
from collections.abc import Mapping

from django.db import models
from rest_framework import serializers

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
