"""The one loader of the SQL files that migrations execute (``versions/<revision>_<name>.sql``).

Each migration's PostgreSQL functions live in a ``.sql`` file beside it, read by that migration only: a released
migration's SQL never changes (a later change to a function is a new file and a new migration), so a database
upgraded long ago and a fresh one run the same text.
"""

from __future__ import annotations

from importlib import resources


def statements(filename: str) -> list[str]:
    """The statements of ``versions/<filename>``, in order, one string each (asyncpg prepares one command at a
    time), without the ``;`` that ends them and with surrounding whitespace stripped. A statement keeps the
    comment lines written just above it; a part holding only comments is skipped."""
    text = resources.files("tokenbank.storage.sql.migrations").joinpath("versions", filename).read_text()
    return [part.strip() for part in _split(text) if _has_code(part)]


def _split(text: str) -> list[str]:
    """Split at each ``;`` outside comments, quoted strings and dollar-quoted bodies (``$fn$ ... $fn$``)."""
    parts: list[str] = []
    start = i = 0
    while i < len(text):
        if text.startswith("--", i):
            i = _index_or_end(text, "\n", i)
        elif text[i] == "'":
            i = _index_or_end(text, "'", i + 1) + 1
        elif text[i] == "$" and (tag_end := text.find("$", i + 1)) != -1 and _is_tag(text[i + 1 : tag_end]):
            tag = text[i : tag_end + 1]
            i = _index_or_end(text, tag, tag_end + 1) + len(tag)
        elif text[i] == ";":
            parts.append(text[start:i])
            start = i = i + 1
        else:
            i += 1
    parts.append(text[start:])
    return parts


def _index_or_end(text: str, needle: str, start: int) -> int:
    found = text.find(needle, start)
    return len(text) if found == -1 else found


def _is_tag(name: str) -> bool:
    return name == "" or (name.replace("_", "a").isalnum() and not name[0].isdigit())


def _has_code(part: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in part.splitlines())
