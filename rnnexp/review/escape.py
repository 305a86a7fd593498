"""A table's cells made safe for where review shows them: the terminal, Markdown, HTML, a spreadsheet.

Sweep dirs travel, so a cell (a hostname, an error, a column name, a dir name) may hold anything.
What the terminal would act on (every character Python's ``repr`` escapes: C0 and C1 controls, ESC
and so every CSI/OSC sequence, DEL, bidi overrides, line separators) is shown as its ``\\x1b`` /
``\\u202e`` escape instead. Markdown cells are that, with HTML, line breaks, links, images,
emphasis and autolinks made inert. HTML is ``html.escape`` of it.

>>> terminal_text("ok\\x1b]52;c;aGk=\\x07")
'ok\\\\x1b]52;c;aGk=\\\\x07'
>>> markdown_cell("<b>|![x](http://e.com)")
'&lt;b&gt;\\\\|\\\\!\\\\[x\\\\]\\\\(http\\\\://e.com\\\\)'
"""

from __future__ import annotations

import html
import re

import pandas as pd

# Backslash-escaped in a Markdown cell: emphasis, code, links and images, strikethrough, GitHub's
# math, autolinked e-mail addresses, headings. `_` only where it could open or close emphasis.
_MD_PUNCT = set("\\`*[]!~$@#")
_MD_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_WORD = re.compile(r"\w")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula (OWASP's list)


def _as_text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    return str(value)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str, keep: str = "") -> str:
    """``text`` with every non-printable character (but those in ``keep``) shown as its escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else _escape_char(ch) for ch in text)


def terminal_text(value) -> str:
    """A value as one inert line for a terminal: missing as '', controls and line breaks shown escaped."""
    return visible(_as_text(value))


def terminal_lines(text: str) -> str:
    """Text of several lines for a terminal: line breaks kept, every other control shown escaped."""
    return visible(text, keep="\n")


def _markdown_char(text: str, i: int, brackets: bool) -> str:
    ch = text[i]
    if ch in _MD_ENTITY:
        return _MD_ENTITY[ch]
    if ch in _MD_PUNCT or ch == "|" or (brackets and ch in "()"):
        return "\\" + ch
    if ch == "_":  # intraword (time_median_ms) never opens emphasis: keep names readable
        inside = 0 < i < len(text) - 1 and _WORD.match(text[i - 1]) and _WORD.match(text[i + 1])
        return ch if inside else "\\_"
    if ch == ":" and text.startswith("//", i + 1):  # http://... would be autolinked (GitHub)
        return "\\:"
    if ch == "." and text[max(0, i - 3) : i].lower() == "www":  # www.x.org would be autolinked too
        return "\\."
    return ch


def markdown_cell(value) -> str:
    """A value as the text of one Markdown table cell (or heading) that renders as the text itself.

    No raw HTML, no line break, no link, image, autolink, emphasis or code span; ``|`` escaped.
    Parentheses are escaped only beside brackets, where they could complete a link.
    """
    text = visible(_as_text(value))
    brackets = "[" in text or "]" in text
    return "".join(_markdown_char(text, i, brackets) for i in range(len(text)))


def html_text(value) -> str:
    """A value as HTML text (and attribute value): markup escaped, controls shown escaped."""
    return html.escape(visible(_as_text(value)), quote=True)


def formula_like(value) -> bool:
    """A text cell a spreadsheet would evaluate (``=cmd|' /C calc'!A0``, ``+1+1``, ``@SUM(...)``)."""
    return isinstance(value, str) and value.startswith(FORMULA_START)


def spreadsheet_cell(value):
    """A text cell for a CSV meant for people: a formula-like one gets a leading ``'`` (shown, never run)."""
    return "'" + value if formula_like(value) else value


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every formula-like text cell defused (numbers, negative ones too, are left as they are)."""
    text = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    return df.assign(**{c: df[c].map(spreadsheet_cell) for c in text}) if text else df
