"""LogQL, the subset Grafana Explore and logcli send: one LALR grammar (lark) and its AST.

`parse(text)` returns a `LogQuery` or a metric query (`RangeAggregation`, `VectorAggregation`, or a
constant expression), or raises `LogQLError` naming the construct it refuses: a construct outside
this subset is refused, never answered approximately. Evaluation lives in `common.logql_eval`.

| construct | supported | notes |
| --- | --- | --- |
| `{name="v"}`, `!=`, `=~`, `!~` stream matchers | yes | any label; regexes are RE2, anchored to the whole value, at most 256 characters; at least one matcher must not match the empty value, as in Loki |
| line filters `\\|=`, `!=`, `\\|~`, `!~`, chained | yes | substring filters are case-sensitive; regexes are RE2, unanchored |
| `\\|= "a" or "b"`, `\\|> "pattern"`, `!>`, `\\|= ip("...")` | no | 400 naming the construct |
| strings `"..."` with Go escapes, `` `raw` `` | yes | `\\n \\t \\\\ \\" \\xNN \\NNN \\uNNNN \\UNNNNNNNN ...`; single quotes are not strings |
| `# comment` to the end of a line | yes | |
| `\\| json` | yes | nested objects flattened with `_`, arrays and nulls skipped, invalid names sanitized, a name already a stream label gets `_extracted`; a line that is not a JSON object gets `__error__="JSONParserErr"` |
| `\\| json a="b.c"` (parameters) | no | |
| `\\| logfmt`, `--strict`, `--keep-empty` | yes | as Loki 3: malformed pairs skipped and empty values dropped; with `--strict` the first error sets `__error__="LogfmtParserErr"` |
| `\\| logfmt a, b` (parameters) | no | |
| label filters `\\| name="v"`, `!=`, `=~`, `!~` | yes | a missing label is the empty value |
| numeric label filters `>`, `>=`, `<`, `<=`, `==`, `=`, `!=` with numbers, durations (`250ms`, `1h30m`), bytes (`10KB`, `1MiB`) | yes | a label that does not convert gets `__error__="LabelFilterErr"` and is kept, as in Loki |
| `and`, `,`, juxtaposition, `or`, parentheses between label filters | yes | `and` binds tighter than `or` |
| `\\| line_format "..."` | partly | only `{{.name}}` (spaces allowed inside the braces) substitutions; any other template action is refused |
| `\\| drop a, b="v"`, `\\| keep a, b=~"v"` | yes | Grafana sends `\\| drop __error__, __error_details__` |
| `\\| pattern`, `regexp`, `unpack`, `label_format`, `decolorize`, `unwrap`, `xml` | no | |
| `count_over_time(<log query> [d])`, `rate(...)` | yes | window `(t - d, t]`; `rate` is the count divided by `d` in seconds; the range may also follow the selector (`{a="b"}[5m] \\|= "x"`) |
| other range functions (`bytes_over_time`, `avg_over_time`, `quantile_over_time`, ...) | no | |
| `offset` | no | |
| ranges `[30s]`, `[5m]`, `[1h30m]`, `[1d]`, `[1w]`, `[1y]` | yes | Prometheus durations (`ms` to `y`, integers, units in decreasing order); Grafana substitutes `$__interval`, `$__auto` before sending |
| `sum(...)`, `sum by (a, b) (...)`, `sum(...) by (a)`, nested `sum` | yes | labels a series lacks are absent from its group |
| `sum without (...)` | no | |
| `avg`, `count`, `min`, `max`, `topk`, `bottomk`, `sort`, `stddev`, `stdvar`, `label_replace`, ... | no | |
| numbers and `vector(n)` combined with `+ - * /` and parentheses | yes | one sample; Grafana's "Save & test" sends `vector(1)+vector(1)` |
| binary operations involving a log or range query, `%`, `^`, comparisons, `and`/`or`/`unless` | no | |

Loki's pipeline error is kept: a metric query whose lines still carry `__error__` after the
pipeline is refused (add `| __error__=""` or `| drop __error__`), as Loki refuses it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from fractions import Fraction
from typing import Union

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from common.errors import ParameterError
from common.line_filter import FilterError, compile_re2

MAX_QUERY_CHARS = 65536
# Deeper nesting of binary operations or label filter groups is refused: evaluation recurses.
MAX_NESTING = 64
NS_PER_SECOND = 1_000_000_000

_EMPTY_COMPATIBLE = (
    "queries require at least one regexp or equality matcher that does not have an "
    'empty-compatible value. For instance, app=~".*" does not meet this requirement, '
    'but app=~".+" will'
)

SUPPORTED_RANGE_FUNCTIONS = ("count_over_time", "rate")
UNSUPPORTED_FUNCTIONS = frozenset({
    "rate_counter", "bytes_over_time", "bytes_rate", "avg_over_time", "sum_over_time",
    "min_over_time", "max_over_time", "stdvar_over_time", "stddev_over_time",
    "quantile_over_time", "first_over_time", "last_over_time", "absent_over_time",
    "avg", "count", "max", "min", "stddev", "stdvar", "bottomk", "topk", "approx_topk", "sort",
    "sort_desc", "label_replace", "variants", "ip", "bytes", "duration", "duration_seconds",
})


class LogQLError(ParameterError):
    """A query this service refuses: `construct` names what, `detail` says why (the message)."""

    def __init__(self, construct: str, detail: str):
        super().__init__("query", detail)
        self.construct = construct


def _unsupported(construct: str, hint: str = "") -> LogQLError:
    return LogQLError(construct, f"`{construct}` is not supported{hint}")


# ---------------------------------------------------------------------------------------- AST


@dataclasses.dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str


@dataclasses.dataclass(frozen=True)
class Selector:
    matchers: tuple[Matcher, ...]


@dataclasses.dataclass(frozen=True)
class LineFilter:
    op: str  # "|=", "!=", "|~", "!~"
    value: str


@dataclasses.dataclass(frozen=True)
class Parser:
    kind: str  # "json" or "logfmt"
    strict: bool = False  # logfmt --strict
    keep_empty: bool = False  # logfmt --keep-empty


@dataclasses.dataclass(frozen=True)
class LabelFilter:
    name: str
    op: str  # "=", "!=", "=~", "!~" (string); "==", "!=", ">", ">=", "<", "<=" (others)
    value: str | float | int
    kind: str = "string"  # "string", "number" (float), "duration" (ns), "bytes"


@dataclasses.dataclass(frozen=True)
class LabelFilterAnd:
    filters: tuple[LabelFilterExpr, ...]


@dataclasses.dataclass(frozen=True)
class LabelFilterOr:
    filters: tuple[LabelFilterExpr, ...]


LabelFilterExpr = Union[LabelFilter, LabelFilterAnd, LabelFilterOr]


@dataclasses.dataclass(frozen=True)
class LineFormat:
    template: str
    # The template cut into literal text and label references: (is_label, text).
    parts: tuple[tuple[bool, str], ...]


@dataclasses.dataclass(frozen=True)
class DropLabels:
    labels: tuple[str | Matcher, ...]


@dataclasses.dataclass(frozen=True)
class KeepLabels:
    labels: tuple[str | Matcher, ...]


Stage = Union[LineFilter, Parser, LabelFilter, LabelFilterOr, LineFormat, DropLabels, KeepLabels]


@dataclasses.dataclass(frozen=True)
class LogQuery:
    selector: Selector
    stages: tuple[Stage, ...] = ()


@dataclasses.dataclass(frozen=True)
class RangeAggregation:
    func: str  # "count_over_time" or "rate"
    log_query: LogQuery
    range_ns: int


@dataclasses.dataclass(frozen=True)
class VectorAggregation:
    inner: RangeAggregation | VectorAggregation
    by: tuple[str, ...] = ()
    op: str = "sum"


@dataclasses.dataclass(frozen=True)
class NumberLiteral:
    value: float


@dataclasses.dataclass(frozen=True)
class VectorLiteral:
    """`vector(n)`: one sample with no labels."""

    value: float


@dataclasses.dataclass(frozen=True)
class BinaryOp:
    op: str  # "+", "-", "*", "/"
    left: ConstantExpr
    right: ConstantExpr


ConstantExpr = Union[NumberLiteral, VectorLiteral, BinaryOp]
MetricQuery = Union[RangeAggregation, VectorAggregation, NumberLiteral, VectorLiteral, BinaryOp]
Query = Union[LogQuery, MetricQuery]


def is_metric_query(query: Query) -> bool:
    return not isinstance(query, LogQuery)


def is_constant(query: Query) -> bool:
    return isinstance(query, (NumberLiteral, VectorLiteral, BinaryOp))


def log_query_of(query: Query) -> LogQuery | None:
    """The log query whose lines a query reads (None for a constant expression)."""
    while isinstance(query, VectorAggregation):
        query = query.inner
    if isinstance(query, RangeAggregation):
        return query.log_query
    return query if isinstance(query, LogQuery) else None


def selector_label_names(selector: Selector) -> frozenset[str]:
    """The label names a selector tests: the store picks streams by these."""
    return frozenset(m.name for m in selector.matchers)


def selector_equalities(selector: Selector) -> dict[str, str]:
    """name -> value of the selector's non-empty `=` matchers (an index can look these up)."""
    return {m.name: m.value for m in selector.matchers if m.op == "=" and m.value}


