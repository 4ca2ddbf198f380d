"""Java regular expressions, as the AWS models write them, run with the ``regex`` package.

The model's ``pattern`` traits are ``java.util.regex`` patterns checked with
``Matcher.matches()``: the whole value must match.  Python's ``re`` rejects many of
them (``\\p{Alnum}``, ``\\p{L}``) and others mean something else in Python, so
:func:`compile_pattern` translates a Java pattern token by token into a ``regex``
pattern with Java's meaning:

* ``\\p{Alnum}`` and the other POSIX classes, ``\\d``, ``\\s``, ``\\w`` are ASCII-only
  (Java's default; ``UNICODE_CHARACTER_CLASS`` is not supported).  ``\\p{L}``,
  ``\\p{Z}``, ``\\p{N}``, scripts (``\\p{IsLatin}``) and blocks (``\\p{InGreek}``) are
  Unicode, as in Java.
* ``.``, ``^`` and ``$`` follow Java's line terminators (``\\n``, ``\\r\\n``, ``\\r``,
  U+0085, U+2028, U+2029) and its flags ``s`` (DOTALL), ``m`` (MULTILINE) and ``d``
  (UNIX_LINES), including scoped forms ``(?-s:...)`` and flags set mid-pattern.
* ``\\Q...\\E``, ``\\x{...}``, ``\\0nn`` octal, ``\\cX``, ``\\e``, ``\\h``, ``\\v``, ``\\R``,
  ``\\k<name>``, possessive quantifiers and atomic groups are supported.
* The compiled pattern is anchored (``\\A(?:...)\\Z``), so ``match``, ``search`` and
  ``fullmatch`` all give ``Matcher.matches()`` semantics.

Known approximations: flag ``i`` uses Unicode case folding (Java folds ASCII only unless
``u`` is also given); ``\\b`` uses ``regex``'s Unicode word boundary.  Constructs this
translator cannot render faithfully (nested classes ``[a[b]]``, intersections ``&&``,
flags ``x``/``U``/``c``, ``\\G``, ``java*`` properties) raise ``ValueError`` instead of
silently meaning something else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import regex

__all__ = ["compile_pattern", "is_linear", "translate_pattern"]

_MAX_CODE_POINT = 0x10FFFF

# Java's line terminators (without UNIX_LINES); "\r\n" counts as one.
_TERMINATORS = "\n\r\u0085\u2028\u2029"

Ranges = tuple[tuple[int, int], ...]


def _r(*spans: str) -> Ranges:
    """Ranges from 'a-z'-style spans or single characters."""
    out = []
    for span in spans:
        if len(span) == 3 and span[1] == "-":
            out.append((ord(span[0]), ord(span[2])))
        else:
            out.extend((ord(c), ord(c)) for c in span)
    return tuple(out)


# Java's POSIX classes (US-ASCII only by default) and shorthand classes.
_POSIX: dict[str, Ranges] = {
    "Lower": _r("a-z"),
    "Upper": _r("A-Z"),
    "ASCII": ((0x00, 0x7F),),
    "Alpha": _r("a-z", "A-Z"),
    "Digit": _r("0-9"),
    "Alnum": _r("a-z", "A-Z", "0-9"),
    "Punct": _r("!-/", ":-@", "[-`", "{-~"),
    "Graph": _r("!-~"),
    "Print": _r(" -~"),
    "Blank": _r(" \t"),
    "Cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "XDigit": _r("0-9", "a-f", "A-F"),
    "Space": _r(" \t\n\x0b\f\r"),
}
_SHORTHAND: dict[str, Ranges] = {
    "d": _POSIX["Digit"],
    "s": _POSIX["Space"],
    "w": _r("a-z", "A-Z", "0-9", "_"),
    "h": _r(" \t\xa0\u1680\u180e", "\u2000-\u200a", "\u202f\u205f\u3000"),
    "v": _r("\n\x0b\f\r\x85\u2028\u2029"),
}
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "a": "\x07", "e": "\x1b"}
_SUPPORTED_FLAGS = frozenset("imsdu")


def _complement(ranges: Ranges) -> Ranges:
    out = []
    nxt = 0
    for lo, hi in sorted(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= _MAX_CODE_POINT:
        out.append((nxt, _MAX_CODE_POINT))
    return tuple(out)


def _char(cp: int) -> str:
    """A code point as a ``regex`` literal, valid in and out of classes."""
    if cp < 0x80 and (chr(cp).isalnum() or chr(cp) == "_"):
        return chr(cp)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _class_body(ranges: Ranges) -> str:
    return "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges)


@dataclass(frozen=True)
class _Flags:
    dotall: bool = False
    multiline: bool = False
    unix_lines: bool = False
    ignore_case: bool = False

    def apply(self, spec: str, pattern: str) -> _Flags:
        on, _, off = spec.partition("-")
        flags = self
        for letters, value in ((on, True), (off, False)):
            for letter in letters:
                if letter not in _SUPPORTED_FLAGS:
                    raise ValueError(f"unsupported Java regex flag {letter!r} in {pattern!r}")
                if letter == "s":
                    flags = replace(flags, dotall=value)
                elif letter == "m":
                    flags = replace(flags, multiline=value)
                elif letter == "d":
                    flags = replace(flags, unix_lines=value)
                elif letter == "i":
                    flags = replace(flags, ignore_case=value)
                # "u" (UNICODE_CASE): regex's case folding is Unicode already.
        return flags


@dataclass
class _Group:
    flags: _Flags
    extra_closers: int = 0  # "(?i:" groups opened by a bare "(?i)" inside this group


class _Translator:
    def __init__(self, pattern: str):
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        self.groups: list[_Group] = [_Group(_Flags())]
        self.captures = 0
        # What could make a match backtrack more than linearly (see is_linear).
        self.groups_opened = self.alternations = self.quantifiers = 0

    # -- helpers -------------------------------------------------------------------
    def error(self, what: str) -> ValueError:
        return ValueError(f"Java regex {self.src!r}: {what} at index {self.pos}")

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.src[i] if i < len(self.src) else ""

    def take(self) -> str:
        if self.pos >= len(self.src):
            raise self.error("unexpected end of pattern")
        c = self.src[self.pos]
        self.pos += 1
        return c

    @property
    def flags(self) -> _Flags:
        return self.groups[-1].flags

    def terminators(self) -> str:
        return "\n" if self.flags.unix_lines else _TERMINATORS

    # -- translation -----------------------------------------------------------------
    def translate(self) -> str:
        while self.pos < len(self.src):
            c = self.take()
            if c == "\\":
                self.out.append(self.escape(in_class=False))
            elif c == "[":
                self.out.append(self.char_class())
            elif c == "(":
                self.groups_opened += 1
                self.open_group()
            elif c == ")":
                self.close_group()
            elif c == "|":
                self.alternations += 1
                group = self.groups[-1]
                reopen = "(?i:" if group.flags.ignore_case else "(?-i:"
                self.out.append(")" * group.extra_closers + "|" + reopen * group.extra_closers)
            elif c == ".":
                self.out.append(self.dot())
            elif c == "^":
                self.out.append(self.caret())
            elif c == "$":
                self.out.append(self.dollar(self.flags.multiline))
            else:
                # Quantifiers, braces and literals mean the same in both dialects.
                self.quantifiers += c in "*+?{"
                self.out.append(c)
        if len(self.groups) != 1:
            raise self.error("unclosed group")
        self.out.append(")" * self.groups[0].extra_closers)
        return "".join(self.out)

    def dot(self) -> str:
        if self.flags.dotall:
            return "(?s:.)"
        return "[^" + _class_body(_r(self.terminators())) + "]"

    def caret(self) -> str:
        if not self.flags.multiline:
            return r"\A"
        if self.flags.unix_lines:
            return r"(?!\Z)(?:\A|(?<=\n))"
        # After any terminator except between "\r" and "\n"; never at the end of input.
        return r"(?!\Z)(?:\A|(?<=[\n\u0085\u2028\u2029])|(?<=\r)(?!\n))"

    def dollar(self, multiline: bool) -> str:
        if self.flags.unix_lines:
            return r"(?=\n|\Z)" if multiline else r"(?=\n?\Z)"
        if multiline:
            return r"(?=[\n\r\u0085\u2028\u2029]|\Z)(?!(?<=\r)\n)"
        return r"(?=(?:\r\n|[\n\r\u0085\u2028\u2029])?\Z)(?!(?<=\r)\n)"

    def open_group(self) -> None:
        if self.peek() != "?":
            self.captures += 1
            self.groups.append(_Group(self.flags))
            self.out.append("(")
            return
        self.take()
        c = self.peek()
        if c in (":", "=", "!", ">"):
            self.take()
            self.groups.append(_Group(self.flags))
            self.out.append("(?" + c)
            return
        if c == "<":
            self.take()
            nxt = self.peek()
            if nxt in ("=", "!"):
                self.take()
                self.groups.append(_Group(self.flags))
                self.out.append("(?<" + nxt)
                return
            end = self.src.find(">", self.pos)
            name = self.src[self.pos : end] if end >= 0 else ""
            if not name.isascii() or not name.isalnum() or not name[0].isalpha():
                raise self.error("bad group name")
            self.pos = end + 1
            self.captures += 1
            self.groups.append(_Group(self.flags))
            self.out.append(f"(?<{name}>")
            return
        # Inline flags: "(?ms)" for the rest of the enclosing group, "(?-s:...)" scoped.
        spec = []
        while self.peek() not in (")", ":", ""):
            spec.append(self.take())
        end = self.take()
        new_flags = self.flags.apply("".join(spec), self.src)
        case_group = "(?i:" if new_flags.ignore_case else "(?-i:"
        case_changed = new_flags.ignore_case != self.flags.ignore_case
        if end == ":":
            self.groups.append(_Group(new_flags))
            self.out.append(case_group if case_changed else "(?:")
        else:
            group = self.groups[-1]
            group.flags = new_flags
            if case_changed:
                group.extra_closers += 1
                self.out.append(case_group)

    def close_group(self) -> None:
        if len(self.groups) == 1:
            raise self.error("unmatched ')'")
        group = self.groups.pop()
        self.out.append(")" * group.extra_closers + ")")

    def char_class(self) -> str:
        out = ["["]
        if self.peek() == "^":
            self.take()
            out.append("^")
        first = True
        while True:
            c = self.take()
            if c == "]" and not first:
                break
            if c == "[":
                raise self.error("nested character classes are not supported")
            if c == "&" and self.peek() == "&":
                raise self.error("character class intersection is not supported")
            if c == "\\":
                out.append(self.escape(in_class=True))
            elif c in "]^[\\":
                out.append("\\" + c)
            else:
                out.append(c)
            first = False
        out.append("]")
        return "".join(out)

    def ranges(self, ranges: Ranges, negate: bool, in_class: bool) -> str:
        if in_class:
            return _class_body(_complement(ranges) if negate else ranges)
        return ("[^" if negate else "[") + _class_body(ranges) + "]"

    def escape(self, *, in_class: bool) -> str:
        c = self.take()
        lower = c.lower()
        if lower in _SHORTHAND:
            return self.ranges(_SHORTHAND[lower], c.isupper(), in_class)
        if c in ("p", "P"):
            return self.property(negate=c == "P", in_class=in_class)
        if c in _SIMPLE_ESCAPES:
            return _char(ord(_SIMPLE_ESCAPES[c]))
        if c == "x":
            if self.peek() == "{":
                end = self.src.find("}", self.pos)
                digits = self.src[self.pos + 1 : end] if end > 0 else ""
                self.pos = end + 1
            else:
                digits = self.take() + self.take()
            return _char(self.hex(digits))
        if c == "u":
            return _char(self.hex("".join(self.take() for _ in range(4))))
        if c == "0":
            digits = ""
            while len(digits) < 3 and self.peek() and self.peek() in "01234567":
                if len(digits) == 2 and digits[0] > "3":
                    break
                digits += self.take()
            if not digits:
                raise self.error("illegal octal escape")
            return _char(int(digits, 8))
        if c == "c":
            return _char(ord(self.take()) ^ 64)
        if c == "Q":
            end = self.src.find("\\E", self.pos)
            end = len(self.src) if end < 0 else end
            quoted = self.src[self.pos : end]
            self.pos = min(end + 2, len(self.src))
            return "".join(_char(ord(ch)) for ch in quoted)
        if c == "E":
            return ""  # a stray \E is ignored by Java
        if in_class:
            if c.isascii() and c.isalnum():
                raise self.error(f"illegal escape \\{c} in a character class")
            return _char(ord(c))
        if c == "R":
            return r"(?:\r\n|[\n\x0b\f\r\x85\u2028\u2029])"
        if c == "z":
            return r"\Z"
        if c == "Z":
            return self.dollar(multiline=False)
        if c in ("A", "b", "B", "X"):
            return "\\" + c
        if c in "123456789":
            # Java reads as many digits as still name an existing group.
            number = int(c)
            while self.peek() and self.peek() in "0123456789" and number * 10 + int(self.peek()) <= self.captures:
                number = number * 10 + int(self.take())
            return f"(?:\\{number})"
        if c == "k":
            if self.take() != "<":
                raise self.error("\\k must be followed by <name>")
            end = self.src.find(">", self.pos)
            if end < 0:
                raise self.error("unterminated \\k<name>")
            name = self.src[self.pos : end]
            self.pos = end + 1
            return f"(?P={name})"
        if c.isascii() and c.isalnum():
            raise self.error(f"unsupported escape \\{c}")
        return _char(ord(c))

    def hex(self, digits: str) -> int:
        if not digits or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise self.error(f"bad hexadecimal escape {digits!r}")
        value = int(digits, 16)
        if not 0 <= value <= _MAX_CODE_POINT:
            raise self.error("code point out of range")
        return value

    def property(self, *, negate: bool, in_class: bool) -> str:
        if self.peek() == "{":
            end = self.src.find("}", self.pos)
            if end < 0:
                raise self.error("unterminated \\p{...}")
            name = self.src[self.pos + 1 : end]
            self.pos = end + 1
        else:
            name = self.take()
        if name in _POSIX:
            return self.ranges(_POSIX[name], negate, in_class)
        if name.startswith("java"):
            raise self.error(f"unsupported property \\p{{{name}}}")
        body = ("\\P{" if negate else "\\p{") + name + "}"
        try:
            regex.compile(body)
        except regex.error as exc:
            raise self.error(f"unknown property \\p{{{name}}}") from exc
        return body


def translate_pattern(java_pattern: str) -> str:
    """The ``regex`` source equivalent to *java_pattern* under ``Matcher.matches()``."""
    return r"\A(?:" + _Translator(java_pattern).translate() + r")\Z"


@functools.cache
def is_linear(java_pattern: str) -> bool:
    """Whether any match of the pattern takes time linear in the value's length: no group, no
    alternation, at most one quantifier (so on one atom). Anchored at the start, such a match
    can only give characters back one at a time; it needs no timeout (most of the model's
    names are such patterns: ``[a-zA-Z][a-zA-Z0-9\\-]*``)."""
    translator = _Translator(java_pattern)
    translator.translate()
    return translator.groups_opened == 0 and translator.alternations == 0 and translator.quantifiers <= 1


@functools.cache
def compile_pattern(java_pattern: str) -> regex.Pattern:
    """Compile a Java pattern; any match method of the result is a full match.

    Raises ``ValueError`` for patterns Java would reject or this module cannot
    translate faithfully.
    """
    source = translate_pattern(java_pattern)
    try:
        return regex.compile(source, regex.VERSION0)
    except regex.error as exc:
        raise ValueError(f"Java regex {java_pattern!r} does not compile: {exc}") from exc
