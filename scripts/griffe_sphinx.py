"""A griffe extension for the documentation site: our docstrings use reST roles and literal blocks, the site Markdown.

``:class:`~tokenbank.bank.TokenBank``` (and ``:meth:``, ``:func:``, ``:attr:``, ``:data:``, ``:exc:``, ``:mod:``)
becomes a cross-reference to the rendered object when the site has one, plain code otherwise; a paragraph ending
in ``::`` followed by an indented block becomes a fenced code block (Python when it parses, text otherwise).
A blocking twin declared as ``transfer = BlockingMethod(AsyncTokenBank.transfer)`` gets its async method's
docstring, as ``help()`` shows it; a ``Settings`` field names its environment variable. Only the rendered
docstrings change: the source keeps reading as it does in the editor.
Loaded by ``mkdocs.yml`` (``extensions:`` of the python handler).
"""

from __future__ import annotations

import ast
import html
import re
import textwrap
from typing import Any

import griffe

TWIN = re.compile(r"^Blocking(?:Method|Iterator)\((\w+(?:\.\w+)+)\)$")
ENV = re.compile(r"""validation_alias=_env\(["'](\w+)["']""")
ROLE = re.compile(r":(?:py:)?(class|meth|func|attr|data|exc|mod|obj):`(~?)([\w.]+)(?:\(\))?`")
CALLABLE_ROLES = frozenset({"meth", "func"})


class SphinxToMarkdown(griffe.Extension):
    """Rewrites each docstring once the package is fully loaded, so names resolve in their own scope."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is None and isinstance(obj, griffe.Attribute):
            obj.docstring = _twin_docstring(obj, loader)
        if isinstance(obj, griffe.Attribute):
            _name_environment_variable(obj)
        if obj.docstring is not None:
            obj.docstring.value = literal_blocks(roles(obj.docstring.value, obj))


def _twin_docstring(attribute: griffe.Attribute, loader: griffe.GriffeLoader) -> griffe.Docstring | None:
    """The docstring of the async method a blocking descriptor wraps, introduced by a link to that method."""
    match = TWIN.match(str(attribute.value))
    if match is None:
        return None
    identifier = _resolve(match[1], attribute)
    if identifier is None:
        return None
    try:
        target = loader.modules_collection.get_member(identifier)
    except KeyError:
        return None
    # Roles in the copied text belong to the async method's scope: resolve them there.
    original = roles(target.docstring.value, target) if target.docstring else ""
    intro = f"Blocking: runs :meth:`~{identifier}` on the bank's loop thread and returns its result."
    return griffe.Docstring(f"{intro}\n\n{original}".strip(), parent=attribute)


def _name_environment_variable(attribute: griffe.Attribute) -> None:
    """A ``Settings`` field names its variable, read from ``Field(..., validation_alias=_env("TOKEN_X", ...))``."""
    match = ENV.search(str(attribute.value))
    if match is None:
        return
    line = f"Environment variable: ``{match[1]}``."
    if attribute.docstring is None:
        attribute.docstring = griffe.Docstring(line, parent=attribute)
    else:
        attribute.docstring.value = f"{attribute.docstring.value}\n\n{line}"


def roles(text: str, scope: griffe.Object) -> str:
    def replace(match: re.Match[str]) -> str:
        role, short, target = match.groups()
        shown = target.rsplit(".", 1)[-1] if short else target
        if role in CALLABLE_ROLES:
            shown += "()"
        identifier = _resolve(target, scope)
        code = f"<code>{html.escape(shown)}</code>"
        if identifier is None:
            return code
        # An optional autoref: a link when the object is on the site, plain code (no warning) when it is not.
        return f'<autoref identifier="{html.escape(identifier)}" optional>{code}</autoref>'

    return ROLE.sub(replace, text)


def _resolve(target: str, scope: griffe.Object) -> str | None:
    first, _, rest = target.partition(".")
    try:
        base = scope.resolve(first)
    except griffe.NameResolutionError:
        # Absolute paths (tokenbank.x.Y) resolve by themselves; anything else stays plain code.
        return target if first == scope.package.name else None
    return f"{base}.{rest}" if rest else base


def literal_blocks(text: str) -> str:
    """reST ``::`` blocks as fenced Markdown code; everything else untouched."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::") or not _block_follows(lines, i + 1):
            out.append(line)
            i += 1
            continue
        intro = line.rstrip()[:-2].rstrip()
        if intro:
            out.append(intro + ":")
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():
            j -= 1
        code = textwrap.dedent("\n".join(lines[i + 1 : j])).strip("\n")
        out.extend(["", f"```{_language(code)}", code, "```"])
        i = j
    return "\n".join(out)


def _block_follows(lines: list[str], start: int) -> bool:
    rest = [line for line in lines[start:] if line.strip()]
    return bool(rest) and rest[0].startswith((" ", "\t"))


def _language(code: str) -> str:
    try:
        ast.parse(code)
    except SyntaxError:
        return "text"
    return "python"
