"""Data in Markdown that renders as exactly its text: every artifact pgtender publishes goes through here.

The Prefect UI renders a markdown artifact, and every string cell of a table artifact, as Markdown:
unescaped, ``>= 90 %`` is a block quote, ``model@v3.0`` a mailto: link, ``*x*`` emphasis, ``a|b``
two table cells. ``text`` backslash-escapes every ASCII punctuation character (CommonMark allows
an escape before any of them, and an escaped character is always literal: no emphasis, link,
autolink, HTML, heading, list or quote can start there) and puts the value on one line (a cell
or a table row cannot hold a line break; runs of white space render as one space anyway).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_BACKTICKS = re.compile("`+")


def one_line(value: object) -> str:
    """``value`` as text on one line: every run of white space (line breaks included) one space."""
    return " ".join(str(value).split())


def text(value: object) -> str:
    """``value`` as Markdown that renders as exactly ``one_line(value)``."""
    return _PUNCTUATION.sub(r"\\\1", one_line(value))


def cell(value: object) -> Any:
    """One value of a table artifact: strings escaped (the UI renders them as Markdown); numbers,
    booleans and None stay JSON values (the UI shows those as they are)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return text(value)


def rows(data: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``table=`` of a table artifact: every cell through ``cell`` (column names are ours)."""
    return [{key: cell(value) for key, value in row.items()} for row in data]


def table(headers: Sequence[str], body: Iterable[Sequence[Any]], *, right: Sequence[int] = ()) -> list[str]:
    """The lines of a Markdown table; ``right``: the indexes of right-aligned columns."""
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(text(h) for h in headers) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(text(v) for v in row) + " |" for row in body]
    return lines


def code_block(content: str) -> str:
    """``content`` verbatim in a fenced code block (the fence longer than any run of backticks in it).

    The Prefect UI decodes ``&amp; &lt; &gt; &quot; &#39;`` in a code block's text (CommonMark keeps
    it as written): every ``&`` is written ``&amp;``, which that decoding (``&amp;`` last) turns back
    into exactly ``content``.
    """
    longest = max((len(m) for m in _BACKTICKS.findall(content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{content.rstrip(chr(10)).replace('&', '&amp;')}\n{fence}"
