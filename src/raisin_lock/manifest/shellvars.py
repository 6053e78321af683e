"""The variables of a shell file, evaluated without running it.

Legacy Raisin configs are bash files of variable assignments. Executing one
to read its variables would run whatever else it holds, so this module
understands the subset of POSIX sh such files use and nothing more:
assignments (several per line, ``+=``, ``export``/``readonly``), quoting
(``'…'``, ``"…"``, backslashes, line continuations), comments, and
``$VAR`` / ``${VAR}`` / ``${VAR:-word}`` (also ``-``, ``=``, ``:=``, ``+``,
``:+``, ``?``) references to variables set earlier. Everything else —
commands, ``source``, ``if``/``for``, functions, arrays, command
substitution, arithmetic — is reported with its line number and skipped.
Values are expanded as bash expands an assignment's right-hand side: no
word splitting, no globbing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\+?)=")
_DECL_WORDS = {"export", "readonly", "declare", "typeset", "local"}


@dataclass
class ShellFile:
    """What :func:`parse_shell` learned: the variables, where each was set, what it skipped."""

    variables: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    referenced: set[str] = field(default_factory=set)


class _Unsupported(Exception):
    pass


@dataclass
class _Statement:
    line: int
    words: list[str]
    text: str = ""
    simple: bool = True


class _Lexer:
    """Splits shell text into statements of raw words (quotes kept, for later evaluation)."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1

    def _peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def _advance(self, n: int = 1) -> str:
        chunk = self.s[self.i : self.i + n]
        self.line += chunk.count("\n")
        self.i += n
        return chunk

    def statements(self) -> list[_Statement]:
        out: list[_Statement] = []
        cur: _Statement | None = None
        start = 0
        while self.i < len(self.s):
            c = self._peek()
            if c in " \t\r":
                self._advance()
            elif c == "\\" and self._peek(1) == "\n":
                self._advance(2)
            elif c == "#":
                while self.i < len(self.s) and self._peek() != "\n":
                    self._advance()
            elif c in "\n;&" and not (c == "&" and self._peek(1) == "&"):
                if cur is not None:
                    cur.text = self.s[start : self.i].strip()
                    out.append(cur)
                    cur = None
                self._advance()
            elif c in "|&<>()":
                if cur is None:
                    cur, start = _Statement(self.line, []), self.i
                cur.simple = False
                self._advance(2 if self.s[self.i : self.i + 2] in ("&&", "||") else 1)
            else:
                if cur is None:
                    cur, start = _Statement(self.line, []), self.i
                cur.words.append(self._word())
        if cur is not None:
            cur.text = self.s[start:].strip()
            out.append(cur)
        return out

    def _word(self) -> str:
        begin = self.i
        while self.i < len(self.s):
            c = self._peek()
            if c in " \t\r\n;&|<>()":
                if c == "(" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\+?=", self.s[begin : self.i]):
                    self._balanced("(", ")")  # NAME=( array )
                    continue
                break
            if c == "\\":
                self._advance(2)
            elif c == "'":
                self._advance()
                while self.i < len(self.s) and self._peek() != "'":
                    self._advance()
                self._advance()
            elif c == '"':
                self._double()
            elif c == "$":
                self._dollar()
            elif c == "`":
                self._advance()
                while self.i < len(self.s) and self._peek() != "`":
                    self._advance(2 if self._peek() == "\\" else 1)
                self._advance()
            else:
                self._advance()
        return self.s[begin : self.i]

    def _double(self) -> None:
        self._advance()
        while self.i < len(self.s) and self._peek() != '"':
            c = self._peek()
            if c == "\\":
                self._advance(2)
            elif c == "$":
                self._dollar()
            elif c == "`":
                self._advance()
                while self.i < len(self.s) and self._peek() != "`":
                    self._advance(2 if self._peek() == "\\" else 1)
                self._advance()
            else:
                self._advance()
        self._advance()

    def _dollar(self) -> None:
        nxt = self._peek(1)
        if nxt == "{":
            self._advance()
            self._balanced("{", "}")
        elif nxt == "(":
            self._advance()
            self._balanced("(", ")")
        else:
            self._advance()

    def _balanced(self, open_: str, close: str) -> None:
        depth = 0
        while self.i < len(self.s):
            c = self._peek()
            if c == "\\":
                self._advance(2)
                continue
            if c == "'":
                self._advance()
                while self.i < len(self.s) and self._peek() != "'":
                    self._advance()
            elif c == '"':
                self._double()
                continue
            elif c == open_:
                depth += 1
            elif c == close:
                depth -= 1
                if depth == 0:
                    self._advance()
                    return
            self._advance()


