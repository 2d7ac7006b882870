"""A subset of expr-lang (github.com/expr-lang/expr), the language of Argo's ``{{=…}}`` tags,
``valueFrom.expression``, ``retryStrategy.expression``, hook expressions and ``depends``.

There is no maintained Python port of expr-lang, so Canal implements the part
Argo workflows use, with expr's semantics:

* literals: integers, floats, ``'…'``/``"…"`` strings (with escapes), `` `raw` ``,
  ``true``/``false``/``nil``, ``[…]`` arrays, ``{key: value}`` maps;
* names resolve in Argo's environment, where dotted keys (``steps.a.outputs.result``)
  form nested maps; ``a.b``, ``a?.b``, ``a['b']``, ``a[0]``, ``a[1:3]``;
* operators: ``not``/``!``, unary ``-``/``+``, ``**``/``^``, ``* / %``, ``+ -``, ``..``,
  ``== != < > <= >=``, ``in``/``not in``, ``matches``, ``contains``, ``startsWith``,
  ``endsWith``, ``and``/``&&``, ``or``/``||``, ``??`` and ``cond ? a : b``;
* functions: Argo's ``asInt``, ``asFloat``, ``jsonpath``, ``toJson`` and expr's ``int``,
  ``float``, ``string``, ``len``, ``upper``, ``lower``, ``trim``, ``trimPrefix``,
  ``trimSuffix``, ``split``, ``join``, ``toJSON``, ``fromJSON``, ``abs``, ``max``, ``min``,
  ``keys``, ``values``, ``first``, ``last``, ``hasPrefix``/``hasSuffix``.

Anything else (closures ``#``, pipes, ``sprig.*``, ``now()``, dates) is refused with
:class:`UnsupportedExpression`, before a workflow runs where possible.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ExpressionError
from .jsonpath import jsonpath_query

__all__ = [
    "MissingVariable",
    "UnsupportedExpression",
    "check_supported",
    "evaluate",
    "expand_env",
    "format_result",
    "parse",
    "referenced_paths",
]

_MAX_LENGTH = 10_000
_MAX_DEPTH = 64


class UnsupportedExpression(ExpressionError):
    """The expression uses expr-lang features Canal does not implement."""


class MissingVariable(ExpressionError):
    """A name the expression reads is not (yet) in the environment."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is missing")
        self.name = name


