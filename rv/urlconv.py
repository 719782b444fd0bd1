"""A URL path segment for any name (issue 12): a machine called "A/B" or "50%" still has a
console URL. The name is percent-quoted whole (a "/" becomes %2F) on the way out and
unquoted on the way in; Django's reverse() quotes the "%" once more and the server's
decoding undoes that, so the round trip is exact."""

from __future__ import annotations

from urllib.parse import quote, unquote


class NameConverter:
    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return unquote(value)

    def to_url(self, value: str) -> str:
        return quote(str(value), safe="")