class _Evaluator:
    """Expands one raw word the way bash expands an assignment's value (no splitting, no globbing)."""

    def __init__(
        self, variables: dict[str, str], referenced: set[str], undefined: list[str]
    ) -> None:
        self.vars = variables
        self.referenced = referenced
        self.undefined = undefined

    def value(self, raw: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(raw):
            c = raw[i]
            if c == "\\":
                if raw[i + 1 : i + 2] != "\n":
                    out.append(raw[i + 1 : i + 2])
                i += 2
            elif c == "'":
                end = raw.find("'", i + 1)
                end = len(raw) if end < 0 else end
                out.append(raw[i + 1 : end])
                i = end + 1
            elif c == '"':
                text, i = self._double(raw, i + 1)
                out.append(text)
            elif c == "$":
                text, i = self._dollar(raw, i)
                out.append(text)
            elif c == "`":
                raise _Unsupported("command substitution `…` is not run")
            else:
                out.append(c)
                i += 1
        return "".join(out)

    def _double(self, raw: str, i: int) -> tuple[str, int]:
        out: list[str] = []
        while i < len(raw) and raw[i] != '"':
            c = raw[i]
            if c == "\\":
                nxt = raw[i + 1 : i + 2]
                if nxt == "\n":
                    pass
                elif nxt in ('"', "\\", "$", "`"):
                    out.append(nxt)
                else:
                    out.append("\\" + nxt)
                i += 2
            elif c == "$":
                text, i = self._dollar(raw, i)
                out.append(text)
            elif c == "`":
                raise _Unsupported("command substitution `…` is not run")
            else:
                out.append(c)
                i += 1
        return "".join(out), i + 1

    def _lookup(self, name: str) -> str | None:
        self.referenced.add(name)
        return self.vars.get(name)

    def _dollar(self, raw: str, i: int) -> tuple[str, int]:
        nxt = raw[i + 1 : i + 2]
        if nxt == "(":
            raise _Unsupported(
                "arithmetic $((…)) is not evaluated"
                if raw[i + 2 : i + 3] == "("
                else "command substitution $(…) is not run"
            )
        if nxt == "{":
            depth, j = 0, i + 1
            while j < len(raw):
                if raw[j] == "\\":
                    j += 2
                    continue
                if raw[j] == "{":
                    depth += 1
                elif raw[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            return self._param(raw[i + 2 : j]), j + 1
        m = _NAME_RE.match(raw, i + 1)
        if m:
            value = self._lookup(m.group(0))
            if value is None:
                self.undefined.append(m.group(0))
            return value or "", m.end()
        if nxt and (nxt.isdigit() or nxt in "@*#?$!-"):
            raise _Unsupported(f"${nxt} (a positional or special parameter) has no value here")
        return "$", i + 1

    def _param(self, body: str) -> str:
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-=+?])(.*))?$", body, re.DOTALL)
        if not m:
            raise _Unsupported(
                f"${{{body}}} is a parameter expansion import-config does not evaluate"
            )
        name, colon, op, word = m.groups()
        value = self._lookup(name)
        unset = value is None or (colon == ":" and value == "")
        if op is None:
            if value is None:
                self.undefined.append(name)
            return value or ""
        if op in "-=":
            if unset:
                result = self.value(word)
                if op == "=":
                    self.vars[name] = result
                return result
            return value or ""
        if op == "+":
            return "" if unset else self.value(word)
        if unset:  # "?"
            raise _Unsupported(f"${{{body}}}: {name} is not set")
        return value or ""


def parse_shell(text: str, defaults: dict[str, str] | None = None) -> ShellFile:
    """Evaluate the assignments of a shell file in order, without running anything.

    ``defaults``: variables set before the file is read (Raisin's defconfig);
    ``lines`` then says which variables the file itself set.
    """
    result = ShellFile(variables=dict(defaults or {}))
    for st in _Lexer(text).statements():
        words = list(st.words)
        shown = st.text if len(st.text) <= 60 else st.text[:57] + "..."
        declared = False
        while words and words[0] in _DECL_WORDS:
            words.pop(0)
            declared = True
            while words and words[0].startswith("-"):
                words.pop(0)
        assigns = [w for w in words if _ASSIGN_RE.match(w)]
        if not words or not st.simple or len(assigns) != len(words):
            if (
                declared
                and st.simple
                and all(_ASSIGN_RE.match(w) or _NAME_RE.fullmatch(w) for w in words)
            ):
                assigns = [
                    w for w in words if _ASSIGN_RE.match(w)
                ]  # `export NAME`: nothing to evaluate
            else:
                what = (
                    "a command with variables for it"
                    if assigns and st.simple and _ASSIGN_RE.match(words[0])
                    else "not a variable assignment"
                )
                result.problems.append(f"line {st.line}: `{shown}`: {what}; not run")
                continue
        for word in assigns:
            m = _ASSIGN_RE.match(word)
            assert m is not None
            name, append = m.group(1), m.group(2) == "+"
            raw = word[m.end() :]
            if raw.startswith("("):
                result.problems.append(
                    f"line {st.line}: {name}: arrays are not supported; {name} left unset"
                )
                continue
            undefined: list[str] = []
            try:
                value = _Evaluator(result.variables, result.referenced, undefined).value(raw)
            except _Unsupported as exc:
                result.problems.append(f"line {st.line}: {name}: {exc}; {name} left unset")
                result.variables.pop(name, None)
                continue
            for ref in dict.fromkeys(undefined):
                result.problems.append(
                    f"line {st.line}: {name} uses ${ref}, which the file does not set (taken as empty)"
                )
            result.variables[name] = (result.variables.get(name, "") + value) if append else value
            result.lines[name] = st.line
    return result
