"""Reading the fields of one catalogue entry: typed values out, every problem recorded under its path."""

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# Prices are DecimalField(max_digits=20, decimal_places=10): at most ten digits on either side of the point.
_PRICE_PLACES = 10
_PRICE_LIMIT = Decimal(10) ** 10
# The largest value a PositiveIntegerField holds on every database we support.
_COUNT_LIMIT = 2_147_483_647
# A region or a tag. Lowercase only: a team allowed "eu" must not miss a deployment written "EU".
LOWER_SLUG = re.compile(r"[-a-z0-9_]+")
LOWER_SLUG_MESSAGE = "must contain only lowercase letters, digits, hyphens and underscores"


@dataclass(frozen=True)
class Reference:
    path: str  # where the name is written, e.g. aliases[1].deployments[0]
    section: str  # the section that must define it: providers or deployments
    name: str


def parse_price(value: object) -> Decimal:
    """A price from a string or an int. A YAML float (0.15) goes through str(), its shortest round-tripping
    spelling, so 0.15 means Decimal("0.15") and never 0.1499999999999999944488848768742172978818416595458984375.
    """
    if isinstance(value, float):
        value = str(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("not a decimal")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("not a decimal") from None
    if not price.is_finite():
        raise ValueError("must be a finite number")
    if price < 0:
        raise ValueError("must not be negative")
    if price.normalize().as_tuple().exponent < -_PRICE_PLACES:
        raise ValueError(f"at most {_PRICE_PLACES} decimal places")
    if price >= _PRICE_LIMIT:
        raise ValueError(f"must be less than {_PRICE_LIMIT:f}")
    # "-0" passes the sign check; store it as the zero it is.
    return price if price else Decimal(0)


def _not_a_string(value: object, message: str) -> str:
    # YAML reads an unquoted 2024-10-21 as a date, 1.5 as a number and no as false.
    if isinstance(value, str | list | dict):
        return message
    return f"{message}; YAML read {value} as a {type(value).__name__}, so put it in quotes"


class Entry:
    """One entry of a section: reads its fields and records every problem under the entry's path.

    Readers return a usable value or None; a problem marks the entry invalid, so its spec is never applied.
    A field written as null counts as left out.
    """

    def __init__(self, raw: dict, path: str, *, errors: list[str], references: list[Reference]) -> None:
        self.raw, self.path = raw, path
        self.errors, self.references = errors, references
        self.is_valid = True

    def fail(self, key: object, message: str) -> None:
        self.errors.append(f"{self.path}.{key}: {message}")
        self.is_valid = False

    def refers_to(self, key: str, *, section: str, name: str) -> None:
        self.references.append(Reference(path=f"{self.path}.{key}", section=section, name=name))

    def _present(self, key: str, *, required: bool) -> object | None:
        value = self.raw.get(key)
        if value is None and required:
            self.fail(key, "required")
        return value

    def identifier(
        self, key: str, *, max_length: int, pattern: tuple[re.Pattern, str] | None = None, required: bool = True
    ) -> str | None:
        value = self._present(key, required=required)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.fail(key, _not_a_string(value, "must be a non-empty string"))
            return None
        if value != value.strip():
            self.fail(key, "must not start or end with whitespace")
        elif pattern is not None and not pattern[0].fullmatch(value):
            self.fail(key, pattern[1])
        if len(value) > max_length:
            self.fail(key, f"must be at most {max_length} characters")
        return value

    def text(self, key: str, *, max_length: int | None) -> str:
        value = self._present(key, required=False)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail(key, _not_a_string(value, "must be a string"))
            return ""
        if max_length is not None and len(value) > max_length:
            self.fail(key, f"must be at most {max_length} characters")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        value = self._present(key, required=True)
        if value is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}")
            return None
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self._present(key, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
            return default
        return value

    def seconds(self, key: str, *, default: float) -> float:
        value = self._present(key, required=False)
        if value is None:
            return float(default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            self.fail(key, "must be a positive number of seconds")
            return float(default)
        return float(value)

    def count(self, key: str) -> int | None:
        value = self._present(key, required=False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "must be a whole number")
            return None
        if not 1 <= value <= _COUNT_LIMIT:
            self.fail(key, f"must be between 1 and {_COUNT_LIMIT}")
            return None
        return value

    def fraction(self, key: str) -> float | None:
        """A score from 0 to 1; an int is taken (1 means 1.0)."""
        value = self._present(key, required=False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(key, "must be a number from 0 to 1")
            return None
        if not 0 <= value <= 1:
            self.fail(key, f"must be from 0 to 1, not {value}")
            return None
        return float(value)

    def slug(self, key: str, *, max_length: int) -> str:
        """A short lowercase name such as a region ("eu"); empty when left out or written empty."""
        value = self._present(key, required=False)
        if value is None or value == "":
            return ""
        return self._checked_slug(key, value, max_length=max_length) or ""

    def slugs(self, key: str, *, max_count: int, max_length: int) -> tuple[str, ...]:
        """A list of distinct short lowercase names such as tags; empty when left out."""
        value = self._present(key, required=False)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(key, "must be a list")
            return ()
        if len(value) > max_count:
            self.fail(key, f"must have at most {max_count} entries, not {len(value)}")
            return ()
        slugs: list[str] = []
        for index, item in enumerate(value):
            slug = self._checked_slug(f"{key}[{index}]", item, max_length=max_length)
            if slug is not None and slug in slugs:
                self.fail(f"{key}[{index}]", f"{slug!r} is listed twice")
            elif slug is not None:
                slugs.append(slug)
        return tuple(slugs)

    def _checked_slug(self, key: str, value: object, *, max_length: int) -> str | None:
        if not isinstance(value, str) or not value:
            self.fail(key, _not_a_string(value, "must be a non-empty string"))
            return None
        if len(value) > max_length:
            self.fail(key, f"must be at most {max_length} characters")
            return None
        if not LOWER_SLUG.fullmatch(value):
            self.fail(key, LOWER_SLUG_MESSAGE)
            return None
        return value

    def price(self, key: str, *, required: bool = True) -> Decimal | None:
        value = self._present(key, required=required)
        if value is None:
            return None
        try:
            return parse_price(value)
        except ValueError as exc:
            self.fail(key, str(exc))
            return None

    def names(self, key: str, *, choices: tuple[str, ...] | None = None, required: bool = True) -> tuple[str, ...]:
        """A list of distinct non-empty strings; required lists must not be empty."""
        value = self._present(key, required=required)
        if value is None:
            return ()
        if not isinstance(value, list) or (required and not value):
            self.fail(key, "must be a non-empty list" if required else "must be a list")
            return ()
        names: list[str] = []
        for index, item in enumerate(value):
            item_key = f"{key}[{index}]"
            if not isinstance(item, str) or not item:
                self.fail(item_key, "must be a non-empty string")
            elif choices is not None and item not in choices:
                self.fail(item_key, f"must be one of {', '.join(choices)}")
            elif item in names:
                self.fail(item_key, f"{item!r} is listed twice")
            else:
                names.append(item)
        return tuple(names)
