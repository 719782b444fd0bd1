"""A JSON request body is an object (issue 12): `false`, `[]`, `[null,null]` or `"x"` are
a 400 with a message here, before any view calls request.data.get()."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class ObjectJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: dict[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            raise ParseError(f"The JSON body must be an object, not {type(data).__name__}.")
        return data
