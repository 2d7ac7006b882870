"""Argo's ``when`` conditions, evaluated as Argo does: with govaluate, variables read as strings.

Argo substitutes ``{{…}}`` first, then parses the text with govaluate
(github.com/Knetic/govaluate) and turns every *variable* token into a string
literal, so ``heads == heads`` compares two strings and ``5 > 3`` two numbers
(``workflow/controller/steps.go: shouldExecute``). This module is a small
reimplementation of the parts of govaluate those conditions use:

* literals: numbers (``12``, ``1.5``, ``0x1f``), ``'…'`` / ``"…"`` strings (a backslash
  escapes the next character), ``true`` / ``false``, bare words (strings);
* ``==`` ``!=`` (strict: ``"5" == 5`` is false), ``<`` ``>`` ``<=`` ``>=`` (two numbers, or two
  strings compared as bytes), ``=~`` ``!~`` (regular expression), ``in`` with ``(a, b)``;
* ``&&`` ``||`` ``!`` on booleans, ``? :`` and ``??``, arithmetic ``+ - * / % **``,
  prefix ``-``, parentheses.

Type errors raise :class:`ExpressionError` with govaluate's wording, as Argo
would fail the step. Functions and ``[escaped]`` variables are not used by Argo
and are refused; ``[escaped variables]`` read as strings, like other variables.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import ExpressionError

__all__ = ["evaluate_when", "govaluate"]

_SYMBOL_CHARS = re.compile(r"[^\w()\[\]'\"\s]+")
_COMPARATORS = {"==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"}
_MAX_LENGTH = 10_000


@dataclass(frozen=True)
class _Tok:
    kind: str  # num, str, bool, op, lparen, rparen, comma
    value: Any


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch.isdigit() or ch == ".":
            if text.startswith(("0x", "0X"), i):
                j = i + 2
                while j < n and text[j] in "0123456789abcdefABCDEF":
                    j += 1
                try:
                    tokens.append(_Tok("num", float(int(text[i + 2 : j], 16))))
                except ValueError:
                    raise ExpressionError(f"Unable to parse hex value '{text[i + 2 : j]}'") from None
                i = j
                continue
            j = i
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            try:
                tokens.append(_Tok("num", float(text[i:j])))
            except ValueError:
                raise ExpressionError(f"Unable to parse numeric value '{text[i:j]}' to float64") from None
            i = j
            continue
        if ch == ",":
            tokens.append(_Tok("comma", ","))
            i += 1
            continue
        if ch == "[":
            # An escaped variable ([name with spaces]); Argo turns variables into strings.
            j = i + 1
            name: list[str] = []
            while j < n and text[j] != "]":
                if text[j] == "\\" and j + 1 < n:
                    name.append(text[j + 1])
                    j += 2
                    continue
                name.append(text[j])
                j += 1
            if j >= n:
                raise ExpressionError("Unclosed parameter bracket")
            tokens.append(_Tok("str", "".join(name)))
            i = j + 1
            continue
        if ch.isalpha():
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_."):
                j += 1
            word = text[i:j]
            i = j
            if word in ("true", "false"):
                tokens.append(_Tok("bool", word == "true"))
            elif word in ("in", "IN"):
                tokens.append(_Tok("op", "in"))
            elif "." in word:
                if word.endswith("."):
                    raise ExpressionError(f"Hanging accessor on token '{word}'")
                # govaluate reads ``a.b`` as a struct accessor; Argo passes no parameters,
                # so it can never resolve. Argo's own message, for the same condition.
                for part in word.split(".")[1:]:
                    if part[:1] != part[:1].upper():
                        raise ExpressionError(f"Unable to access unexported field '{part}' in token '{word}'")
                raise ExpressionError(f"No parameter '{word.split('.')[0]}' found.")
            else:
                tokens.append(_Tok("str", word))  # Argo: variables become strings
            continue
        if ch in "'\"":
            j = i + 1
            buf: list[str] = []
            closed = False
            while j < n:
                c = text[j]
                if c == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if c in "'\"":
                    closed = True
                    break
                buf.append(c)
                j += 1
            if not closed:
                raise ExpressionError("Unclosed string literal")
            tokens.append(_Tok("str", "".join(buf)))
            i = j + 1
            continue
        if ch == "(":
            tokens.append(_Tok("lparen", ch))
            i += 1
            continue
        if ch == ")":
            tokens.append(_Tok("rparen", ch))
            i += 1
            continue
        match = _SYMBOL_CHARS.match(text, i)
        symbol = match.group(0) if match else ch
        i += len(symbol)
        tokens.append(_Tok("op", symbol))
    depth = 0
    for tok in tokens:
        depth += tok.kind == "lparen"
        depth -= tok.kind == "rparen"
        if depth < 0:
            break
    if depth != 0:
        raise ExpressionError("Unbalanced parenthesis")
    return tokens


class _Parser:
    """Precedence climbing over govaluate's operators; evaluates while it parses."""

    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def at_op(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.value in ops:
            return str(tok.value)
        return None

    def parse(self) -> Any:
        if not self.tokens:
            raise ExpressionError("Unexpected end of expression")
        value = self.separated()
        if self.peek() is not None:
            raise ExpressionError(f"Invalid token: '{self.peek().value}'")  # type: ignore[union-attr]
        return value

    def separated(self) -> Any:
        value = self.ternary()
        if self.peek() is not None and self.peek().kind == "comma":  # type: ignore[union-attr]
            items = [value]
            while self.peek() is not None and self.peek().kind == "comma":  # type: ignore[union-attr]
                self.take()
                items.append(self.ternary())
            return items
        return value

    def ternary(self) -> Any:
        cond = self.logical_or()
        while True:
            op = self.at_op("?", "??")
            if op is None:
                return cond
            self.take()
            if op == "??":
                other = self.logical_or()
                cond = cond if cond is not None else other
                continue
            if not isinstance(cond, bool):
                raise ExpressionError(
                    f"Value '{_show(cond)}' cannot be used with the ternary operator '?', it is not a bool"
                )
            yes = self.logical_or()
            no: Any = None
            if self.at_op(":"):
                self.take()
                no = self.logical_or()
            cond = yes if cond else no

    def logical_or(self) -> Any:
        left = self.logical_and()
        while self.at_op("||"):
            self.take()
            right = self.logical_and()
            left = _logical("||", left, right)
        return left

    def logical_and(self) -> Any:
        left = self.comparison()
        while self.at_op("&&"):
            self.take()
            right = self.comparison()
            left = _logical("&&", left, right)
        return left

    def comparison(self) -> Any:
        left = self.additive()
        while True:
            op = self.at_op(*_COMPARATORS)
            if op is None:
                return left
            self.take()
            right = self.additive()
            left = _compare(op, left, right)

    def additive(self) -> Any:
        left = self.multiplicative()
        while True:
            op = self.at_op("+", "-")
            if op is None:
                return left
            self.take()
            right = self.multiplicative()
            if op == "+":
                if isinstance(left, str) or isinstance(right, str):
                    left = _show(left) + _show(right)
                    continue
                left = _number(left, op) + _number(right, op)
            else:
                left = _number(left, op) - _number(right, op)

    def multiplicative(self) -> Any:
        left = self.exponent()
        while True:
            op = self.at_op("*", "/", "%")
            if op is None:
                return left
            self.take()
            right = self.exponent()
            a, b = _number(left, op), _number(right, op)
            if op == "*":
                left = a * b
            elif op == "/":
                left = a / b if b else (math.inf if a > 0 else -math.inf if a < 0 else math.nan)
            else:
                left = math.fmod(a, b) if b else math.nan

    def exponent(self) -> Any:
        left = self.prefix()
        if self.at_op("**"):
            self.take()
            right = self.exponent()
            return math.pow(_number(left, "**"), _number(right, "**"))
        return left

    def prefix(self) -> Any:
        op = self.at_op("-", "!")
        if op is not None:
            self.take()
            value = self.prefix()
            if op == "-":
                if not isinstance(value, float):
                    raise ExpressionError(f"Value '{_show(value)}' cannot be used with the prefix '-'")
                return -value
            if not isinstance(value, bool):
                raise ExpressionError(f"Value '{_show(value)}' cannot be used with the prefix '!'")
            return not value
        return self.primary()

    def primary(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise ExpressionError("Unexpected end of expression")
        self.take()
        if tok.kind in ("num", "str", "bool"):
            return tok.value
        if tok.kind == "lparen":
            value = self.separated()
            closing = self.peek()
            if closing is None or closing.kind != "rparen":
                raise ExpressionError("Unbalanced parenthesis")
            self.take()
            return value
        raise ExpressionError(f"Invalid token: '{tok.value}'")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g") if not value.is_integer() else str(int(value))
    if value is None:
        return "<nil>"
    return str(value)


def _number(value: Any, op: str) -> float:
    if isinstance(value, float):
        return value
    raise ExpressionError(
        f"Value '{_show(value)}' cannot be used with the modifier '{op}', it is not a number"
    )


def _logical(op: str, left: Any, right: Any) -> bool:
    for value in (left, right):
        if not isinstance(value, bool):
            raise ExpressionError(
                f"Value '{_show(value)}' cannot be used with the logical operator '{op}', it is not a bool"
            )
    return bool((left and right) if op == "&&" else (left or right))


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return type(left) is type(right) and left == right
    if op == "!=":
        return not (type(left) is type(right) and left == right)
    if op in ("=~", "!~"):
        if not isinstance(left, str) or not isinstance(right, str):
            bad = left if not isinstance(left, str) else right
            raise ExpressionError(f"Value '{_show(bad)}' cannot be used with the comparator '{op}'")
        try:
            found = re.search(right, left) is not None
        except re.error as exc:
            raise ExpressionError(f"Unable to compile regexp pattern '{right}': {exc}") from None
        return found if op == "=~" else not found
    if op == "in":
        items = right if isinstance(right, list) else None
        if items is None:
            raise ExpressionError(f"Value '{_show(right)}' cannot be used with the comparator 'in'")
        return any(type(left) is type(item) and left == item for item in items)
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left.encode()
        b: Any = right.encode()
    elif isinstance(left, float) and isinstance(right, float):
        a, b = left, right
    else:
        bad = left if not isinstance(left, float) else right
        raise ExpressionError(
            f"Value '{_show(bad)}' cannot be used with the comparator '{op}', it is not a number"
        )
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    if op == "<":
        return bool(a < b)
    return bool(a <= b)


def govaluate(expression: str) -> Any:
    """The value of a govaluate expression with Argo's rule that variables are strings."""
    if len(expression) > _MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {_MAX_LENGTH:,} characters")
    return _Parser(_tokenize(expression)).parse()


def evaluate_when(when: str) -> bool:
    """Whether a substituted ``when`` holds; raises ExpressionError as Argo would refuse it."""
    if when == "":
        return True
    try:
        result = govaluate(when)
    except ExpressionError as exc:
        hint = (
            ' (hint: try wrapping the affected expression in quotes ("))'
            if "Invalid token" in str(exc)
            else ""
        )
        raise ExpressionError(f"Invalid 'when' expression '{when}': {exc}{hint}") from None
    if not isinstance(result, bool):
        raise ExpressionError(f"Expected boolean evaluation for '{when}'. Got {_show(result)}")
    return result
