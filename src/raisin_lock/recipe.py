"""Built-in recipes: named, versioned, declarative build descriptions.

A recipe is a TOML file shipped in ``raisin_lock/recipes/``: a doc line,
default ``options``, ``steps`` with ``@option@`` placeholders, build
dependencies per distro family and, later, host configuration actions.
Expanding a recipe gives plain steps, which is what the lock records, so a
lock never depends on the recipe files of the raisin that reads it.

Format history: v1 — doc, options, steps, build-deps.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

RECIPE_FORMAT = 1
_PLACEHOLDER = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)@")


@dataclass(frozen=True)
class Recipe:
    name: str
    doc: str
    options: dict[str, Any]
    steps: tuple[str, ...]
    build_deps: dict[str, tuple[str, ...]]
    text_hash: str


class RecipeError(ValueError):
    pass


def available() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("raisin_lock.recipes").iterdir() if p.name.endswith(".toml"))


def load(name: str) -> Recipe:
    import hashlib

    res = resources.files("raisin_lock.recipes").joinpath(f"{name}.toml")
    if not res.is_file():
        raise RecipeError(f"unknown recipe {name!r} (available: {', '.join(available())})")
    text = res.read_text()
    data = tomllib.loads(text)
    if data.get("format", 1) > RECIPE_FORMAT:
        raise RecipeError(f"recipe {name!r} has a newer format than this raisin understands")
    return Recipe(
        name=name,
        doc=data.get("doc", ""),
        options=dict(data.get("options", {})),
        steps=tuple(data["steps"]),
        build_deps={k: tuple(v) for k, v in data.get("build-deps", {}).items()},
        text_hash=hashlib.sha256(text.encode()).hexdigest(),
    )


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(str(v)) for v in value)
    return str(value)


def expand(recipe: Recipe, options: dict[str, Any]) -> tuple[str, ...]:
    unknown = set(options) - set(recipe.options)
    if unknown:
        raise RecipeError(
            f"unknown option {sorted(unknown)[0]!r} for recipe {recipe.name!r} "
            f"(expected one of: {', '.join(sorted(recipe.options)) or 'none'})"
        )
    merged = {**recipe.options, **options}

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in merged:
            raise RecipeError(f"recipe {recipe.name!r} uses undefined option @{key}@")
        return _render(merged[key])

    return tuple(s for s in (_PLACEHOLDER.sub(sub, step).strip() for step in recipe.steps) if s)