# ------------------------------------------------------------------------------------ grammar

_GRAMMAR = r"""
?start: log_query | metric

log_query: selector stage*
         | "(" log_query ")"

selector: "{" [matcher ("," matcher)*] "}"
matcher: NAME (EQ | NEQ | RE | NRE) string

log_range: selector RANGE [offset] stage*           -> range_first
         | selector stage+ RANGE [offset]           -> range_last
         | "(" log_query ")" RANGE [offset]         -> range_after_group
         | "(" log_range ")"
offset: OFFSET DURATION

?stage: line_filter
      | "|" JSON [extractions]                      -> json_stage
      | "|" LOGFMT FLAG* [extractions]              -> logfmt_stage
      | "|" LINE_FORMAT string                      -> line_format_stage
      | "|" DROP named_matchers                     -> drop_stage
      | "|" KEEP named_matchers                     -> keep_stage
      | "|" UNSUPPORTED_STAGE                       -> unsupported_stage
      | "|" lf_or                                   -> label_filter_stage

line_filter: (PIPE_EXACT | NEQ | PIPE_MATCH | NRE | PIPE_PATTERN | NPA) line_filter_value (OR line_filter_value)*
?line_filter_value: string
                  | FUNC "(" string ")"             -> filter_function

extractions: extraction ("," extraction)*
extraction: NAME [EQ string]
// After `drop a`, a `!=` continues the matcher rather than starting a line filter (as in Loki).
named_matchers: named_matcher ("," named_matcher)*
?named_matcher: NAME | matcher

?lf_or: lf_and | lf_or OR lf_and                     -> lf_or
?lf_and: lf_atom | lf_and [AND | COMMA] lf_atom     -> lf_and
?lf_atom: label_filter | "(" lf_or ")"
label_filter: NAME (EQ | NEQ | RE | NRE) string                                -> string_filter
            | NAME (EQ | CMP_EQ | NEQ | GT | GTE | LT | LTE) number_value        -> number_filter
?number_value: signed_number
             | [MINUS] DURATION                     -> duration_value
             | BYTES                                -> bytes_value

?metric: m_or
?m_or: m_and | m_or OR m_and                         -> binop
?m_and: m_cmp | m_and (AND | UNLESS) m_cmp          -> binop
?m_cmp: m_add | m_cmp (CMP_EQ | NEQ | GT | GTE | LT | LTE) m_add -> binop
?m_add: m_mul | m_add (PLUS | MINUS) m_mul          -> binop
?m_mul: m_pow | m_mul (STAR | SLASH | PERCENT) m_pow -> binop
?m_pow: m_atom | m_atom CARET m_pow                 -> binop
?m_atom: signed_number
       | call
       | "(" metric ")"                             -> group

call: FUNC [grouping] "(" call_args ")" [grouping]
call_args: ((metric | string) ",")* (metric | string | log_range | log_query)
grouping: (BY | WITHOUT) "(" [NAME ("," NAME)*] ")"

signed_number: [PLUS | MINUS] NUMBER

string: STRING | RAW_STRING

EQ: "="
NEQ: "!="
RE: "=~"
NRE: "!~"
CMP_EQ: "=="
GT: ">"
GTE: ">="
LT: "<"
LTE: "<="
PIPE_EXACT: "|="
PIPE_MATCH: "|~"
PIPE_PATTERN: "|>"
NPA: "!>"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
PERCENT: "%"
CARET: "^"
COMMA: ","

JSON.2: /json\b/i
LOGFMT.2: /logfmt\b/i
LINE_FORMAT.2: /line_format\b/i
DROP.2: /drop\b/i
KEEP.2: /keep\b/i
UNSUPPORTED_STAGE.2: /(?:pattern|regexp|unpack|label_format|decolorize|unwrap|xml)\b/i
AND.2: /and\b/i
OR.2: /or\b/i
UNLESS.2: /unless\b/i
BY.2: /by\b/i
WITHOUT.2: /without\b/i
OFFSET.2: /offset\b/i
// A name is a function where `(` (or `by (`, `without (`) follows, as Loki's lexer decides.
FUNC.3: /[a-zA-Z_][a-zA-Z0-9_]*(?=\s*(?:\(|by\s*\(|without\s*\())/i
FLAG: /--[a-zA-Z][a-zA-Z-]*/

NAME: /[a-zA-Z_][a-zA-Z0-9_]*/
STRING: /"(?:[^"\\\n]|\\.)*"/
RAW_STRING: /`[^`]*`/
RANGE: /\[[^\]]*\]/
DURATION.3: /(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d|w|y))+(?![\w.])/
BYTES.3: /(?:\d+(?:\.\d*)?|\.\d+)[BikKMGTP]+(?![\w.])/
NUMBER: /0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/

COMMENT: /#[^\n]*/
%import common.WS
%ignore WS
%ignore COMMENT
"""

