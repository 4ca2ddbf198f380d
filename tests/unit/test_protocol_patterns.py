"""Java regex semantics of opscm.protocol.patterns, and every pattern of the model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opscm.protocol.patterns import compile_pattern, is_linear, translate_pattern
from opscm.protocol.validation import PATTERN_TIMEOUT
from opscm.spec import service_model

CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----\n"

# Every pattern of the model, with values Java's Pattern.matches() accepts and rejects.
MODEL_PATTERNS: dict[str, tuple[list[str], list[str]]] = {
    r"^[\-\p{Alnum}_:.]+$": (
        ["web-1.example:x_y", "A", "0", "a.b-c_d:e", "i-0123456789abcdef0"],
        ["a b", "é", "", "web1\n", "a/b", "\u0663", "ａ"],  # \p{Alnum} is ASCII in Java
    ),
    r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$": (
        ["", "Name", "héllo wörld", "日本語", "a:b/c=d+e-f@g_h.i", "x\u00a0y", "\u0663\u0664", "Ωμέγα"],
        ["a!", "a\tb", "a\nb", "x\n", "tab\t", "emoji\U0001f600", "a#b"],
    ),
    r"[a-zA-Z][a-zA-Z0-9\-]*": (
        ["s", "my-server-1", "Z9"],
        ["", "1abc", "-a", "a b", "a_b", "é", "abc\n"],
    ),
    r"[a-zA-Z][a-zA-Z0-9\-\.\:]*": (
        ["s-20240101.1:2", "backup"],
        ["", "1", "a/b", "a b"],
    ),
    r"[A-Z][A-Z0-9_]*": (
        ["CHEF_PIVOTAL_KEY", "X", "A1_"],
        ["", "chef", "_A", "A-B", "A\n"],
    ),
    r"(?s).*": (
        ["", "anything\n at all\r\n", "\u2028\u0085", "\x00", KEY],
        [],
    ),
    r".*": (
        ["", "key-pair name", "é"],
        ["a\nb", "a\rb", "a\u0085b", "a\u2028b", "a\u2029b", "line\n"],  # Java's '.' stops at every terminator
    ),
    r"(?s)\s*-----BEGIN CERTIFICATE-----.+-----END CERTIFICATE-----\s*": (
        [CERT, CERT.strip(), "\n\t " + CERT + "\r\n", CERT + CERT, CERT.replace("\n", "\r\n")],
        ["", "-----BEGIN CERTIFICATE----------END CERTIFICATE-----", "x" + CERT, CERT + "x", "\u00a0" + CERT],
    ),
    r"(?ms)\s*^-----BEGIN (?-s:.*)PRIVATE KEY-----$.*?^-----END (?-s:.*)PRIVATE KEY-----$\s*": (
        [
            KEY,
            KEY.strip(),
            KEY.replace("RSA ", ""),
            KEY.replace("RSA", "EC"),
            KEY.replace("\n", "\r\n"),  # Java's ^ and $ know "\r\n"
            "\n\n" + KEY + "\n\n",
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----",
        ],
        [
            "",
            "x" + KEY,
            KEY + "x",
            KEY.replace("-----\nMII", "----- MII"),  # $ must end the BEGIN line
            "-----BEGIN RSA\nPRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----",  # (?-s:.*) stays on a line
            CERT,
        ],
    ),
    r"^(((?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9])\.)+((?!-)[A-Za-z0-9-]{1,62}[A-Za-z0-9])$": (
        ["example.com", "chef.my-corp.example.org", "a.b1", "x" * 63 + ".com"],
        ["example", "-a.com", "a-.com", "a..com", ".com", "example.com.", "x" * 64 + ".com", "exämple.com", "a.b\n"],
    ),
    r"^((Mon|Tue|Wed|Thu|Fri|Sat|Sun):)?([0-1][0-9]|2[0-3]):[0-5][0-9]$": (
        ["08:00", "Mon:23:59", "Sun:00:00", "19:30"],
        ["", "24:00", "8:00", "mon:08:00", "Mon:", "Mon08:00", "08:60", "08:00\n", "Mon:Tue:08:00"],
    ),
    r"arn:aws.*:opsworks-cm:.*:[0-9]{12}:.*": (
        [
            "arn:aws:opsworks-cm:us-east-1:123456789012:server/s/id",
            "arn:aws-cn:opsworks-cm:cn-north-1:123456789012:backup/b",
        ],
        ["arn:aws:opsworks:us-east-1:123456789012:server/s", "arn:aws:opsworks-cm:us-east-1:12345:server/s", "x"],
    ),
    r"arn:aws:iam::[0-9]{12}:instance-profile/.*": (
        ["arn:aws:iam::123456789012:instance-profile/aws-opsworks-cm-ec2-role"],
        [
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:iam::1234:instance-profile/x",
            "arn:aws:iam::123456789012:instance-profile/a\nb",
        ],
    ),
    r"arn:aws:iam::[0-9]{12}:role/.*": (
        ["arn:aws:iam::123456789012:role/service-role/aws-opsworks-cm-service-role"],
        ["arn:aws:iam::123456789012:instance-profile/x", "role/x", "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/x"],
    ),
}


def _model_patterns() -> set[str]:
    model = service_model()
    found: set[str] = set()
    seen: set[str] = set()

    def walk(shape):
        if shape.name in seen:
            return
        seen.add(shape.name)
        if "pattern" in shape.metadata:
            found.add(shape.metadata["pattern"])
        if shape.type_name == "structure":
            for member in shape.members.values():
                walk(member)
        elif shape.type_name == "list":
            walk(shape.member)
        elif shape.type_name == "map":
            walk(shape.key)
            walk(shape.value)

    for name in model.operation_names:
        operation = model.operation_model(name)
        for shape in (operation.input_shape, operation.output_shape):
            if shape is not None:
                walk(shape)
    return found


def test_every_model_pattern_is_covered_here():
    assert _model_patterns() == set(MODEL_PATTERNS)


@pytest.mark.parametrize("pattern", sorted(MODEL_PATTERNS))
def test_model_pattern_behaves_like_java(pattern):
    compiled = compile_pattern(pattern)
    accepted, rejected = MODEL_PATTERNS[pattern]
    for value in accepted:
        assert compiled.fullmatch(value), (pattern, value)
        assert compiled.match(value) and compiled.search(value), "anchored: every method is a full match"
    for value in rejected:
        assert not compiled.fullmatch(value), (pattern, value)
        assert not compiled.search(value), (pattern, value)


@pytest.mark.parametrize("pattern", sorted(MODEL_PATTERNS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(max_size=300))
def test_model_patterns_never_fail_on_random_text(pattern, value):
    compiled = compile_pattern(pattern)
    compiled.fullmatch(value, timeout=2)  # never raises, never hangs


@pytest.mark.parametrize("pattern", sorted(MODEL_PATTERNS))
def test_model_patterns_are_fast_on_adversarial_input(pattern):
    compiled = compile_pattern(pattern)
    hostile = [
        "a" * 20000 + "!",
        "a." * 10000,
        "-----BEGIN CERTIFICATE-----" * 2000,
        "-----BEGIN X PRIVATE KEY-----\n" * 1000,
        " \n" * 10000 + "x",
        ("x" * 62 + ".") * 300 + "-",
    ]
    for value in hostile:
        # What "fast" means to the validator: no match runs into its timeout, where a value would
        # count as not matching (TimeoutError here). Linear patterns take milliseconds.
        compiled.fullmatch(value, timeout=PATTERN_TIMEOUT)


@pytest.mark.parametrize(
    ("pattern", "linear"),
    [
        (r"[a-zA-Z][a-zA-Z0-9\-]*", True),  # ServerName
        (r"^[\-\p{Alnum}_:.]+$", True),  # NodeName
        (r"[A-Z][A-Z0-9_]*", True),
        (r"\Q(a+)+\E.*", True),  # quoted: literal parentheses and plus
        (r"[(|)*+]x{2}", True),  # inside a class, no group, alternation or quantifier
        (r"[a-z]*[a-z]*b", False),  # two quantifiers can give back characters in n**2 ways
        (r"(a+)+b", False),
        (r"(?:ab)*", False),
        (r"a|b", False),
        (r"(?s).*", False),  # a group, if only of flags: not judged here (matched as anything)
        (r"a*+", False),  # a possessive quantifier counts twice: not judged either
    ],
)
def test_linear_patterns_are_those_that_cannot_backtrack(pattern, linear):
    assert is_linear(pattern) is linear


def test_a_pattern_that_can_backtrack_is_still_matched_under_the_timeout(monkeypatch):
    from opscm.protocol import validation

    validation._CONSTRAINTS.clear()
    timeouts = []
    real = validation._pattern_matches
    monkeypatch.setattr(validation, "_pattern_matches", lambda c, v, timeout: timeouts.append(timeout) or real(c, v, timeout))
    model = service_model()
    for shape_name, value in (("ServerName", "bench"), ("CustomDomain", "a.example.com")):
        for _, ok in validation._constraints(model.shape_for(shape_name)):
            assert ok(value)
    validation._CONSTRAINTS.clear()
    assert timeouts == [None, PATTERN_TIMEOUT]


def test_compile_is_cached():
    assert compile_pattern(r"[a-z]+") is compile_pattern(r"[a-z]+")


@pytest.mark.parametrize(
    ("pattern", "accepted", "rejected"),
    [
        # POSIX and shorthand classes are ASCII-only in Java.
        (r"\p{Alpha}+", ["abcXYZ"], ["é", "1"]),
        (r"\p{Digit}\d", ["12"], ["١٢", "1a"]),
        (r"\p{Upper}\p{Lower}", ["Ab"], ["ÀB", "aB"]),
        (r"\p{Punct}+", ["!/:@[`{~"], ["a", "¡"]),
        (r"\p{XDigit}+", ["0aF"], ["g"]),
        (r"\p{Space}\s", [" \t", "\x0b\r"], ["\u00a0 ", "\u2028 "]),
        (r"\w+", ["a_Z9"], ["é", "a-b"]),
        (r"\W\D\S", ["-a-"], ["_a-"]),
        (r"[\p{Alnum}]+", ["aZ0"], ["é"]),
        (r"[^\p{Alnum}]", ["é", "-"], ["a"]),
        (r"[\P{Alnum}]", ["é"], ["a"]),
        (r"\P{Alnum}", ["é", " "], ["a"]),
        (r"[\D]", ["a"], ["1"]),
        (r"\p{ASCII}\p{Cntrl}\p{Blank}", ["a\x01\t"], ["é\x01\t"]),
        (r"\p{Graph}\p{Print}", ["! "], [" !"]),
        # Unicode categories, scripts and blocks are Unicode.
        (r"\p{L}\p{N}\p{Z}", ["é٣\u00a0", "a1 "], ["a1\t"]),
        (r"\pL\PL", ["a1"], ["ab"]),
        (r"\p{Lu}\p{IsLatin}\p{InGreek}", ["Éaα"], ["éaα"]),
        (r"\h\v\R", ["\u3000\u2028\r\n", " \n\u2029"], ["\n\n\n"]),
        # Escapes.
        (r"\Qa.b*c\E+", ["a.b*c", "a.b*cc"], ["aXbbc"]),
        (r"[\Q]-\E]+", ["]-]"], ["a"]),
        (r"\x41\x{1F600}\u00e9\0101\011\cA\e\t", ["A\U0001f600éA\t\x01\x1b\t"], ["A"]),
        (r"\.\-\:\/\@", [".-:/@"], ["a-:/@"]),
        # Groups, back references and quantifiers.
        (r"(a)(b)\2\1", ["abba"], ["abab"]),
        (r"(a)\11", ["aa1"], ["a" * 12]),
        (r"(?<word>ab)-\k<word>", ["ab-ab"], ["ab-ba"]),
        (r"a*+a", [], ["aaa"]),
        (r"(?>a+)b", ["aab"], ["ac"]),
        (r"a{2,3}?b{2}+", ["aabb", "aaabb"], ["abb"]),
        (r"(?:ab|a)(?=c)c", ["abc", "ac"], ["ab"]),
        (r"(?<=a)b|a(?<!b)b", ["ab"], ["bb"]),
        # Flags: scoped, set mid-pattern, ended by the enclosing group, across alternatives.
        (r"(?i)abc", ["ABC", "aBc"], ["abd"]),
        (r"a(?i)b|c", ["aB", "C", "ab"], ["AB"]),
        (r"(a(?i)b)c", ["aBc"], ["aBC"]),
        (r"(?i:a)b", ["Ab"], ["AB"]),
        (r"(a(?s).).", ["a\nx"], ["a\n\n"]),
        (r"(?s)a.(?-s:.)", ["a\nb"], ["a\n\n"]),
        (r"(?s:.)(?-s).", ["\nb"], ["\n\n"]),
        (r"(?d).+", ["a\rb\u2028"], ["a\nb"]),
        (r"(?iu)é", ["É"], ["e"]),
        # Anchors: ^ and $ with and without MULTILINE, Java's line terminators.
        (r"a$\n", ["a\n"], ["a"]),
        (r"a$\r\n", ["a\r\n"], []),
        (r"a$", ["a"], ["a\n"]),
        (r"a\Z\n?", ["a", "a\n"], []),
        (r"a\z", ["a"], ["a\n"]),
        (r"a\n^b", [], ["a\nb"]),  # without MULTILINE ^ is the start of input
        (r"(?m)a$\r^b", ["a\rb"], []),
        (r"(?m)a$\u2028^b", ["a\u2028b"], []),
        (r"(?m)a\r$\n^b", [], ["a\r\nb"]),  # no $ between \r and \n
        (r"(?m)a\r^\nb", [], ["a\r\nb"]),  # no ^ between \r and \n
        (r"(?m)a\n^", [], ["a\n"]),  # no ^ at the end of input
        (r"(?dm)a$\r^b", [], ["a\rb"]),
        (r"(?dm)a$\n^b", ["a\nb"], []),
        (r"^\Aa\b", ["a"], []),
    ],
)
def test_java_semantics(pattern, accepted, rejected):
    compiled = compile_pattern(pattern)
    for value in accepted:
        assert compiled.fullmatch(value), (pattern, value, translate_pattern(pattern))
    for value in rejected:
        assert not compiled.fullmatch(value), (pattern, value, translate_pattern(pattern))


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a[b]]",  # nested class (a union in Java)
        r"[a-z&&[^b]]",  # intersection
        r"(?x)a b",  # comments mode
        r"(?U)\w",  # UNICODE_CHARACTER_CLASS
        r"\Ga",
        r"\p{javaLowerCase}",
        r"\p{NoSuchProperty}",
        r"\y",
        r"[\y]",
        r"(a",
        r"a)",
        r"[abc",
        r"\0",
        r"\xZZ",
        r"\x+1",
        r"\x{}",
        r"\x{110000}",
        r"\u00g0",
        r"\k<undefined",
        r"(?<1bad>a)",
        "a\\",
    ],
)
def test_unsupported_or_invalid_patterns_raise_value_error(pattern):
    with pytest.raises(ValueError):
        compile_pattern(pattern)
