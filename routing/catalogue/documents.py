"""Catalogue documents as YAML text: strict reading with line numbers, and writing in file order."""

import yaml

from routing.catalogue.schema import CatalogueError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping, which PyYAML would silently resolve to the
    last value: two `input_per_1m:` lines in one deployment are a mistake to report, not to guess at."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    message = f"key {key_node.value!r} is given twice"
                    raise yaml.constructor.ConstructorError(None, None, message, key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_catalogue_yaml(*, text: str, source: str = "<data>") -> object:
    """The document in `text`, for import_catalogue; malformed YAML raises CatalogueError with its line."""
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = "; ".join(part for part in (exc.context, exc.problem) if part)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise CatalogueError([f"{where}not valid YAML: {problem}"], source=source) from None
    except yaml.YAMLError as exc:
        raise CatalogueError([f"not valid YAML: {exc}"], source=source) from None
    finally:
        loader.dispose()


def dump_catalogue_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