# How the parser's terminal names read in "expected ..." hints.
_TERMINAL_TEXT = {
    "LBRACE": "`{`", "RBRACE": "`}`", "LPAR": "`(`", "RPAR": "`)`", "COMMA": "`,`", "VBAR": "`|`",
    "STRING": "a string", "RAW_STRING": "a string", "NAME": "a label name", "NUMBER": "a number",
    "RANGE": "a range such as `[5m]`", "DURATION": "a duration", "FUNC": "a function",
    "EQ": "`=`", "NEQ": "`!=`", "RE": "`=~`", "NRE": "`!~`", "PIPE_EXACT": "`|=`", "PIPE_MATCH": "`|~`",
    "$END": "the end of the query",
}


def _unsupported_stage(token: Token) -> Token:
    raise _unsupported(f"| {token.value.lower()}")


@functools.cache
def _parser() -> Lark:
    # The transformer runs inside the LALR parser, as each rule is reduced: constructs are refused
    # left to right, and no parse tree deeper than Python's recursion limit is ever walked.
    return Lark(
        _GRAMMAR,
        parser="lalr",
        lexer="contextual",
        lexer_callbacks={"UNSUPPORTED_STAGE": _unsupported_stage},
        transformer=_ToAst(),
        propagate_positions=False,
    )


