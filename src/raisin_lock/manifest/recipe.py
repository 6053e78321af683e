"""Built-in recipes: named, versioned, declarative build descriptions.

A recipe is a TOML file shipped in ``raisin_lock/recipes/``:

- ``doc``: one paragraph on what it builds and what it installs where;
- ``[options]``: defaults a manifest may override in ``[components.NAME.options]``;
- ``steps``: shell steps with ``@option@`` placeholders; a step may be a table
  ``{ run = "...", when = "xen.version >= 4.7" }`` to apply only under a
  version condition (``version`` is the component's own, ``DEP.version`` a
  dependency's; clauses joined with ``and``; ``has DEP`` tests that a
  dependency is declared; a bare option name tests that it is true);
- ``fetch``: steps that run *with network* before the build, in a sandbox
  that can write only the working copy of the source (``meson subprojects
  download``, GRUB's ``./bootstrap``); the tree they leave is pinned in the
  lock by its NAR hash (Nix's fixed-output idea). Same forms as ``steps``; a
  ``when = "source git"`` clause limits a step to one kind of source (a
  Debian source package is complete already);
- ``env``: fixed environment (the reproducibility knobs live here);
- ``[build-deps]``: package names per distro family (debian, fedora, opensuse);
- ``[activate]``: host configuration actions (see :mod:`raisin_lock.activation`);
- ``[tests.NAME]``: functional tests of what the recipe builds, run by
  ``raisin test`` (see :mod:`raisin_lock.testing`). Same keys as a manifest's
  ``[tests.NAME]`` (doc, needs, after, tools, inputs, files, run, expect,
  fail-on, timeout, skip), with two differences: ``needs`` names *recipes*
  (each maps to the stack's component built with that recipe, whatever it is
  called, and ``$xen``/``@xen.version@`` are named after the recipe), and
  the recipe's options are placeholders too (``@extraversion@``, with the
  component's values). A recipe's tests exist in a stack that has a
  component built with it; a manifest table of the same name extends or
  overrides one key by key (``inputs`` entry by entry).

Expanding a recipe gives plain steps, which is what the lock records, so a
lock never depends on the recipe files of the raisin that reads it.

Format history: 1 — doc, options, steps (strings or run/when tables), env,
build-deps, activate; tests added within format 1 (recipes ship with the
raisin that reads them, and a lock never records them).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

RECIPE_FORMAT = 1
_PLACEHOLDER = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)@")


@dataclass(frozen=True)
class Step:
    run: str
    when: str | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    doc: str
    options: dict[str, Any]
    steps: tuple[Step, ...]
    build_deps: dict[str, tuple[str, ...]]
    text_hash: str
    env: dict[str, str] = field(default_factory=dict)
    activate: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, Any] = field(default_factory=dict)  # name -> manifest.TestSpec
    fetch: tuple[Step, ...] = ()


class RecipeError(ValueError):
    pass


def available() -> list[str]:
    return sorted(
        p.name[:-5]
        for p in resources.files("raisin_lock.manifest.recipes").iterdir()
        if p.name.endswith(".toml")
    )


def load(name: str) -> Recipe:

    res = resources.files("raisin_lock.manifest.recipes").joinpath(f"{name}.toml")
    if not res.is_file():
        raise RecipeError(f"unknown recipe {name!r} (available: {', '.join(available())})")
    text = res.read_text()
    data = tomllib.loads(text)
    if data.get("format", 1) > RECIPE_FORMAT:
        raise RecipeError(f"recipe {name!r} has a newer format than this raisin understands")
    steps = [
        Step(s) if isinstance(s, str) else Step(s["run"], s.get("when")) for s in data["steps"]
    ]
    fetch = [
        Step(s) if isinstance(s, str) else Step(s["run"], s.get("when"))
        for s in data.get("fetch", [])
    ]
    return Recipe(
        name=name,
        doc=data.get("doc", ""),
        options=dict(data.get("options", {})),
        steps=tuple(steps),
        build_deps={k: tuple(v) for k, v in data.get("build-deps", {}).items()},
        fetch=tuple(fetch),
        text_hash=_expansion_hash(data),
        env=dict(data.get("env", {})),
        activate=dict(data.get("activate", {})),
        tests=_tests(name, data.get("tests", {})),
    )


def _expansion_hash(data: dict[str, Any]) -> str:
    """SHA-256 of what expansion reads (steps, fetch, options, env, build-deps, activate):
    a change to a recipe's doc or tests is no drift of the locks made from it."""
    keys = ("format", "steps", "fetch", "options", "env", "build-deps", "activate")
    canonical = json.dumps({k: data.get(k) for k in keys}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _tests(recipe: str, tables: dict[str, Any]) -> dict[str, Any]:
    """The recipe's ``[tests.*]``, validated with the manifest's model."""
    from pydantic import ValidationError

    from raisin_lock.manifest.model import TestSpec

    tests = {}
    for tname, table in tables.items():
        try:
            tests[tname] = TestSpec.model_validate(table)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise RecipeError(f"recipe {recipe!r}: tests.{tname}.{where}: {err['msg']}") from None
    return tests


def check_options(recipe: Recipe, options: Mapping[str, Any]) -> None:
    unknown = set(options) - set(recipe.options)
    if unknown:
        raise RecipeError(
            f"unknown option {min(unknown)!r} for recipe {recipe.name!r} "
            f"(expected one of: {', '.join(sorted(recipe.options)) or 'none'})"
        )


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(str(v)) for v in value)
    return str(value)


