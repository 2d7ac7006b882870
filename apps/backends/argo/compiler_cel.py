"""CEL to the small JSON syntax tree that Canal's Argo driver evaluates.

The driver (``runtime/driver.py``) runs in a pod with nothing but Python's standard
library, so it cannot parse CEL. The compiler parses each ``triggerPolicy.condition``
and ``parameterExpressionSelector`` with cel-python (the parser the engine uses, so
Canal accepts exactly the same expressions) and emits the tree as JSON lists:

``["lit", v]``, ``["id", name]``, ``["dot", e, field]``, ``["idx", e, key]``,
``["call", fn, [args]]``, ``["mcall", e, method, [args]]``, ``["not", e]``,
``["neg", e]``, ``["and", a, b]``, ``["or", a, b]``, ``["cond", c, a, b]``,
``["op", op, a, b]`` (comparisons, arithmetic, ``in``), ``["list", [...]]`` and
``["map", [[k, v], ...]]``.

Anything outside that (macros such as ``has()`` or ``all()``, message construction,
bytes) is refused at compile time with the reason, never at run time.
"""

from __future__ import annotations

import math
from typing import Any

import lark
from celpy.evaluation import celstr

from apps.engine.cel import CelError, cel_environment, check_syntax

__all__ = ["CelUnsupported", "cel_to_tree"]

_FUNCTIONS = frozenset({"int", "uint", "double", "string", "bool", "size", "parseJson"})
_METHODS = frozenset({"size", "contains", "startsWith", "endsWith", "matches"})
_RELATIONS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
}
_ARITHMETIC = {
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


class CelUnsupported(ValueError):
    """A valid CEL expression uses something Canal's Argo driver does not evaluate."""


def cel_to_tree(expression: str) -> Any:
    """Parse ``expression`` and return its JSON syntax tree (raises CelError or CelUnsupported)."""
    check_syntax(expression)  # the engine's parser and its error messages
    tree = cel_environment().compile(expression)
    return _Converter().convert(tree)


class _Converter:
    def convert(self, node: Any) -> Any:
        if isinstance(node, lark.Token):
            raise CelUnsupported(f"unexpected token {node!s}")
        handler = getattr(self, "_" + str(node.data), None)
        if handler is None:
            raise CelUnsupported(f"'{node.data}' is not supported by Canal's Argo driver")
        return handler(node)

    def _children(self, node: lark.Tree[Any]) -> list[Any]:
        return [c for c in node.children if c is not None]

    def _single(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        if len(children) != 1:
            raise CelUnsupported(f"unexpected shape of '{node.data}'")
        return self.convert(children[0])

    def _expr(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        if len(children) == 1:
            return self.convert(children[0])
        test, yes, no = children
        return ["cond", self.convert(test), self.convert(yes), self.convert(no)]

    def _conditionalor(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        if len(children) == 1:
            return self.convert(children[0])
        return ["or", self.convert(children[0]), self.convert(children[1])]

    def _conditionaland(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        if len(children) == 1:
            return self.convert(children[0])
        return ["and", self.convert(children[0]), self.convert(children[1])]

    def _binary(self, node: lark.Tree[Any], table: dict[str, str]) -> Any:
        children = self._children(node)
        if len(children) == 1:
            return self.convert(children[0])
        left, right = children
        op = table[str(left.data)]
        return ["op", op, self._single(left), self.convert(right)]

    def _relation(self, node: lark.Tree[Any]) -> Any:
        return self._binary(node, _RELATIONS)

    def _addition(self, node: lark.Tree[Any]) -> Any:
        return self._binary(node, _ARITHMETIC)

    def _multiplication(self, node: lark.Tree[Any]) -> Any:
        return self._binary(node, _ARITHMETIC)

    def _unary(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        if len(children) == 1:
            return self.convert(children[0])
        op, operand = children
        return ["not" if op.data == "unary_not" else "neg", self.convert(operand)]

    def _member(self, node: lark.Tree[Any]) -> Any:
        return self._single(node)

    def _primary(self, node: lark.Tree[Any]) -> Any:
        return self._single(node)

    def _paren_expr(self, node: lark.Tree[Any]) -> Any:
        return self._single(node)

    def _member_dot(self, node: lark.Tree[Any]) -> Any:
        target, name = self._children(node)
        return ["dot", self.convert(target), str(name)]

    def _member_index(self, node: lark.Tree[Any]) -> Any:
        target, key = self._children(node)
        return ["idx", self.convert(target), self.convert(key)]

    def _member_dot_arg(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        target, name = children[0], str(children[1])
        if name not in _METHODS:
            raise CelUnsupported(f"the method .{name}() is not supported by Canal's Argo driver")
        args = self._exprlist(children[2]) if len(children) > 2 else []
        return ["mcall", self.convert(target), name, args]

    def _ident(self, node: lark.Tree[Any]) -> Any:
        return ["id", str(self._children(node)[0])]

    def _ident_arg(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        name = str(children[0])
        args = self._exprlist(children[1]) if len(children) > 1 else []
        if name not in _FUNCTIONS:
            raise CelUnsupported(f"the function {name}() is not supported by Canal's Argo driver")
        if len(args) != 1:
            raise CelUnsupported(f"{name}() takes one argument, not {len(args)}")
        return ["call", name, args]

    def _exprlist(self, node: Any) -> list[Any]:
        if node is None:
            return []
        return [self.convert(c) for c in self._children(node)]

    def _list_lit(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        return ["list", self._exprlist(children[0]) if children else []]

    def _map_lit(self, node: lark.Tree[Any]) -> Any:
        children = self._children(node)
        if not children:
            return ["map", []]
        items = [self.convert(c) for c in self._children(children[0])]
        return ["map", [[items[i], items[i + 1]] for i in range(0, len(items), 2)]]

    def _literal(self, node: lark.Tree[Any]) -> Any:
        token = node.children[0]
        assert isinstance(token, lark.Token)
        kind, text = token.type, str(token.value)
        if kind == "INT_LIT":
            return ["lit", int(text, 0) if "x" in text.lower() else int(text)]
        if kind == "UINT_LIT":
            body = text[:-1]
            return ["lit", int(body, 0) if "x" in body.lower() else int(body)]
        if kind == "FLOAT_LIT":
            value = float(text)
            if math.isinf(value) or math.isnan(value):
                raise CelUnsupported(f"the number {text} is out of range")
            return ["lit", value]
        if kind in ("STRING_LIT", "MLSTRING_LIT"):
            return ["lit", str(celstr(token))]
        if kind == "BOOL_LIT":
            return ["lit", text == "true"]
        if kind == "NULL_LIT":
            return ["lit", None]
        raise CelUnsupported(
            f"{kind.lower().replace('_lit', '')} literals are not supported by Canal's Argo driver"
        )


def tree_or_error(expression: str) -> tuple[Any, str | None]:
    """The tree, or None and the reason it cannot be compiled."""
    try:
        return cel_to_tree(expression), None
    except (CelError, CelUnsupported) as exc:
        return None, str(exc)