def parse(text: str) -> Query:
    """The query's AST. Raises LogQLError naming the construct that is malformed or refused."""
    if len(text) > MAX_QUERY_CHARS:
        raise LogQLError("query", f"longer than {MAX_QUERY_CHARS} characters")
    if not text.strip():
        raise LogQLError("query", "is empty")
    try:
        return _parser().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None


def _syntax_error(text: str, error: UnexpectedInput) -> LogQLError:
    if isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        construct, where = "end of query", ""
    elif isinstance(error, UnexpectedToken):
        construct, where = str(error.token), _where(error.line, error.column)
    elif isinstance(error, UnexpectedCharacters):
        construct, where = text[error.pos_in_stream], _where(error.line, error.column)
    else:  # pragma: no cover - lark raises only the kinds above
        construct, where = "query", ""
    expected = sorted({_TERMINAL_TEXT[name] for name in getattr(error, "expected", ()) or ()
                       if name in _TERMINAL_TEXT})
    hint = f"; expected {', '.join(expected)}" if expected and len(expected) <= 6 else ""
    if construct.startswith("["):
        hint = "; a range belongs inside a function, as in count_over_time({app=\"x\"}[5m])"
    if construct == "end of query":
        return LogQLError(construct, f"unexpected end of query{hint}")
    return LogQLError(construct, f"unexpected `{construct}`{where}{hint}")


