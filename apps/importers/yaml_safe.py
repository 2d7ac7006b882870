"""Safe, bounded YAML loading with a path-to-line locator.

Everything goes through ``CanalSafeLoader``, a ``yaml.SafeLoader`` subclass: no
Python object tags, ever. On top of PyYAML's safe loader it refuses, while the
node graph is being *composed* (before any Python object is built):

* alias bombs: the size of the document with every alias expanded is tracked as
  it is composed (memoised per anchored node), so a 1,000-level billion-laughs
  file is refused after a few hundred events, in microseconds;
* too many aliases, too deep nesting (also counted through aliases), recursive
  aliases and too many documents;
* any tag outside plain JSON-like data (``!!python/*``, ``!!binary``, ``!!set``,
  custom ``!Ref`` tags), and NaN/Infinity, which JSON cannot carry;
* duplicate mapping keys, which PyYAML would silently collapse to the last one;
* text that is not valid Unicode or holds NUL: a quoted scalar's escapes
  (``"\\ud800"``, ``"\\0"``) can produce characters the strictly decoded UTF-8 file
  could not hold. libyaml refuses surrogate escapes, the pure-Python parser does
  not; the check here holds for both (``apps.engine.untrusted``).

Mapping keys are kept as the strings written in the file (``1: x`` gives the key
``"1"``), as JSON-shaped specs need. Implicit timestamps stay strings.

When libyaml is installed its C parser is used as the *event source* (about 6x
faster than the pure-Python scanner); composition, the checks above and object
construction remain this module's and SafeConstructor's.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import yaml
from yaml.error import Mark, MarkedYAMLError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from apps.engine.untrusted import text_problem

from .errors import PathPart, PipelineImportError
from .limits import DEFAULT_LIMITS, ImportLimits

_CParser: Any
try:  # libyaml is optional; the pure-Python parser produces the same events.
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    _CParser = None

_YAML = "tag:yaml.org,2002:"
STR_TAG = _YAML + "str"
MERGE_TAG = _YAML + "merge"
FLOAT_TAG = _YAML + "float"
_ALLOWED_TAGS = frozenset(
    _YAML + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge", "timestamp", "value")
)
_NON_FINITE = re.compile(r"[-+]?\.(inf|Inf|INF|nan|NaN|NAN)")


def short_tag(tag: str) -> str:
    """Show ``tag:yaml.org,2002:python/object`` the way it was written: ``!!python/object``."""
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


class _Mark(Protocol):
    """PyYAML's and libyaml's Mark classes differ; both have these."""

    line: int
    column: int


def _position(mark: _Mark | None) -> tuple[int | None, int | None]:
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1


class CanalSafeLoader(yaml.SafeLoader):
    """SafeLoader that enforces ``ImportLimits`` and refuses ambiguous or non-JSON YAML while composing."""

    def __init__(self, stream: str, *, filename: str | None = None, limits: ImportLimits = DEFAULT_LIMITS):
        super().__init__(stream)
        self._events = _CParser(stream) if _CParser is not None else None
        if self._events is not None:
            # Bound directly rather than through overriding methods: these run
            # several times per node, and the Composer only needs the callables.
            self.check_event = self._events.check_event  # type: ignore[method-assign]
            self.peek_event = self._events.peek_event  # type: ignore[method-assign]
            self.get_event = self._events.get_event  # type: ignore[method-assign]
        self.filename = filename
        self.limits = limits
        self.expanded_nodes = 0  # cumulative over documents, aliases expanded
        self.alias_count = 0
        self._depth = 0
        # The deepest level reached, aliases expanded, since the innermost open
        # anchored node started: that node's height once it is finished.
        self._deepest = 0
        self._path: list[PathPart] = []
        # Per document: expanded size and height of each finished *anchored* node,
        # keyed by id(). An anchor missing here is still open, so an alias to it
        # is recursive.
        self._sizes: dict[int, int] = {}
        self._heights: dict[int, int] = {}

    def dispose(self) -> None:
        if self._events is not None:
            self._events.dispose()
        super().dispose()

    # -- composition with limits ---------------------------------------------
    def fail(self, message: str, mark: _Mark | None) -> NoReturn:
        """Raise a PipelineImportError at ``mark`` and the field path being composed."""
        line, column = _position(mark)
        raise PipelineImportError(
            message, filename=self.filename, field_path=tuple(self._path), line=line, column=column
        )

    def _too_many_nodes(self, mark: _Mark | None) -> NoReturn:
        limit = self.limits.max_yaml_nodes
        if self.alias_count:
            self.fail(
                f"the YAML expands to more than {limit:,} nodes once its aliases (*name) are "
                "resolved; refusing a possible alias bomb ('billion laughs')",
                mark,
            )
        self.fail(f"the YAML has more than {limit:,} nodes; refusing a file this large", mark)

    def compose_document(self) -> Node | None:
        self._sizes.clear()
        self._heights.clear()
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # PyYAML passes the key node when composing a mapping value and the
        # position when composing a list item: enough to keep the field path.
        path = self._path
        if isinstance(index, ScalarNode):
            path.append(index.value)
        elif isinstance(index, int) and isinstance(parent, SequenceNode):
            path.append(index)
        else:
            return self._compose_node(parent, index)
        try:
            return self._compose_node(parent, index)
        finally:
            path.pop()

    def _compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        limits = self.limits
        if isinstance(event, AliasEvent):
            self.alias_count += 1
            if self.alias_count > limits.max_aliases:
                self.fail(f"more than {limits.max_aliases:,} aliases (*name) in one file", event.start_mark)
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is reported by PyYAML below
                key = id(target)
                if key not in self._sizes:
                    self.fail(
                        f"alias *{event.anchor} points into its own anchor &{event.anchor}; "
                        "recursive structures cannot be represented as JSON",
                        event.start_mark,
                    )
                self.expanded_nodes += self._sizes[key]
                if self.expanded_nodes > limits.max_yaml_nodes:
                    self._too_many_nodes(event.start_mark)
                reach = self._depth + self._heights[key]
                if reach > limits.max_depth:
                    self.fail(
                        f"alias *{event.anchor} nests the data deeper than {limits.max_depth} levels",
                        event.start_mark,
                    )
                self._deepest = max(self._deepest, reach)
            return super().compose_node(parent, index)

        self._depth += 1
        if self._depth > limits.max_depth:
            self.fail(f"the YAML is nested deeper than {limits.max_depth} levels", event.start_mark)
        self.expanded_nodes += 1
        if self.expanded_nodes > limits.max_yaml_nodes:
            self._too_many_nodes(event.start_mark)
        if self._depth > self._deepest:
            self._deepest = self._depth
        if event.anchor is None:
            node = super().compose_node(parent, index)
        else:
            # Only anchored nodes can be aliased, so only they need their size and height.
            before, outer_deepest = self.expanded_nodes - 1, self._deepest
            self._deepest = self._depth
            node = super().compose_node(parent, index)
            self._sizes[id(node)] = self.expanded_nodes - before
            self._heights[id(node)] = self._deepest - self._depth + 1
            self._deepest = max(outer_deepest, self._deepest)
        assert node is not None  # a non-alias event always yields a node
        self._depth -= 1
        self._check_tag(node)
        return node

    def _check_tag(self, node: Node) -> None:
        tag = node.tag
        if tag not in _ALLOWED_TAGS:
            if tag.startswith(_YAML + "python/"):
                why = "Python object tags can run code when loaded, and pipeline files hold plain data only"
            else:
                why = (
                    "pipeline files hold plain data only (mappings, lists, strings, numbers, booleans, null)"
                )
            self.fail(f"YAML tag '{short_tag(tag)}' is not allowed: {why}", node.start_mark)
        if tag == FLOAT_TAG and isinstance(node, ScalarNode) and _NON_FINITE.fullmatch(node.value):
            self.fail(f"'{node.value}' (NaN or infinity) cannot be represented in JSON", node.start_mark)
        if isinstance(node, ScalarNode):
            problem = text_problem(node.value)
            if problem is not None:
                self.fail(f"the text {problem}", node.start_mark)

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[str, Mark] = {}
        for i, (key, value) in enumerate(node.value):
            if key.tag == MERGE_TAG:
                name = "<<"
            elif isinstance(key, ScalarNode):
                name = key.value
                if key.tag != STR_TAG:
                    # A copy, because an aliased scalar may also be used as a value.
                    key = ScalarNode(STR_TAG, key.value, key.start_mark, key.end_mark, key.style)
                    node.value[i] = (key, value)
            else:
                kind = "mapping" if isinstance(key, MappingNode) else "list"
                self.fail(f"a {kind} is used as a mapping key; keys must be plain strings", key.start_mark)
            if name in seen:
                first = seen[name].line + 1
                self.fail(
                    f"duplicate key '{name}' in the same mapping (first at line {first}); "
                    "YAML would silently keep only the last value",
                    key.start_mark,
                )
            seen[name] = key.start_mark
        return node


# Implicit timestamps (2024-01-01) stay strings, as JSON has no date type; the
# YAML 1.1 '=' value key is a plain string too.
def _construct_str(loader: CanalSafeLoader, node: Node) -> str:
    return loader.construct_yaml_str(node)


CanalSafeLoader.add_constructor(_YAML + "timestamp", _construct_str)
CanalSafeLoader.add_constructor(_YAML + "value", _construct_str)


class Locator:
    """Maps a field path inside one YAML document to the line and column it was written at."""

    def __init__(self, root: Node | None) -> None:
        self._root = root

    def locate(self, path: Sequence[PathPart]) -> tuple[int, int] | None:
        """1-based (line, column) of the deepest part of ``path`` that exists in the document.

        A mapping step resolves to the key (``name:``), a list step to the item.
        Paths that run past the document (a missing required field) stop at the
        last node that exists, which is where the user has to add something.
        """
        node = self._root
        if node is None:
            return None
        mark = node.start_mark
        for part in path:
            if isinstance(node, MappingNode) and isinstance(part, str):
                for key, value in node.value:
                    if isinstance(key, ScalarNode) and key.value == part:
                        mark, node = key.start_mark, value
                        break
                else:
                    break
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                mark = node.start_mark
            else:
                break
        return mark.line + 1, mark.column + 1

    def line(self, path: Sequence[PathPart]) -> int | None:
        """Just the line of :meth:`locate`."""
        found = self.locate(path)
        return found[0] if found else None


@dataclass(frozen=True)
class YamlDocument:
    """One parsed YAML document and the locator for its fields."""

    data: Any
    locator: Locator
    line: int  # where the document starts, 1-based


def decode_text(data: bytes, filename: str | None = None) -> str:
    """Decode strict UTF-8 (an optional BOM is dropped); refuse anything else with the byte offset."""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if data.startswith(bom):
            raise PipelineImportError(
                f"the file is encoded as {name}; pipeline files must be UTF-8", filename=filename
            )
    if b"\x00" in data[:8192]:
        # UTF-8 text never holds NUL; this also catches UTF-16 without a BOM.
        raise PipelineImportError(
            "this looks like a binary file (it contains NUL bytes), not a YAML pipeline", filename=filename
        )
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        line_start = data.rfind(b"\n", 0, offset) + 1
        raise PipelineImportError(
            f"not valid UTF-8: byte 0x{data[offset]:02x} at byte offset {offset} ({exc.reason}); "
            "pipeline files must be UTF-8 text",
            filename=filename,
            line=data.count(b"\n", 0, offset) + 1,
            column=offset - line_start + 1,
        ) from None


def _char_at(text: str, mark: Mark | None) -> str | None:
    # libyaml's marks count bytes in .index, so go by line and column instead.
    if mark is None:
        return None
    lines = text.split("\n", mark.line + 1)
    if mark.line >= len(lines):
        return None
    row = lines[mark.line]
    return row[mark.column] if mark.column < len(row) else None


def _yaml_error(exc: yaml.YAMLError, text: str, filename: str | None) -> PipelineImportError:
    """Reword PyYAML's errors: what is wrong, and the line and column where."""
    if isinstance(exc, ReaderError):
        pos = exc.position
        char = exc.character
        code = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        what = "a NUL byte: this looks like a binary file" if char in (0, "\x00") else f"character {code}"
        line_start = text.rfind("\n", 0, pos) + 1
        return PipelineImportError(
            f"YAML does not allow {what}",
            filename=filename,
            line=text.count("\n", 0, pos) + 1,
            column=pos - line_start + 1,
        )
    if isinstance(exc, MarkedYAMLError):
        problem = exc.problem or "invalid YAML"
        if _char_at(text, exc.problem_mark) == "\t":
            problem += " (a tab: YAML indentation must use spaces)"
        if exc.context:
            context = exc.context
            marks = (exc.context_mark, exc.problem_mark)
            if marks[0] is not None and marks[1] is not None and marks[0].line != marks[1].line:
                context += f" at line {marks[0].line + 1}"
            problem = f"{problem} ({context})"
        if isinstance(exc, yaml.constructor.ConstructorError):
            problem = f"cannot load this YAML: {problem}"
        else:
            problem = f"invalid YAML: {problem}"
        line, column = _position(exc.problem_mark or exc.context_mark)
        return PipelineImportError(problem, filename=filename, line=line, column=column)
    return PipelineImportError(f"invalid YAML: {exc}", filename=filename)


def load_documents(
    text: str, *, filename: str | None = None, limits: ImportLimits = DEFAULT_LIMITS
) -> list[YamlDocument]:
    """Parse every document in ``text`` safely; empty documents are dropped."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes:
        raise PipelineImportError(
            f"the YAML text is larger than the {limits.max_bytes:,}-byte limit", filename=filename
        )
    docs: list[YamlDocument] = []
    count = 0
    loader: CanalSafeLoader | None = None
    try:
        loader = CanalSafeLoader(text, filename=filename, limits=limits)
        while loader.check_node():
            count += 1
            start = loader.peek_event().start_mark  # type: ignore[no-untyped-call]
            if count > limits.max_documents:
                loader.fail(f"more than {limits.max_documents} YAML documents in one file", start)
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is not None:
                docs.append(YamlDocument(data=data, locator=Locator(node), line=start.line + 1))
    except PipelineImportError:
        raise
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, filename) from None
    except RecursionError:  # pragma: no cover - the depth limit should make this unreachable
        raise PipelineImportError("the YAML is nested too deeply", filename=filename) from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs
