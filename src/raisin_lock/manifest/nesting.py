"""A nesting guard run on TOML text before any parser sees it.

``tomllib`` and ``tomlkit`` parse arrays and inline tables recursively, so a
file such as ``a = [[[[...]]]]`` a few hundred levels deep ends in
``RecursionError`` instead of an error naming the file. Real manifests and
locks nest three or four levels; both readers refuse anything deeper than
:data:`MAX_DEPTH` with one line, before parsing.
"""

from __future__ import annotations

MAX_DEPTH = 32


def too_deep(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The 1-based line where brackets and braces first nest deeper than ``limit``, else None.

    Strings (all four TOML kinds) and comments are skipped; the scan is
    linear and never recurses.
    """
    depth = 0
    line = 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                if text[j] == "\\" and c == '"':
                    j += 1
                elif text[j] == "\n":
                    line += 1
                    if len(quote) == 1:
                        break  # an unterminated one-line string: the parser will say so
                j += 1
            i = j + len(quote)
            continue
        elif c in "[{":
            depth += 1
            if depth > limit:
                return line
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return None