def _where(line: int, column: int) -> str:
    return f" at column {column}" if line == 1 else f" at line {line}, column {column}"


# ------------------------------------------------------------------------------ literal values

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", '"': '"'}


def unquote(token: str) -> str:
    """A Go string literal's value: `"..."` with Go's escapes, or `` `...` `` taken as is."""
    if token.startswith("`"):
        return token[1:-1].replace("\r", "")
    body = token[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode()
            i += 1
            continue
        escape = body[i + 1]  # the STRING terminal guarantees a character after a backslash
        if escape in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[escape].encode()
            i += 2
        elif escape in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[escape]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise LogQLError(token, f"invalid escape `\\{escape}{digits}` in string {token}")
            value = int(digits, 16)
            if escape == "x":
                out.append(value)
            else:
                if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise LogQLError(token, f"invalid code point `\\{escape}{digits}` in string {token}")
                out += chr(value).encode()
            i += 2 + width
        elif escape in "01234567":
            digits = body[i + 1:i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise LogQLError(token, f"invalid octal escape `\\{digits}` in string {token}")
            out.append(int(digits, 8))
            i += 4
        else:
            raise LogQLError(token, f"invalid escape `\\{escape}` in string {token}")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise LogQLError(token, f"string {token} is not valid UTF-8") from None


_PROMETHEUS_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_PROMETHEUS_UNITS_NS = (365 * 86400 * NS_PER_SECOND, 7 * 86400 * NS_PER_SECOND, 86400 * NS_PER_SECOND,
                        3600 * NS_PER_SECOND, 60 * NS_PER_SECOND, NS_PER_SECOND, 1_000_000)


def parse_range(text: str) -> int:
    """A range's duration in ns: Prometheus' syntax (`5m`, `1h30m`, `1d`), as Loki parses ranges."""
    match = _PROMETHEUS_DURATION.fullmatch(text)
    if not text or match is None:
        if text == "0":
            return 0
        raise LogQLError(f"[{text}]", f"invalid range `[{text}]`: expected a duration such as [5m] or [1h30m]")
    return sum(int(count) * unit for count, unit in zip(match.groups(), _PROMETHEUS_UNITS_NS) if count)


_GO_UNITS_NS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 1_000_000, "s": NS_PER_SECOND,
                "m": 60 * NS_PER_SECOND, "h": 3600 * NS_PER_SECOND}
_EXTRA_UNITS_NS = {"d": 86400 * NS_PER_SECOND, "w": 7 * 86400 * NS_PER_SECOND,
                   "y": 365 * 86400 * NS_PER_SECOND}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w|y)")


