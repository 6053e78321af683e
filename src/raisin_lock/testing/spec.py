"""Which tests a stack has, and each one fully resolved: :class:`TestCase`.

Tests come from two places. A recipe's ``[tests.NAME]`` exists in every
stack that has a component built with that recipe; its ``needs`` name
recipes, each mapped to the component built with it (so a recipe test works
whatever the user called the component). A manifest's ``[tests.NAME]`` adds
a test, or extends the recipe test of the same name key by key (``inputs``
and ``files`` entry by entry) — to pin an input, replace one file, lengthen
a timeout or ``skip`` it.

Placeholders are filled here, once the lock is known: ``@NAME.version@`` (the
locked version of a needed component), ``@NAME.release@`` (its leading
dotted numbers: 4.17.5 of 4.17.5+72-g01140da4e8, what banners print), and in
a recipe's tests the recipe's options with the component's values. In a
regular expression the values are escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from raisin_lock.errors import InputError
from raisin_lock.manifest import recipe as recipes

if TYPE_CHECKING:
    from raisin_lock.lock.lockfile import Lock
    from raisin_lock.manifest.model import Manifest, PatternSpec, TestInputSpec, TestSpec

DEFAULT_TIMEOUT = 120.0
_PLACEHOLDER = re.compile(r"@([A-Za-z_][A-Za-z0-9_.+\-]*)@")


@dataclass(frozen=True)
class Pattern:
    """A console pattern: a literal string, or a regular expression (``^``/``$`` match at lines)."""

    text: str
    regex: bool = False

    def find(self, haystack: str, start: int = 0) -> int:
        """End offset of the first match at or after ``start``, or -1."""
        if self.regex:
            m = re.compile(self.text, re.MULTILINE).search(haystack, start)
            return m.end() if m else -1
        i = haystack.find(self.text, start)
        return i + len(self.text) if i >= 0 else -1

    def __str__(self) -> str:
        return f"/{self.text}/" if self.regex else repr(self.text)


@dataclass(frozen=True)
class TestCase:
    """One test, ready to run against one lock."""

    __test__ = False  # not a pytest class

    name: str
    origin: str  # "recipe xen", "raisin.toml", "recipe xen + raisin.toml"
    doc: str
    needs: dict[str, str | None]  # variable name as declared -> component (None: not in the stack)
    after: tuple[str, ...]
    tools: tuple[str, ...]
    inputs: dict[str, TestInputSpec]
    files: dict[str, str]
    run: tuple[str, ...]
    expect: tuple[Pattern, ...]
    fail_on: tuple[Pattern, ...]
    timeout: float
    skip: str | None
    file: str = "raisin.toml"  # where the last word on it was declared, for messages
    absent: dict[str, str] = field(default_factory=dict)  # need -> why it is missing

    @property
    def components(self) -> list[str]:
        return [c for c in self.needs.values() if c is not None]


def _recipe_owners(lk: Lock) -> dict[str, str]:
    """recipe name -> the component built with it (one named like the recipe wins)."""
    owners: dict[str, str] = {}
    for name in lk.closure(sorted(lk.components)):
        r = lk.components[name].recipe
        if r and (r not in owners or name == r):
            owners[r] = name
    return owners


def _merge(base: TestSpec, override: TestSpec) -> TestSpec:
    update: dict[str, Any] = {}
    for key in override.model_fields_set:
        value = getattr(override, key)
        if key in ("inputs", "files") and getattr(base, key) and value is not None:
            value = {**getattr(base, key), **value}
        update[key] = value
    return base.model_copy(update=update)


def collect(lk: Lock, manifest: Manifest | None) -> dict[str, TestCase]:
    """Every test of this stack, in a stable order (recipe tests by build order, then the manifest's)."""

    owners = _recipe_owners(lk)
    specs: dict[str, tuple[str, TestSpec, str | None]] = {}  # name -> (origin, spec, owning recipe)
    build_order = lk.closure(sorted(lk.components))
    for rname in sorted(owners, key=lambda r: build_order.index(owners[r])):
        try:
            rec = recipes.load(rname)
        except recipes.RecipeError as exc:
            raise InputError(str(exc), key=f"components.{owners[rname]}.recipe") from None
        for tname, tspec in rec.tests.items():
            specs.setdefault(tname, (f"recipe {rname}", tspec, rname))
    shown = manifest.display if manifest else "raisin.toml"
    for tname, tspec in (manifest.tests if manifest else {}).items():
        if tname in specs:
            origin, base, owner_recipe = specs[tname]
            specs[tname] = (f"{origin} + {shown}", _merge(base, tspec), owner_recipe)
        else:
            specs[tname] = (shown, tspec, None)

    cases: dict[str, TestCase] = {}
    for tname, (origin, spec, owner_recipe) in specs.items():
        cases[tname] = _resolve(tname, origin, spec, owner_recipe, lk, manifest, owners)
    for tname, case in cases.items():
        for a in case.after:
            if a not in cases:
                raise InputError(
                    f"unknown test {a!r} in 'after' (known: {', '.join(sorted(cases))})",
                    file=case.file,
                    key=f"tests.{tname}.after",
                )
    order(cases, list(cases))  # cycles are errors
    return cases


def _resolve(
    tname: str,
    origin: str,
    spec: TestSpec,
    recipe_name: str | None,
    lk: Lock,
    manifest: Manifest | None,
    owners: dict[str, str],
) -> TestCase:
    where = (
        origin.split(" + ")[-1]
        if " + " in origin or recipe_name is None
        else f"recipes/{recipe_name}.toml"
    )
    needs: dict[str, str | None] = {}
    absent: dict[str, str] = {}
    for n in spec.needs or ():
        if recipe_name is not None:
            comp = owners.get(n) or (n if n in lk.components else None)
            if comp is None:
                absent[n] = f"a component built with the {n!r} recipe"
        else:
            comp = n if n in lk.components else None
            if comp is None:
                absent[n] = f"component {n!r}"
        needs[n] = comp
    values: dict[str, str] = {}
    for n, comp in needs.items():
        if comp is not None:
            v = lk.components[comp].version
            m = re.match(r"\d+(?:\.\d+)*", v)
            values[f"{n}.version"] = v
            values[f"{n}.release"] = m.group(0) if m else v
    if recipe_name is not None:
        opts: dict[str, Any] = dict(recipes.load(recipe_name).options)
        owner = owners.get(recipe_name)
        if manifest is not None and owner in manifest.components:
            opts.update(manifest.components[owner].options)
        values.update({k: recipes._render(v) for k, v in opts.items()})

    def fill(text: str, key: str, *, regex: bool = False) -> str:
        def sub(m: re.Match[str]) -> str:
            k = m.group(1)
            if k in values:
                return re.escape(values[k]) if regex else values[k]
            if k.rsplit(".", 1)[0] in absent:
                return m.group(0)  # the test is skipped anyway
            raise InputError(
                f"unknown placeholder @{k}@ (known: {', '.join('@' + v + '@' for v in sorted(values)) or 'none'})",
                file=where,
                key=f"tests.{tname}.{key}",
            )

        return _PLACEHOLDER.sub(sub, text)

    def patterns(items: Iterable[str | PatternSpec] | None, key: str) -> tuple[Pattern, ...]:
        out = []
        for i, p in enumerate(items or ()):
            if isinstance(p, str):
                out.append(Pattern(fill(p, f"{key}.{i}")))
            else:
                out.append(Pattern(fill(p.regex, f"{key}.{i}", regex=True), regex=True))
        return tuple(out)

    if spec.run is None and spec.skip is None:
        raise InputError(
            "missing 'run' (the shell steps of the test)", file=where, key=f"tests.{tname}"
        )
    inputs = dict(spec.inputs or {})
    clash = set(inputs) & set(needs)
    if clash:
        raise InputError(
            f"{min(clash)!r} is both an input and a need", file=where, key=f"tests.{tname}.inputs"
        )
    return TestCase(
        name=tname,
        origin=origin,
        doc=spec.doc or "",
        needs=needs,
        after=tuple(spec.after or ()),
        tools=tuple(spec.tools or ()),
        inputs=inputs,
        files={path: fill(text, f"files.{path}") for path, text in (spec.files or {}).items()},
        run=tuple(fill(s, f"run.{i}") for i, s in enumerate(spec.run or ())),
        expect=patterns(spec.expect, "expect"),
        fail_on=patterns(spec.fail_on, "fail-on"),
        timeout=spec.timeout or DEFAULT_TIMEOUT,
        skip=spec.skip,
        file=where,
        absent=absent,
    )


def order(cases: dict[str, TestCase], selected: list[str]) -> list[str]:
    """``selected`` and everything they come ``after``, prerequisites first, else in collection order."""
    rank = {n: i for i, n in enumerate(cases)}
    wanted: set[str] = set()
    stack = list(selected)
    while stack:
        n = stack.pop()
        if n not in wanted:
            wanted.add(n)
            stack.extend(cases[n].after)
    done: list[str] = []
    placed: set[str] = set()
    visiting: list[str] = []

    def visit(n: str) -> None:
        if n in placed:
            return
        if n in visiting:
            cycle = " -> ".join([*visiting[visiting.index(n) :], n])
            raise InputError(
                f"tests come after each other in a cycle: {cycle}", key=f"tests.{n}.after"
            )
        visiting.append(n)
        for a in sorted(cases[n].after, key=rank.__getitem__):
            visit(a)
        visiting.pop()
        placed.add(n)
        done.append(n)

    for n in sorted(wanted, key=rank.__getitem__):
        visit(n)
    return done