# --- tokens -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.\d[\d_]*(?:[eE][+-]?\d+)?|\d[\d_]*(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<raw>`[^`]*`)
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>\?\.|\?\?|\.\.\.|\.\.|==|!=|<=|>=|&&|\|\||\*\*|[-+*/%^<>!?:.,()\[\]{}|\#])
    """,
    re.VERBOSE,
)
_WORD_OPS = {"not", "in", "and", "or", "matches", "contains", "startsWith", "endsWith"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, str, name, op, end
    value: Any
    pos: int


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 6 <= len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"unexpected character {text[pos]!r} at {pos} in '{text}'")
        kind = match.lastgroup or ""
        raw = match.group(0)
        if kind == "num":
            clean = raw.replace("_", "")
            if clean[:2].lower() == "0x":
                tokens.append(_Tok("num", int(clean, 16), pos))
            elif any(c in clean for c in ".eE"):
                tokens.append(_Tok("num", float(clean), pos))
            else:
                tokens.append(_Tok("num", int(clean), pos))
        elif kind == "str":
            tokens.append(_Tok("str", _unescape(raw[1:-1]), pos))
        elif kind == "raw":
            tokens.append(_Tok("str", raw[1:-1], pos))
        elif kind == "name":
            if raw in _WORD_OPS:
                tokens.append(_Tok("op", raw, pos))
            else:
                tokens.append(_Tok("name", raw, pos))
        elif kind == "op":
            tokens.append(_Tok("op", raw, pos))
        pos = match.end()
    tokens.append(_Tok("end", None, len(text)))
    return tokens


# --- parser -------------------------------------------------------------------------------

# AST: tuples ("lit", v) ("name", n) ("member", obj, key_node, optional) ("slice", obj, a, b)
# ("call", callee_path, args) ("unary", op, x) ("binary", op, l, r) ("cond", c, a, b)
# ("array", items) ("map", [(k, v)])
Node = tuple[Any, ...]

_BINARY: dict[str, tuple[int, bool]] = {  # precedence, right-associative (expr-lang's table)
    "or": (10, False),
    "||": (10, False),
    "and": (15, False),
    "&&": (15, False),
    "==": (20, False),
    "!=": (20, False),
    "<": (20, False),
    ">": (20, False),
    "<=": (20, False),
    ">=": (20, False),
    "in": (20, False),
    "not in": (20, False),
    "matches": (20, False),
    "contains": (20, False),
    "startsWith": (20, False),
    "endsWith": (20, False),
    "..": (25, False),
    "+": (30, False),
    "-": (30, False),
    "*": (60, False),
    "/": (60, False),
    "%": (60, False),
    "**": (100, True),
    "^": (100, True),
    "??": (500, False),
}
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> _Tok:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.value in ops

    def expect(self, op: str) -> None:
        tok = self.take()
        if tok.kind != "op" or tok.value != op:
            shown = tok.value if tok.kind != "end" else "end of expression"
            raise ExpressionError(f"expected '{op}' but found '{shown}' at {tok.pos} in '{self.text}'")

    def parse(self) -> Node:
        node = self.expression()
        tok = self.peek()
        if tok.kind != "end":
            raise ExpressionError(f"unexpected '{tok.value}' at {tok.pos} in '{self.text}'")
        return node

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ExpressionError(f"the expression is nested deeper than {_MAX_DEPTH} levels")
        try:
            node = self.binary(0)
            if self.is_op("?"):
                self.take()
                yes = self.expression()
                self.expect(":")
                no = self.expression()
                node = ("cond", node, yes, no)
            if self.is_op("|"):
                raise UnsupportedExpression("pipes ('|') are not supported by Canal's expression evaluator")
            return node
        finally:
            self.depth -= 1

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        while True:
            tok = self.peek()
            op = tok.value if tok.kind == "op" else None
            if op == "not" and self.peek(1).kind == "op" and self.peek(1).value == "in":
                op = "not in"
            if op not in _BINARY:
                return left
            prec, right_assoc = _BINARY[op]
            if prec < min_prec:
                return left
            self.take()
            if op == "not in":
                self.take()
            right = self.binary(prec if right_assoc else prec + 1)
            left = ("binary", op, left, right)

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.value in _UNARY:
            self.take()
            operand = self.binary(_UNARY[tok.value])
            return ("unary", tok.value, operand)
        return self.postfix(self.primary())

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in ("num", "str"):
            return ("lit", tok.value)
        if tok.kind == "name":
            if tok.value in ("true", "false"):
                return ("lit", tok.value == "true")
            if tok.value == "nil":
                return ("lit", None)
            return ("name", tok.value)
        if tok.kind == "op" and tok.value == "(":
            node = self.expression()
            self.expect(")")
            return node
        if tok.kind == "op" and tok.value == "[":
            items: list[Node] = []
            while not self.is_op("]"):
                items.append(self.expression())
                if not self.is_op("]"):
                    self.expect(",")
            self.expect("]")
            return ("array", items)
        if tok.kind == "op" and tok.value == "{":
            pairs: list[tuple[Node, Node]] = []
            while not self.is_op("}"):
                key_tok = self.take()
                if key_tok.kind in ("name", "str", "num"):
                    key: Node = ("lit", key_tok.value)
                elif key_tok.kind == "op" and key_tok.value == "#":
                    raise UnsupportedExpression(
                        "closures ('#') are not supported by Canal's expression evaluator"
                    )
                elif key_tok.kind == "op" and key_tok.value == "(":
                    key = self.expression()
                    self.expect(")")
                else:
                    raise ExpressionError(f"a map key cannot be '{key_tok.value}' in '{self.text}'")
                if not self.is_op(":"):
                    # ``{ … }`` that is not ``key: value`` is a predicate/closure (map, filter).
                    raise UnsupportedExpression(
                        "closures ('{ … }' predicates of map/filter/all/any) are not supported by "
                        "Canal's expression evaluator"
                    )
                self.expect(":")
                pairs.append((key, self.expression()))
                if not self.is_op("}"):
                    self.expect(",")
            self.expect("}")
            return ("map", pairs)
        if tok.kind == "op" and tok.value == "#":
            raise UnsupportedExpression("closures ('#') are not supported by Canal's expression evaluator")
        shown = tok.value if tok.kind != "end" else "end of expression"
        raise ExpressionError(f"unexpected '{shown}' at {tok.pos} in '{self.text}'")

    def postfix(self, node: Node) -> Node:
        while True:
            if self.is_op(".", "?."):
                optional = self.take().value == "?."
                name = self.take()
                if name.kind not in ("name", "op") or (name.kind == "op" and name.value not in _WORD_OPS):
                    raise ExpressionError(f"expected a name after '.' at {name.pos} in '{self.text}'")
                node = ("member", node, ("lit", name.value), optional)
            elif self.is_op("["):
                self.take()
                if self.is_op(":"):
                    self.take()
                    upper = None if self.is_op("]") else self.expression()
                    self.expect("]")
                    node = ("slice", node, None, upper)
                    continue
                index = self.expression()
                if self.is_op(":"):
                    self.take()
                    upper = None if self.is_op("]") else self.expression()
                    self.expect("]")
                    node = ("slice", node, index, upper)
                    continue
                self.expect("]")
                node = ("member", node, index, False)
            elif self.is_op("("):
                self.take()
                args: list[Node] = []
                while not self.is_op(")"):
                    args.append(self.expression())
                    if not self.is_op(")"):
                        self.expect(",")
                self.expect(")")
                node = ("call", node, args)
            else:
                return node


def parse(text: str) -> Node:
    """Parse an expression (raises ExpressionError / UnsupportedExpression)."""
    if len(text) > _MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {_MAX_LENGTH:,} characters")
    return _Parser(text).parse()


# --- functions ----------------------------------------------------------------------------


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ExpressionError(f"invalid operation: int({_json(value)})")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ExpressionError(f'strconv.Atoi: parsing "{value}": invalid syntax') from None
    raise ExpressionError(f"invalid operation: int({_json(value)})")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ExpressionError(f"invalid operation: float({_json(value)})")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ExpressionError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    raise ExpressionError(f"invalid operation: float({_json(value)})")


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, int):
        return str(value)
    return _json(value)


def _length(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise ExpressionError(f"invalid argument for len (type {_type(value)})")


def _from_json(value: Any) -> Any:
    try:
        return json.loads(_str_arg(value, "fromJSON"))
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"fromJSON: {exc}") from None


def _str_arg(value: Any, fn: str) -> str:
    if not isinstance(value, str):
        raise ExpressionError(f"{fn}: expected a string, got {_type(value)}")
    return value


def _jsonpath(document: Any, path: Any) -> Any:
    text = _str_arg(document, "jsonpath")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"jsonpath: the document is not JSON: {exc}") from None
    return jsonpath_query(_str_arg(path, "jsonpath"), data)


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        values = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
        if not values or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise ExpressionError("max/min need numbers")
        return pick(values)

    return run


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": _to_int,
    "int": _to_int,
    "asFloat": _to_float,
    "float": _to_float,
    "string": _to_string,
    "len": _length,
    "upper": lambda s: _str_arg(s, "upper").upper(),
    "lower": lambda s: _str_arg(s, "lower").lower(),
    "trim": lambda s, chars=None: _str_arg(s, "trim").strip(chars),
    "trimPrefix": lambda s, p: _str_arg(s, "trimPrefix").removeprefix(_str_arg(p, "trimPrefix")),
    "trimSuffix": lambda s, p: _str_arg(s, "trimSuffix").removesuffix(_str_arg(p, "trimSuffix")),
    "hasPrefix": lambda s, p: _str_arg(s, "hasPrefix").startswith(_str_arg(p, "hasPrefix")),
    "hasSuffix": lambda s, p: _str_arg(s, "hasSuffix").endswith(_str_arg(p, "hasSuffix")),
    "split": lambda s, sep: _str_arg(s, "split").split(_str_arg(sep, "split")),
    "join": lambda items, sep="": _str_arg(sep, "join").join(_to_string(i) for i in items),
    "toJson": lambda v: _json(v),
    "toJSON": lambda v: json.dumps(v, indent=2, ensure_ascii=False),
    "fromJSON": _from_json,
    "jsonpath": _jsonpath,
    "abs": lambda v: abs(v),
    "max": _extreme(max),
    "min": _extreme(min),
    "keys": lambda m: list(m.keys()) if isinstance(m, dict) else _bad("keys", m),
    "values": lambda m: list(m.values()) if isinstance(m, dict) else _bad("values", m),
    "first": lambda v: v[0] if isinstance(v, list) and v else None,
    "last": lambda v: v[-1] if isinstance(v, list) and v else None,
}


def _bad(fn: str, value: Any) -> Any:
    raise ExpressionError(f"{fn}: unexpected {_type(value)}")


# --- evaluation ---------------------------------------------------------------------------


def _type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _go_float(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _json(value: Any) -> str:
    def convert(v: Any) -> Any:
        if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 1e21:
            return int(v)
        if isinstance(v, list):
            return [convert(i) for i in v]
        if isinstance(v, dict):
            return {str(k): convert(i) for k, i in v.items()}
        return v

    return json.dumps(convert(value), separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    return bool(a == b)


def _path_of(node: Node) -> str | None:
    """``a.b['c']`` as the dotted path ``a.b.c`` when every step is a constant name."""
    if node[0] == "name":
        return str(node[1])
    if node[0] == "member" and node[2][0] == "lit" and isinstance(node[2][1], str) and not node[3]:
        base = _path_of(node[1])
        return None if base is None else f"{base}.{node[2][1]}"
    return None


class _Evaluator:
    def __init__(self, env: Mapping[str, Any]) -> None:
        self.env = env

    def run(self, node: Node) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "name":
            name = node[1]
            if name in self.env:
                return self.env[name]
            if name in _FUNCTIONS:
                return _Function(name)
            raise MissingVariable(name)
        if kind == "array":
            return [self.run(item) for item in node[1]]
        if kind == "map":
            return {_to_string(self.run(k)): self.run(v) for k, v in node[1]}
        if kind == "member":
            return self.member(node)
        if kind == "slice":
            return self.slice(node)
        if kind == "call":
            return self.call(node)
        if kind == "unary":
            return self.unary(node[1], self.run(node[2]))
        if kind == "cond":
            cond = self.run(node[1])
            if not isinstance(cond, bool):
                raise ExpressionError(f"non-bool expression (type {_type(cond)}) used as condition")
            return self.run(node[2] if cond else node[3])
        if kind == "binary":
            return self.binary(node)
        raise ExpressionError(f"cannot evaluate {kind}")  # pragma: no cover

    def member(self, node: Node) -> Any:
        path = _path_of(node)
        try:
            base = self.run(node[1])
        except MissingVariable:
            if path is not None:
                raise MissingVariable(path) from None
            raise
        if base is None:
            if node[3]:
                return None
            raise ExpressionError(f"cannot fetch {self.run(node[2])!r} from nil")
        key = self.run(node[2])
        if isinstance(base, dict):
            if isinstance(key, str) and key in base:
                return base[key]
            if path is not None and base is not self.env:
                raise MissingVariable(path)
            return None
        if isinstance(base, list | str):
            if not _is_num(key):
                raise ExpressionError(f"cannot fetch {key!r} from {_type(base)}")
            index = int(key)
            if index < 0:
                index += len(base)
            if not 0 <= index < len(base):
                raise ExpressionError(f"index out of range: {int(key)} (array length is {len(base)})")
            return base[index]
        if isinstance(base, _Function):
            raise UnsupportedExpression(
                f"'{base.name}.{key}' is not supported by Canal's expression evaluator"
            )
        raise ExpressionError(f"cannot fetch {key!r} from {_type(base)}")

    def slice(self, node: Node) -> Any:
        base = self.run(node[1])
        if not isinstance(base, list | str):
            raise ExpressionError(f"cannot slice {_type(base)}")
        lower = 0 if node[2] is None else int(self.run(node[2]))
        upper = len(base) if node[3] is None else int(self.run(node[3]))
        return base[lower:upper]

    def call(self, node: Node) -> Any:
        callee = node[1]
        path = _path_of(callee)
        if path is None or path not in _FUNCTIONS:
            shown = path or "this call"
            raise UnsupportedExpression(
                f"function '{shown}' is not supported by Canal's expression evaluator"
            )
        args = [self.run(arg) for arg in node[2]]
        try:
            return _FUNCTIONS[path](*args)
        except ExpressionError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise ExpressionError(f"{path}(): {exc}") from None

    def unary(self, op: str, value: Any) -> Any:
        if op in ("not", "!"):
            if not isinstance(value, bool):
                raise ExpressionError(f"invalid operation: {op} {_type(value)}")
            return not value
        if not _is_num(value):
            raise ExpressionError(f"invalid operation: {op} {_type(value)}")
        return -value if op == "-" else value

    def binary(self, node: Node) -> Any:
        op = node[1]
        if op in ("and", "&&", "or", "||"):
            left = self.run(node[2])
            if not isinstance(left, bool):
                raise ExpressionError(f"invalid operation: {_type(left)} {op} …")
            if (op in ("and", "&&")) != left:
                return left
            right = self.run(node[3])
            if not isinstance(right, bool):
                raise ExpressionError(f"invalid operation: … {op} {_type(right)}")
            return right
        if op == "??":
            try:
                left = self.run(node[2])
            except MissingVariable:
                left = None
            return left if left is not None else self.run(node[3])
        a, b = self.run(node[2]), self.run(node[3])
        if op == "==":
            return _equal(a, b)
        if op == "!=":
            return not _equal(a, b)
        if op in ("in", "not in"):
            if isinstance(b, list):
                found = any(_equal(a, item) for item in b)
            elif isinstance(b, dict):
                found = a in b
            else:
                raise ExpressionError(f"invalid operation: in {_type(b)}")
            return found if op == "in" else not found
        if op in ("matches", "contains", "startsWith", "endsWith"):
            if not isinstance(a, str) or not isinstance(b, str):
                raise ExpressionError(f"invalid operation: {_type(a)} {op} {_type(b)}")
            if op == "matches":
                try:
                    return re.search(b, a) is not None
                except re.error as exc:
                    raise ExpressionError(f"invalid regular expression {b!r}: {exc}") from None
            return {"contains": b in a, "startsWith": a.startswith(b), "endsWith": a.endswith(b)}[op]
        if op in ("<", ">", "<=", ">="):
            if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
                raise ExpressionError(f"invalid operation: {_type(a)} {op} {_type(b)}")
            return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        if op == "..":
            if not (isinstance(a, int) and isinstance(b, int)) or b - a > 100_000:
                raise ExpressionError("invalid range")
            return list(range(a, b + 1))
        if op == "+":
            if isinstance(a, str) and isinstance(b, str):
                return a + b
            if isinstance(a, list) and isinstance(b, list):
                return a + b
        if not (_is_num(a) and _is_num(b)):
            raise ExpressionError(f"invalid operation: {_type(a)} {op} {_type(b)}")
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                return math.inf if a > 0 else -math.inf if a < 0 else math.nan
            return a / b
        if op == "%":
            if not (isinstance(a, int) and isinstance(b, int)):
                raise ExpressionError(f"invalid operation: {_type(a)} % {_type(b)}")
            if b == 0:
                raise ExpressionError("integer divide by zero")
            return int(math.fmod(a, b))
        return float(a) ** float(b)  # ** and ^


@dataclass(frozen=True)
class _Function:
    name: str


def expand_env(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Argo's environment: dotted keys become nested maps (a key that has children is dropped)."""
    root: dict[str, Any] = {}
    keys = sorted(flat)
    for i, key in enumerate(keys):
        if i + 1 < len(keys) and keys[i + 1].startswith(key + "."):
            continue
        parts = key.split(".")
        cursor = root
        for part in parts[:-1]:
            nxt = cursor.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                cursor[part] = nxt
            cursor = nxt
        cursor[parts[-1]] = flat[key]
    return root


def evaluate(text: str | Node, env: Mapping[str, Any]) -> Any:
    """Evaluate ``text`` in ``env`` (already nested; see expand_env)."""
    node = parse(text) if isinstance(text, str) else text
    return _Evaluator(env).run(node)


def referenced_paths(node: Node) -> list[str]:
    """The dotted names an expression reads (``steps.a.outputs.result``), outside ``??`` guards."""
    out: list[str] = []

    def walk(n: Any, guarded: bool) -> None:
        if not isinstance(n, tuple) or not n:
            return
        path = _path_of(n) if n[0] in ("name", "member") else None
        if path is not None:
            if not guarded and path.split(".")[0] not in _FUNCTIONS:
                out.append(path)
            return
        if n[0] == "binary" and n[1] == "??":
            walk(n[2], True)
            walk(n[3], guarded)
            return
        if n[0] == "call":
            for arg in n[2]:
                walk(arg, guarded)
            return
        for child in n[1:]:
            if isinstance(child, list):
                for item in child:
                    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], tuple):
                        walk(item[0], guarded)
                        walk(item[1], guarded)
                    else:
                        walk(item, guarded)
            else:
                walk(child, guarded)

    walk(node, False)
    return out


def check_supported(text: str) -> None:
    """Raise UnsupportedExpression if ``text`` uses what Canal cannot evaluate (or ExpressionError)."""
    node = parse(text)

    def walk(n: Any) -> None:
        if isinstance(n, tuple) and n:
            if n[0] == "call":
                path = _path_of(n[1])
                if path is None or path not in _FUNCTIONS:
                    raise UnsupportedExpression(
                        f"function '{path or '?'}' is not supported by Canal's expression evaluator"
                    )
            for child in n[1:]:
                walk(child)
        elif isinstance(n, list):
            for item in n:
                walk(item)

    walk(node)


def format_result(value: Any) -> str:
    """How Argo writes an expression's value into a string: JSON, without a string's quotes."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _go_float(value)
    return _json(value)
