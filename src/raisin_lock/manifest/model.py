"""The manifest, ``raisin.toml``: what the user wants built.

Components (each with one source, a version, dependencies, an environment and
either inline ``build`` steps or a built-in ``recipe`` with ``options``),
named ``[profiles.*]``, functional ``[tests.*]`` (:mod:`raisin_lock.testing`)
and an optional ``[cache]`` table. It is read with
tomlkit (so line numbers are known for syntax errors) into strict pydantic
models (unknown keys are errors), and every problem becomes one
:class:`~raisin_lock.errors.ManifestError` naming the file, line where known,
the key path and what was expected.

Schema history: v1 (this one) — the shape of CONTRACT.md "Manifest essentials".
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raisin_lock.display import display_path
from raisin_lock.errors import ManifestError
from raisin_lock.hashing import Hash
from raisin_lock.manifest.actions import ActionError, ActivationSpec
from raisin_lock.manifest.actions import parse as parse_actions
from raisin_lock.manifest.git_remote import ref_problem, url_problem
from raisin_lock.manifest.nesting import MAX_DEPTH, too_deep
from raisin_lock.manifest.quick import fingerprint, source_fingerprint

_COMPONENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.\-]*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = {"out", "src", "PATH", "HOME", "TMPDIR", "TZ", "LC_ALL", "SOURCE_DATE_EPOCH"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SourceSpec(_Strict):
    """Where a component's source comes from: exactly one of git, path, url, debian."""

    git: str | None = None
    ref: str | None = None
    path: str | None = None
    url: str | None = None
    hash: str | None = None
    debian: str | None = None
    version: str | None = None
    submodules: bool | None = None  # git only; None = on

    @field_validator("git")
    @classmethod
    def _git_url(cls, url: str | None) -> str | None:
        problem = url_problem(url) if url is not None else None
        if problem:
            raise ValueError(problem)
        return url

    @field_validator("ref")
    @classmethod
    def _git_ref(cls, ref: str | None) -> str | None:
        problem = ref_problem(ref) if ref is not None else None
        if problem:
            raise ValueError(problem)
        return ref

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        kinds = [k for k in ("git", "path", "url", "debian") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(f"expected exactly one of git, path, url, debian (found {found})")
        kind = kinds[0]
        if self.ref is not None and kind != "git":
            raise ValueError("'ref' goes with 'git'")
        if self.submodules is not None and kind != "git":
            raise ValueError("'submodules' goes with 'git'")
        if self.hash is not None and kind != "url":
            raise ValueError("'hash' goes with 'url'")
        if self.version is not None and kind != "debian":
            raise ValueError(
                "'version' goes with 'debian' (a component's version is components.NAME.version)"
            )
        if kind == "debian" and self.version is None:
            raise ValueError("a debian source needs 'version' (e.g. \"1.16.2-1\")")
        for key in ("git", "ref", "path", "url", "debian", "hash", "version"):
            value = getattr(self, key)
            if value is not None and not value.strip():
                raise ValueError(f"'{key}' is empty")
            if value is not None and "\0" in value:
                raise ValueError(f"'{key}' contains a NUL byte")
        if self.hash is not None:
            try:
                Hash.parse(self.hash)
            except ValueError as exc:
                raise ValueError(f"'hash': {exc}") from None
        return self

    @property
    def kind(self) -> str:
        for k in ("git", "path", "url", "debian"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated source without kind")


class ComponentSpec(_Strict):
    """One component as the user wrote it."""

    source: SourceSpec
    version: str | None = None
    deps: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    build: tuple[str, ...] | None = None
    recipe: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    build_deps: tuple[str, ...] = Field(default=(), alias="build-deps")
    pre_build: tuple[str, ...] = Field(default=(), alias="pre-build")
    post_build: tuple[str, ...] = Field(default=(), alias="post-build")
    fetch: tuple[str, ...] | None = None  # None: the recipe's fetch steps (if any)
    fetch_hash: str | None = Field(default=None, alias="fetch-hash")
    follows: str | None = None
    activate: dict[str, Any] | None = None  # checked in load(): raisin_lock.actions

    @property
    def activation(self) -> ActivationSpec:
        return parse_actions(self.activate)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
            if name in RESERVED_ENV:
                raise ValueError(f"{name!r} is set by raisin and cannot be overridden")
        return env

    @field_validator("fetch_hash")
    @classmethod
    def _fetch_hash(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                Hash.parse(v)
            except ValueError:
                raise ValueError(f"expected an SRI hash (sha256-BASE64), found {v!r}") from None
        return v

    @field_validator(
        "env", "build", "pre_build", "post_build", "build_deps", "deps", "options", "fetch"
    )
    @classmethod
    def _no_nul(cls, v: Any) -> Any:
        """Strings that reach a build's command line or environment cannot hold NUL."""
        stack = [v]
        while stack:
            x = stack.pop()
            if isinstance(x, str) and "\0" in x:
                raise ValueError(f"contains a NUL byte: {_describe(x)}")
            if isinstance(x, dict):
                stack.extend(x.keys())
                stack.extend(x.values())
            elif isinstance(x, (list, tuple)):
                stack.extend(x)
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9+._~\-]*$", v):
            raise ValueError(f"invalid version {v!r} (letters, digits and + . _ ~ - only)")
        return v

    @model_validator(mode="after")
    def _build_or_recipe(self) -> ComponentSpec:
        if self.build is None and self.recipe is None:
            raise ValueError(
                "expected 'build' (shell steps) or 'recipe' (a built-in name), or both to replace the recipe's steps"
            )
        if self.options and self.recipe is None:
            raise ValueError("'options' goes with 'recipe'")
        if len(set(self.deps)) != len(self.deps):
            raise ValueError("'deps' lists a component twice")
        return self


class PatternSpec(_Strict):
    """A console pattern given as a regular expression (a plain string is a literal)."""

    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v


class TestInputSpec(_Strict):
    """A binary input of a test: a distro package, unpacked into the store.

    ``debian-binary`` names a Debian binary package (fetched with ``apt-get
    download``); ``version`` pins it (default: the host's apt candidate),
    ``hash`` pins the unpacked tree's NAR hash, ``keep`` (globs) keeps only
    the paths a test needs.
    """

    debian_binary: str = Field(alias="debian-binary")
    version: str | None = None
    hash: str | None = None
    keep: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _pins(self) -> TestInputSpec:
        if not self.debian_binary.strip():
            raise ValueError("'debian-binary' is empty")
        if self.hash is not None:
            if self.version is None:
                raise ValueError("'hash' needs 'version' too (the pin names one package version)")

            try:
                Hash.parse(self.hash)
            except ValueError as exc:
                raise ValueError(f"'hash': {exc}") from None
        for g in self.keep:
            if g.startswith("/") or ".." in g.split("/"):
                raise ValueError(f"'keep': {g!r} must be a relative path pattern without '..'")
        return self


class TestSpec(_Strict):
    """``[tests.NAME]``: a functional test of the realized stack (see raisin_lock.testing).

    Every key is optional here because a manifest table may extend a recipe's
    test of the same name; completeness (``run``) is checked when tests are
    collected.
    """

    __test__ = False  # not a pytest class

    doc: str | None = None
    needs: tuple[str, ...] | None = None
    after: tuple[str, ...] | None = None
    tools: tuple[str, ...] | None = None
    inputs: dict[str, TestInputSpec] | None = None
    files: dict[str, str] | None = None
    run: tuple[str, ...] | None = None
    expect: tuple[str | PatternSpec, ...] | None = None
    fail_on: tuple[str | PatternSpec, ...] | None = Field(default=None, alias="fail-on")
    timeout: float | None = None
    skip: str | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 86400:
            raise ValueError(f"expected seconds between 0 and 86400, found {v}")
        return v

    @field_validator("files")
    @classmethod
    def _files(cls, files: dict[str, str] | None) -> dict[str, str] | None:
        for name in files or {}:
            parts = name.split("/")
            if name.startswith("/") or ".." in parts or "" in parts:
                raise ValueError(
                    f"file name {name!r} must be a relative path inside the test directory"
                )
        return files

    @field_validator("needs", "inputs")
    @classmethod
    def _env_able(cls, v: Any) -> Any:
        for name in v or ():
            if not _COMPONENT_NAME_RE.match(name) or not _ENV_NAME_RE.match(name.replace("-", "_")):
                raise ValueError(
                    f"invalid name {name!r} (it becomes the variable ${name.replace('-', '_')})"
                )
        return v


class ProfileSpec(_Strict):
    components: tuple[str, ...]


class CacheSpec(_Strict):
    substituters: tuple[str, ...] = ()
    trusted_keys: tuple[str, ...] = Field(default=(), alias="trusted-keys")


class RemoteSpec(_Strict):
    url: str | None = None  # grpc[s]://HOST:PORT[/INSTANCE]: realize builds there (--remote)


def read_cache_table(path: Path | None) -> CacheSpec:
    """The ``[cache]`` table of the manifest at ``path`` (empty without one), read on every
    ``realize`` with work to do: straight from the TOML, not by validating the whole manifest
    (anything wrong with the file is then reported by :func:`load`, with its line)."""
    if path is None or not path.exists():
        return CacheSpec()
    try:
        text = path.read_text(encoding="utf-8")
        if too_deep(text) is None:
            return CacheSpec.model_validate(tomllib.loads(text).get("cache", {}))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError):
        pass
    return load(path).model.cache


class ManifestModel(_Strict):
    components: dict[str, ComponentSpec] = Field(default_factory=dict)
    profiles: dict[str, ProfileSpec] = Field(default_factory=dict)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    remote: RemoteSpec = Field(default_factory=RemoteSpec)
    tests: dict[str, TestSpec] = Field(default_factory=dict)

    @field_validator("components")
    @classmethod
    def _names(cls, comps: dict[str, ComponentSpec]) -> dict[str, ComponentSpec]:
        for name in comps:
            if not _COMPONENT_NAME_RE.match(name):
                raise ValueError(f"invalid component name {name!r} (letters, digits, - _ + .)")
        return comps


class Manifest:
    """A parsed, validated ``raisin.toml`` and where it lives."""

    def __init__(self, path: Path, model: ManifestModel, text: str, raw: dict[str, Any]) -> None:
        self.path = path
        self.dir = path.parent
        self.model = model
        self.text = text
        self.raw = raw

    def fingerprint(self, name: str) -> str:
        return fingerprint(self.raw["components"][name])

    def source_fingerprint(self, name: str) -> str:
        return source_fingerprint(self.raw["components"][name])

    @property
    def components(self) -> dict[str, ComponentSpec]:
        return self.model.components

    @property
    def tests(self) -> dict[str, TestSpec]:
        return self.model.tests

    @property
    def profiles(self) -> dict[str, ProfileSpec]:
        if self.model.profiles:
            return self.model.profiles
        return {"default": ProfileSpec(components=tuple(sorted(self.components)))}

    def error(self, key: str, message: str) -> ManifestError:
        return ManifestError(message, file=self.display, line=locate(self.text, key), key=key)

    @property
    def display(self) -> str:
        return display_path(self.path)


def load(path: Path) -> Manifest:
    """Read and validate a manifest; raise ManifestError on any problem."""
    import tomlkit
    from tomlkit.exceptions import ParseError, TOMLKitError

    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            "no such file", file=shown, hint="run `raisin init` to write a starter manifest"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read: {exc}", file=shown) from exc
    line = too_deep(text)
    if line is not None:
        raise ManifestError(
            f"invalid TOML: nested deeper than {MAX_DEPTH} levels", file=shown, line=line
        )
    try:
        doc = tomlkit.parse(text).unwrap()
    except ParseError as exc:
        msg = str(exc)
        msg = re.sub(r" at line \d+ col \d+$", "", msg)
        raise ManifestError(
            f"invalid TOML: {msg} (column {exc.col})", file=shown, line=exc.line
        ) from None
    except TOMLKitError as exc:  # e.g. KeyAlreadyPresent: a key given twice
        raise ManifestError(f"invalid TOML: {exc}", file=shown) from None
    try:
        model = ManifestModel.model_validate(doc)
    except ValidationError as exc:
        raise _translate(exc, shown, text) from None
    manifest = Manifest(path, model, text, doc)
    _check_references(manifest)
    return manifest


def _check_references(m: Manifest) -> None:
    names = m.components
    for cname, spec in names.items():
        for dep in spec.deps:
            if dep not in names:
                raise m.error(
                    f"components.{cname}.deps",
                    f"unknown dependency {dep!r} (known: {', '.join(sorted(names))})",
                )
    for cname, spec in names.items():
        if spec.follows is not None:
            if spec.follows not in names:
                raise m.error(f"components.{cname}.follows", f"unknown component {spec.follows!r}")
            if spec.source.kind != "git":
                raise m.error(
                    f"components.{cname}.follows",
                    "only a git source can follow another component's pins",
                )
    for cname, spec in names.items():
        try:
            parse_actions(spec.activate)
        except ActionError as exc:
            raise m.error(
                f"components.{cname}.activate" + (f".{exc.key}" if exc.key else ""), exc.message
            ) from None
    for tname in m.model.tests:
        if not _COMPONENT_NAME_RE.match(tname):
            raise m.error(
                f"tests.{tname}", f"invalid test name {tname!r} (letters, digits, - _ + .)"
            )
    for pname, prof in m.model.profiles.items():
        if not _COMPONENT_NAME_RE.match(pname):
            raise m.error(
                f"profiles.{pname}", f"invalid profile name {pname!r} (letters, digits, - _ + .)"
            )
        for c in prof.components:
            if c not in names:
                raise m.error(
                    f"profiles.{pname}.components",
                    f"unknown component {c!r} (known: {', '.join(sorted(names)) or 'none'})",
                )


_TYPE_WORDS = {
    "string_type": "a string",
    "list_type": "an array",
    "tuple_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "int_type": "an integer",
    "bool_type": "a boolean",
}


def _describe(value: Any) -> str:
    kinds = {
        str: "string",
        int: "integer",
        float: "float",
        bool: "boolean",
        list: "array",
        dict: "table",
    }
    kind = kinds.get(type(value), type(value).__name__)
    shown = json.dumps(value, default=str)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{kind} {shown}"


def _model_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Which model a location's parent is, to list allowed keys."""
    parts = [p for p in loc if isinstance(p, str)]
    if not parts:
        return ManifestModel
    if parts[0] == "components":
        if len(parts) == 2:
            return ComponentSpec
        if len(parts) == 3 and parts[2] == "source":
            return SourceSpec
        return None
    if parts[0] == "profiles" and len(parts) == 2:
        return ProfileSpec
    if parts[0] == "cache" and len(parts) == 1:
        return CacheSpec
    if parts[0] == "tests":
        if len(parts) == 2:
            return TestSpec
        if len(parts) == 4 and parts[2] == "inputs":
            return TestInputSpec
        if len(parts) == 3 and parts[2] in ("expect", "fail-on"):
            return PatternSpec
        return None
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


_UNION_TAGS = ("str", "PatternSpec")  # pydantic's names for the branches of `str | PatternSpec`


def _translate(exc: ValidationError, shown: str, text: str) -> ManifestError:
    errors = exc.errors()
    err = errors[0]
    if err["loc"] and err["loc"][-1] == "str" and any("PatternSpec" in e["loc"] for e in errors):
        if not isinstance(err.get("input"), dict):
            key = ".".join(str(p) for p in err["loc"][:-1])
            return ManifestError(
                f'expected a string (a literal) or a table {{ regex = "..." }}, found {_describe(err.get("input"))}',
                file=shown,
                line=locate(text, key),
                key=key,
            )
        branch = [e for e in errors if "PatternSpec" in e["loc"]]
        err = next((e for e in branch if e["type"] == "extra_forbidden"), branch[0])
    loc = tuple(
        p
        for p in err["loc"]
        if not (isinstance(p, str) and (p.startswith("function-") or p in _UNION_TAGS))
    )
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, bad = loc[:-1], loc[-1]
        model = _model_for(parent)
        expected = f" (expected one of: {', '.join(_allowed_keys(model))})" if model else ""
        key = ".".join(str(p) for p in parent) or "(top level)"
        return ManifestError(
            f"unknown key {bad!r}{expected}",
            file=shown,
            line=locate(text, ".".join(map(str, loc))),
            key=key,
        )
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = locate(text, key)
    if kind == "missing":
        return ManifestError("missing required key", file=shown, line=line, key=key)
    if kind in _TYPE_WORDS:
        return ManifestError(
            f"expected {_TYPE_WORDS[kind]}, found {_describe(err.get('input'))}",
            file=shown,
            line=line,
            key=key,
        )
    msg = err["msg"]
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    return ManifestError(msg, file=shown, line=line, key=key)


_HEADER_RE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-.]+)\s*=""")


def _split_key(key: str) -> list[str]:
    parts = []
    for m in re.finditer(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', key):
        parts.append(
            m.group(1)
            if m.group(1) is not None
            else m.group(2)
            if m.group(2) is not None
            else m.group(3)
        )
    return parts


def locate(text: str, key: str) -> int | None:
    """Best-effort line number (1-based) of a dotted key path in TOML text."""
    want = _split_key(key)
    table: list[str] = []
    best: tuple[int, int] | None = None  # (matched length, line)
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _HEADER_RE.match(line)
        if m:
            table = _split_key(m.group(1))
            full = table
        else:
            k = _KEY_RE.match(line)
            if not k:
                continue
            full = table + _split_key(k.group(1))
        n = 0
        while n < min(len(full), len(want)) and full[n] == want[n]:
            n += 1
        if n > 0 and n in (len(full), len(want)) and (best is None or n > best[0]):
            best = (n, lineno)
            if n == len(want):
                break
    return best[1] if best else None
