"""The one body format /api/v1 reads."""

from rest_framework import exceptions
from rest_framework.parsers import JSONParser


class DepthSafeJSONParser(JSONParser):
    """DRF's JSON parser, but JSON nested past Python's recursion limit (`[[[[…]]]]`, a few kilobytes) is a 400
    like any other unreadable body, not a RecursionError (a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