def parse_duration(text: str, *, extra_units: bool = False) -> int | None:
    """ns in a Go duration (`1.5s`, `-250ms`, `1h30m`, `0`), or None if `text` is not one.

    `extra_units` also allows Prometheus' `d`, `w` and `y`, as LogQL's duration literals do.
    """
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    units = {**_GO_UNITS_NS, **_EXTRA_UNITS_NS} if extra_units else _GO_UNITS_NS
    total = Fraction(0)
    position = 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None or match.group(2) not in units:
            return None
        total += Fraction(match.group(1)) * units[match.group(2)]
        position = match.end()
    if position == 0:
        return None
    nanoseconds = int(total)
    return -nanoseconds if text.startswith("-") else nanoseconds


_BYTES_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024}
for _power, _letter in enumerate("mgtpe", start=2):
    _BYTES_UNITS.update({_letter: 1000 ** _power, _letter + "b": 1000 ** _power,
                         _letter + "i": 1024 ** _power, _letter + "ib": 1024 ** _power})
_BYTES = re.compile(r"([0-9][0-9,]*\.?[0-9]*|\.[0-9]+) *([a-zA-Z]*)")
_MAX_UINT64 = 2 ** 64 - 1


def parse_bytes(text: str) -> int | None:
    """A byte size as go-humanize reads it (`10KB`, `1.5 MiB`, `512`), or None if not one."""
    match = _BYTES.fullmatch(text)
    if match is None or match.group(2).lower() not in _BYTES_UNITS:
        return None
    value = int(Fraction(match.group(1).replace(",", "")) * _BYTES_UNITS[match.group(2).lower()])
    return value if value <= _MAX_UINT64 else None


def parse_number(text: str) -> float:
    return float(int(text, 16)) if text[:2] in ("0x", "0X") else float(text)


def compile_regex(pattern: str, construct: str, *, anchored: bool):
    """An RE2 pattern within common.line_filter's limits; LogQLError naming `construct` if refused."""
    try:
        return compile_re2(pattern, param=construct, anchored=anchored)
    except FilterError as error:
        raise LogQLError(construct, f"invalid regular expression in {construct}: {error.detail}") from None


_TEMPLATE_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_TEMPLATE_FIELD = re.compile(r"\s*\.([a-zA-Z_][a-zA-Z0-9_]*)\s*")


def parse_line_template(template: str) -> tuple[tuple[bool, str], ...]:
    """`line_format`'s template as literal text and label references; refuses other actions."""
    parts: list[tuple[bool, str]] = []
    position = 0
    for action in _TEMPLATE_ACTION.finditer(template):
        if action.start() > position:
            parts.append((False, template[position:action.start()]))
        field = _TEMPLATE_FIELD.fullmatch(action.group(1))
        if field is None:
            raise LogQLError(
                "line_format", f"`line_format` template action `{action.group(0)}` is not supported: "
                "only `{{.label}}` substitutions are")
        parts.append((True, field.group(1)))
        position = action.end()
    rest = template[position:]
    if "{{" in rest:
        raise LogQLError("line_format", "`line_format` template has an unclosed action `{{`")
    if rest:
        parts.append((False, rest))
    return tuple(parts)


def _matches_empty(matcher: Matcher) -> bool:
    if matcher.op == "=":
        return matcher.value == ""
    if matcher.op == "=~":
        return compile_regex(matcher.value, "stream selector", anchored=True).search("") is not None
    return True


def _depth(node) -> int:
    if isinstance(node, BinaryOp):
        return 1 + max(_depth(node.left), _depth(node.right))
    if isinstance(node, (LabelFilterAnd, LabelFilterOr)):
        return 1 + max(_depth(f) for f in node.filters)
    return 0


def _check_depth(node):
    # Checked as each node is built, so `_depth` never recurses further than MAX_NESTING + 1.
    if _depth(node) > MAX_NESTING:
        raise LogQLError("query", f"nested deeper than {MAX_NESTING} levels")
    return node


# -------------------------------------------------------------------------------- tree -> AST


