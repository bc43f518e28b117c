"""Message templates: the billing product's ``{{variable}}`` syntax, compiled once, rendered fast.

A variable is looked up in the record's metadata first (``{{role.name}}`` reads
``metadata["role"]["name"]``), then in the record (``{{actor.email}}``, ``{{target.name}}``,
``{{tenant}}``), then through a few aliases that give the product's own names their meaning:
``{{email}}`` is the actor's email, ``{{emailInvitee}}`` the target's, ``{{***1337}}`` the masked
API key. A variable the record does not carry renders as :data:`MISSING`: a record is never
refused because its message cannot be completed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from auditwire._fields import api_names
from auditwire.record import PART_TYPES, AuditRecord
from auditwire.redaction import mask_secret

__all__ = [
    "ALIASES",
    "MISSING",
    "Compiled",
    "compile_renderer",
    "compile_template",
    "render",
    "render_template",
    "variables",
]

#: Rendered in place of a variable the record does not carry: a record is never refused
#: because its message cannot be completed.
MISSING = "(unknown)"
_VARIABLE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")

#: Alias → the record paths tried in order.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "email": ("actor.email", "actor.name", "actor.id"),
    "actor": ("actor.email", "actor.name", "actor.id", "actor.type"),
    "emailInvitor": ("actor.email", "actor.name", "actor.id"),
    "emailInvitee": ("target.email", "target.name", "target.id"),
    "target": ("target.email", "target.name", "target.id"),
    "apiKeyName": ("target.name",),
    "url": ("target.name", "target.id"),
    "role_code": ("target.id", "target.name"),
    "***1337": ("apiKey", "api_key", "target.id"),
}
_MASKED_ALIASES = frozenset({"***1337"})


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


#: API JSON names of record fields, for templates written against the API shape.
_ATTRIBUTE = {
    name: attribute
    for kind in (AuditRecord, *PART_TYPES.values())
    for attribute, name in api_names(kind)
    if name != attribute
}
_PARTS = frozenset(PART_TYPES)


_RECORD_FIELDS = frozenset({"tenant", "ip_address", "user_agent", "action", "category", "outcome"})


def _record_field(path: str) -> tuple[str | None, str] | None:
    """Where a scalar field of the record named by its (API) path lives: ``(part, attribute)``
    (``part`` ``None`` for the record's own fields), or ``None`` when the path names no such
    field. Worked out once per template, so rendering serialises nothing and calls nothing."""
    head, _, rest = path.partition(".")
    if head in _PARTS and rest and "." not in rest:
        return head, _ATTRIBUTE.get(rest, rest)
    attribute = _ATTRIBUTE.get(head, head)
    if not rest and attribute in _RECORD_FIELDS:
        return None, attribute
    return None


_Variable = tuple[tuple[str, ...], tuple[tuple[str | None, str], ...], bool]
#: A compiled template: literal text, and for each variable where to look for it.
Compiled = tuple[str | _Variable, ...]


@lru_cache(maxsize=1024)
def compile_template(template: str) -> Compiled:
    """Literal text and, for each variable, the paths to try in the metadata and the record
    fields to try (for the name, then for each alias), and whether it is masked."""
    parts: list[str | _Variable] = []
    position = 0
    for match in _VARIABLE.finditer(template):
        parts.append(template[position : match.start()])
        name = match.group(1)
        paths = (name, *ALIASES.get(name, ()))
        fields = tuple(f for f in map(_record_field, paths) if f is not None)
        parts.append((paths, fields, name in _MASKED_ALIASES))
        position = match.end()
    parts.append(template[position:])
    return tuple(p for p in parts if p != "")


def variables(template: str) -> tuple[str, ...]:
    """The names of a template's variables, in order."""
    return tuple(_VARIABLE.findall(template))


def _scalar(value: Any) -> bool:
    # Only scalars render: ``{{actor}}`` reaches its alias, not the actor object.
    return isinstance(value, (str, int, float)) and value != ""


def render_template(template: str, record: AuditRecord) -> str:
    """Fill ``{{variables}}`` from the record; see the module docstring for the lookup order
    (metadata first for every candidate path, then the record)."""
    return render(compile_template(template), record)


def render(parts: Compiled, record: AuditRecord) -> str:
    """A compiled template filled from a record: runs for every record, so it is written for
    speed."""
    out: list[str] = []
    append = out.append
    metadata = record.metadata
    for part in parts:
        if isinstance(part, str):
            append(part)
            continue
        paths, fields, masked = part
        found: Any = None
        if metadata:
            for path in paths:
                value = _lookup(metadata, path)
                if _scalar(value):
                    found = value
                    break
        if found is None:
            for head, attribute in fields:
                owner = record if head is None else getattr(record, head)
                value = getattr(owner, attribute, None)
                if value is not None and value != "" and isinstance(value, (str, int, float)):
                    found = value
                    break
        if found is None:
            append(MISSING)
            continue
        text = found if type(found) is str else str(found)
        append(mask_secret(text) if masked else text)
    return "".join(out)


@lru_cache(maxsize=1024)
def compile_renderer(template: str) -> Callable[[AuditRecord], str]:
    """:func:`render` of one template as straight-line code (as :mod:`dataclasses` writes
    ``__init__``): every record's message is rendered, and walking the compiled parts cost
    three times the reads themselves. A record with metadata takes :func:`render` (variables
    are looked up there first); a test proves both give the same for generated records."""
    parts = compile_template(template)
    namespace: dict[str, Any] = {
        "generic": render,
        "parts": parts,
        "MISSING": MISSING,
        "mask_secret": mask_secret,
        "scalars": (str, int, float),
    }
    lines = [
        "def render(record):",
        "    if record.metadata:",
        "        return generic(parts, record)",
    ]
    pieces = []
    for number, part in enumerate(parts):
        if isinstance(part, str):
            pieces.append(repr(part))
            continue
        _, fields, masked = part
        found = f"v{number}"
        lines.append(f"    {found} = None")
        indent = "    "
        for head, attribute in fields:
            owner = "record" if head is None else f"record.{head}"
            lines += [
                f"{indent}value = {owner}" + (f".{attribute}" if head is None else ""),
                *(
                    []
                    if head is None
                    else [f"{indent}value = None if value is None else value.{attribute}"]
                ),
                f"{indent}if value is not None and value != '' and isinstance(value, scalars):",
                f"{indent}    {found} = value",
                f"{indent}else:",
            ]
            indent += "    "
        lines.append(f"{indent}pass")
        text = f"{found} if type({found}) is str else str({found})"
        if masked:
            text = f"mask_secret({text})"
        pieces.append(f"(MISSING if {found} is None else {text})")
    lines.append(f"    return ''.join(({', '.join(pieces)},))")
    exec(compile("\n".join(lines), f"<auditwire template {template!r}>", "exec"), namespace)
    function: Callable[[AuditRecord], str] = namespace["render"]
    return function