def version_key(v: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions like 4.17.5 < 4.18 < 4.18.1; non-numeric parts sort after numbers."""
    v = re.sub(r"^\d+:", "", v)  # Debian epoch
    parts = re.split(r"[.\-+~_]", v)
    key: list[tuple[int, int | str]] = []
    for p in parts:
        m = re.match(r"^(\d+)(.*)$", p)
        if m:
            key.append((0, int(m.group(1))))
            if m.group(2):
                key.append((1, m.group(2)))
        elif p:
            key.append((1, p))
    return tuple(key)


_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def condition(
    expr: str, versions: Mapping[str, str], options: Mapping[str, Any], source: str | None = None
) -> bool:
    """Evaluate ``when``: ``version >= 4.7 and xen.version < 4.19``, ``has ovmf``, ``not OPTION``,
    ``source git`` (the component's source kind: git, path, url or debian)."""
    result = True
    for clause in re.split(r"\s+and\s+", expr.strip()):
        clause = clause.strip()
        negate = clause.startswith("not ")
        if negate:
            clause = clause[4:].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(>=|<=|==|!=|>|<)\s*([A-Za-z0-9_.+~\-]+)", clause)
        if m:
            var, op, want = m.groups()
            key = (
                "version"
                if var == "version"
                else var[: -len(".version")]
                if var.endswith(".version")
                else None
            )
            if key is None:
                raise RecipeError(
                    f"cannot evaluate {clause!r}: expected 'version' or 'DEP.version'"
                )
            if key not in versions:
                value = False
            else:
                value = _OPS[op](version_key(versions[key]), version_key(want))
        elif clause.startswith("has "):
            value = clause[4:].strip() in versions
        elif clause.startswith("source "):
            value = source == clause[7:].strip()
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", clause):
            if clause not in options:
                raise RecipeError(f"condition {clause!r} names no option")
            value = bool(options[clause])
        else:
            raise RecipeError(f"cannot evaluate condition {clause!r}")
        result = result and (not value if negate else value)
    return result


def expand(
    recipe: Recipe,
    options: Mapping[str, Any],
    versions: Mapping[str, str] | None = None,
    *,
    source: str | None = None,
    fetch: bool = False,
) -> tuple[str, ...]:
    """Plain steps (``fetch``: the fetch steps): conditions decided, placeholders filled.

    ``versions``: the component's own version under ``"version"`` and each
    declared dependency's version under its name; ``source``: the kind of
    the component's source, for ``when = "source git"``.
    """
    check_options(recipe, options)
    versions = versions or {}
    # @version@ is the component's own version; it is not a user option.
    merged = {
        **recipe.options,
        **options,
        **({"version": versions["version"]} if "version" in versions else {}),
    }

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in merged:
            raise RecipeError(f"recipe {recipe.name!r} uses undefined option @{key}@")
        return _render(merged[key])

    out = []
    for step in recipe.fetch if fetch else recipe.steps:
        if step.when is not None and not condition(step.when, versions, merged, source):
            continue
        text = _PLACEHOLDER.sub(sub, step.run).strip()
        if text:
            out.append(text)
    return tuple(out)