@v_args(inline=True)
class _ToAst(Transformer):
    def string(self, token):
        return unquote(str(token))

    def signed_number(self, sign, number):
        value = parse_number(str(number))
        return NumberLiteral(-value if sign is not None and sign.type == "MINUS" else value)

    def matcher(self, name, op, value):
        matcher = Matcher(str(name), str(op), value)
        if matcher.op in ("=~", "!~"):
            compile_regex(value, f"matcher {name}{op}", anchored=True)
        return matcher

    def selector(self, *matchers):
        matchers = tuple(m for m in matchers if m is not None)
        if all(_matches_empty(m) for m in matchers):
            raise LogQLError("stream selector", _EMPTY_COMPATIBLE)
        return Selector(matchers)

    def log_query(self, first, *stages):
        if isinstance(first, LogQuery):  # "(" log_query ")"
            return first
        return LogQuery(first, _flatten_stages(stages))

    # Ranges ---------------------------------------------------------------------------------

    def range_first(self, selector, range_token, offset, *stages):
        return _LogRange(LogQuery(selector, _flatten_stages(stages)), _range_ns(range_token))

    def range_last(self, selector, *rest):
        *stages, range_token, _offset = rest
        return _LogRange(LogQuery(selector, _flatten_stages(stages)), _range_ns(range_token))

    def range_after_group(self, log_query, range_token, _offset):
        return _LogRange(log_query, _range_ns(range_token))

    def log_range(self, inner):  # "(" log_range ")"
        return inner

    def offset(self, _keyword, _duration):
        raise _unsupported("offset")

    # Stages -----------------------------------------------------------------------------------

    def line_filter(self, op, *values):
        op = str(op)
        if op in ("|>", "!>"):
            raise _unsupported(op, " (pattern line filters)")
        values = [v for v in values if not isinstance(v, Token)]  # drop the `or` keywords
        if len(values) > 1:
            raise _unsupported(f'{op} "..." or "..."', " (alternatives in one line filter)")
        value = values[0]
        if op in ("|~", "!~"):
            compile_regex(value, f"line filter {op}", anchored=False)
        return LineFilter(op, value)

    def filter_function(self, name, _value):
        raise _unsupported(f"{str(name).lower()}()", " in line filters")

    def json_stage(self, _keyword, extractions):
        if extractions is not None:
            raise _unsupported("| json <parameters>", "; use `| json` alone")
        return Parser("json")

    def logfmt_stage(self, _keyword, *rest):
        *flags, extractions = rest
        if extractions is not None:
            raise _unsupported("| logfmt <parameters>", "; use `| logfmt` alone")
        names = {str(flag).lower() for flag in flags}
        unknown = names - {"--strict", "--keep-empty"}
        if unknown:
            raise LogQLError(sorted(unknown)[0], f"unknown logfmt flag `{sorted(unknown)[0]}`")
        return Parser("logfmt", strict="--strict" in names, keep_empty="--keep-empty" in names)

    def extractions(self, *items):
        return items

    def extraction(self, name, _eq, _value):
        return str(name)

    def line_format_stage(self, _keyword, template):
        return LineFormat(template, parse_line_template(template))

    def named_matchers(self, *items):
        return tuple(str(item) if isinstance(item, Token) else item for item in items)

    def drop_stage(self, _keyword, labels):
        return DropLabels(labels)

    def keep_stage(self, _keyword, labels):
        return KeepLabels(labels)

    def unsupported_stage(self, token):  # pragma: no cover - the lexer callback refuses first
        raise _unsupported(f"| {str(token).lower()}")

    def label_filter_stage(self, expr):
        return expr

    def string_filter(self, name, op, value):
        if str(op) in ("=~", "!~"):
            compile_regex(value, f"label filter {name}{op}", anchored=True)
        return LabelFilter(str(name), str(op), value, "string")

    def number_filter(self, name, op, value):
        op = "==" if str(op) == "=" else str(op)
        kind, number = ("number", value.value) if isinstance(value, NumberLiteral) else value
        return LabelFilter(str(name), op, number, kind)

    def duration_value(self, sign, token):
        nanoseconds = parse_duration(str(token), extra_units=True)
        if nanoseconds is None:
            raise LogQLError(str(token), f"invalid duration `{token}`")
        return ("duration", -nanoseconds if sign is not None else nanoseconds)

    def bytes_value(self, token):
        size = parse_bytes(str(token))
        if size is None:
            raise LogQLError(str(token), f"invalid byte size `{token}`")
        return ("bytes", size)

    def lf_and(self, left, _keyword, right):
        filters = []
        for side in (left, right):
            filters.extend(side.filters if isinstance(side, LabelFilterAnd) else (side,))
        return _check_depth(LabelFilterAnd(tuple(filters)))

    def lf_or(self, left, _keyword, right):
        filters = []
        for side in (left, right):
            filters.extend(side.filters if isinstance(side, LabelFilterOr) else (side,))
        return _check_depth(LabelFilterOr(tuple(filters)))

    # Metric queries -----------------------------------------------------------------------

    def group(self, inner):
        return inner

    def grouping(self, keyword, *names):
        if str(keyword).lower() == "without":
            raise _unsupported("without", "; use `by (...)`")
        return tuple(str(name) for name in names if name is not None)

    def call_args(self, *args):
        return args

    def call(self, name_token, grouping_before, args, grouping_after):
        name = str(name_token).lower()
        grouping = grouping_before if grouping_before is not None else grouping_after
        if grouping_before is not None and grouping_after is not None:
            raise LogQLError("by", f"`{name}` has two groupings")
        if name in SUPPORTED_RANGE_FUNCTIONS:
            if grouping is not None:
                raise _unsupported(f"{name} by (...)", "; group with `sum by (...)` around it")
            (log_range,) = _arity(name, args, 1)
            if isinstance(log_range, LogQuery):
                raise LogQLError(name, f"`{name}` needs a range after its log query, such as `[5m]`")
            if not isinstance(log_range, _LogRange):
                raise LogQLError(name, f"`{name}` takes a log query with a range, such as `{{app=\"x\"}}[5m]`")
            return RangeAggregation(name, log_range.log_query, log_range.range_ns)
        if name == "sum":
            (inner,) = _arity(name, args, 1)
            if not isinstance(inner, (RangeAggregation, VectorAggregation)):
                raise LogQLError(name, "`sum` takes a metric query such as `count_over_time({app=\"x\"}[5m])`")
            return VectorAggregation(inner, grouping or ())
        if name == "vector":
            (value,) = _arity(name, args, 1)
            if grouping is not None or not isinstance(value, NumberLiteral):
                raise LogQLError(name, "`vector` takes one number, as in `vector(1)`")
            return VectorLiteral(value.value)
        if name in UNSUPPORTED_FUNCTIONS:
            raise _unsupported(name)
        raise LogQLError(name, f"unknown function `{name}`")

    def binop(self, left, op, right):
        op = str(op).lower()
        if op not in ("+", "-", "*", "/"):
            raise _unsupported(op, " (binary operators: only + - * / between numbers and vector(n))")
        for side in (left, right):
            if not is_constant(side):
                raise LogQLError(
                    op, f"`{op}` on a log or metric query is not supported: "
                    "only numbers and vector(n) combine with + - * /")
        return _check_depth(BinaryOp(op, left, right))


@dataclasses.dataclass(frozen=True)
class _LogRange:
    log_query: LogQuery
    range_ns: int


def _range_ns(token) -> int:
    nanoseconds = parse_range(str(token)[1:-1])
    if nanoseconds <= 0:
        raise LogQLError(str(token), f"range `{token}` must be longer than zero")
    return nanoseconds


def _arity(name: str, args: tuple, count: int) -> tuple:
    if len(args) != count:
        raise LogQLError(name, f"`{name}` takes {count} argument{'s' if count > 1 else ''}, got {len(args)}")
    return args


def _flatten_stages(stages) -> tuple[Stage, ...]:
    # `| a="x" and b="y"` filters exactly as `| a="x" | b="y"`: Loki's `and` stops at the first miss.
    flat: list[Stage] = []
    for stage in stages:
        flat.extend(stage.filters if isinstance(stage, LabelFilterAnd) else (stage,))
    return tuple(flat)
