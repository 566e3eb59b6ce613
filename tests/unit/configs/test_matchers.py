"""Label matchers in Alertmanager's syntax: parsing, anchoring, absent labels, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slack_tools.configs.matchers import Matcher, Operator, parse_matcher

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("text", "name", "operator", "value"),
    [
        ('severity="critical"', "severity", Operator.EQUAL, "critical"),
        ("severity=critical", "severity", Operator.EQUAL, "critical"),
        ('team!="db"', "team", Operator.NOT_EQUAL, "db"),
        ('team=~"db|infra"', "team", Operator.REGEX, "db|infra"),
        ('team!~"db.*"', "team", Operator.NOT_REGEX, "db.*"),
        ('  env = "prod"  ', "env", Operator.EQUAL, "prod"),
        ('x!=""', "x", Operator.NOT_EQUAL, ""),
        ("x=", "x", Operator.EQUAL, ""),
        (r'msg="say \"hi\""', "msg", Operator.EQUAL, 'say "hi"'),
        (r'path="C:\\tmp"', "path", Operator.EQUAL, "C:\\tmp"),
        ("_private=1", "_private", Operator.EQUAL, "1"),
    ],
)
def test_parse_matcher_reads_name_operator_and_value(
    text: str, name: str, operator: Operator, value: str
) -> None:
    """Each operator and quoting form parses into its name, operator and unescaped value."""
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.operator, matcher.value) == (name, operator, value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "severity",
        '"severity"="critical"',
        '1abc="x"',
        'severity~="critical"',
        'severity="a" extra',
        "severity=two words",
        'team=~"("',
        'team!~"[a-"',
    ],
)
def test_parse_matcher_refuses_what_is_not_a_matcher(text: str) -> None:
    """Malformed matchers and invalid regular expressions raise ValueError saying what is wanted."""
    with pytest.raises(ValueError, match=r"matcher|regular expression"):
        parse_matcher(text)


@pytest.mark.parametrize("text", ['severity=="critical"', 'severity="critical', 'team="a"b"'])
def test_parse_matcher_refuses_unbalanced_quotes(text: str) -> None:
    """A stray double quote is refused, as Alertmanager does, not kept as part of the value."""
    with pytest.raises(ValueError, match="matcher"):
        parse_matcher(text)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ('severity="critical"', {}, False),
        ('severity=""', {}, True),
        ('severity=""', {"severity": "critical"}, False),
        ('team!="db"', {"team": "infra"}, True),
        ('team!="db"', {"team": "db"}, False),
        ('team!="db"', {}, True),
        ('x!=""', {}, False),
        ('x!=""', {"x": "set"}, True),
        ('team=~"db"', {"team": "db"}, True),
        ('team=~"db"', {"team": "dbx"}, False),
        ('team=~"db"', {"team": "xdb"}, False),
        ('team=~"db|infra"', {"team": "infra"}, True),
        ('team=~"db|infra"', {"team": "dbinfra"}, False),
        ('team=~"db|infra"', {"team": "infrastructure"}, False),
        ('team=~"db.*"', {"team": "dbx"}, True),
        ('team=~".*"', {}, True),
        ('team=~".+"', {}, False),
        ('team!~"db"', {"team": "dbx"}, True),
        ('team!~"db"', {"team": "db"}, False),
        ('team!~"db|infra"', {"team": "infra"}, False),
        ('team!~".+"', {}, True),
        ('team!~".*"', {}, False),
        ('severity="Critical"', {"severity": "critical"}, False),
    ],
)
def test_matcher_decision_table(text: str, labels: dict[str, str], expected: bool) -> None:
    """Equality, inequality and fully anchored regexes; an absent label matches as ""."""
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'x="a\"b"', 'a"b'),
        (r'x="a\\b"', "a\\b"),
        (r'x="a\nb"', "a\nb"),
        (r'x="a\db"', "a\\db"),
        (r'x="a\.b"', "a\\.b"),
    ],
)
def test_quoted_value_unescapes_like_alertmanager(text: str, value: str) -> None:
    r"""Inside quotes \" \\ and \n are escapes; any other backslash stays literal (OpenMetrics)."""
    assert parse_matcher(text).value == value


def test_regex_keeps_backslash_escapes_like_alertmanager() -> None:
    r"""A quoted regex keeps escapes it does not own, as Alertmanager does: "5\d\d" matches 503."""
    matcher = parse_matcher(r'code=~"5\d\d"')
    assert matcher.matches({"code": "503"})
    assert not matcher.matches({"code": "5dd"})


def test_regex_escaped_dot_matches_only_a_dot() -> None:
    r"""An escaped dot in a quoted regex ("10\.0\..*") matches a literal dot, not any character."""
    matcher = parse_matcher(r'instance=~"10\.0\..*"')
    assert matcher.matches({"instance": "10.0.4.17:8080"})
    assert not matcher.matches({"instance": "10x0y4"})


def test_matchers_compare_by_name_operator_and_value() -> None:
    """Two parses of the same matcher are equal; the compiled pattern does not take part."""
    assert parse_matcher('team=~"db|infra"') == parse_matcher('team =~ "db|infra"')
    assert parse_matcher('team=~"db"') != parse_matcher('team!~"db"')


@pytest.mark.parametrize(
    ("matcher", "text"),
    [
        (Matcher("severity", Operator.EQUAL, "critical"), 'severity="critical"'),
        (Matcher("msg", Operator.NOT_EQUAL, 'a"b'), r'msg!="a\"b"'),
        (Matcher("path", Operator.EQUAL, "C:\\tmp"), r'path="C:\\tmp"'),
    ],
)
def test_str_writes_the_quoted_escaped_form(matcher: Matcher, text: str) -> None:
    """A matcher prints in Alertmanager's quoted form with " and \\ escaped."""
    assert str(matcher) == text


@PROPERTY
@given(
    name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
    operator=st.sampled_from([Operator.EQUAL, Operator.NOT_EQUAL]),
    value=st.text(max_size=40),
)
def test_str_and_parse_round_trip(name: str, operator: Operator, value: str) -> None:
    """Printing a matcher and parsing it back gives the same matcher, whatever the value holds."""
    matcher = Matcher(name, operator, value)
    assert parse_matcher(str(matcher)) == matcher


@PROPERTY
@given(value=st.text(max_size=30), other=st.text(max_size=30))
def test_equal_and_not_equal_are_complements(value: str, other: str) -> None:
    """For any label value, exactly one of name="v" and name!="v" matches."""
    labels = {"x": other}
    equal = Matcher("x", Operator.EQUAL, value).matches(labels)
    not_equal = Matcher("x", Operator.NOT_EQUAL, value).matches(labels)
    assert equal is not not_equal
    assert equal is (value == other)


@PROPERTY
@given(
    pattern=st.sampled_from(["db", "db|infra", "a.*", "[0-9]+", ".*", ""]),
    actual=st.text(alphabet="abdfinrx0123.", max_size=12),
)
def test_regex_and_not_regex_are_complements(pattern: str, actual: str) -> None:
    """For any label value, exactly one of name=~"re" and name!~"re" matches."""
    quoted = pattern.replace("\\", "\\\\").replace('"', '\\"')
    regex = parse_matcher(f'x=~"{quoted}"').matches({"x": actual})
    not_regex = parse_matcher(f'x!~"{quoted}"').matches({"x": actual})
    assert regex is not not_regex
