"""``JsonStream``: one JSON document read piece by piece from a seekable binary file.

The stdlib's C scanner decodes each piece, a value or a key. So every piece reads exactly as
``json.loads`` reads it, in the running interpreter's words. This module walks the
containers around the pieces. It keeps a bounded window of the file in memory.

- A value larger than the window grows it geometrically. Each byte is scanned a bounded
  number of times, so time stays linear. Past ``max_value`` bytes, the value is refused with
  its JSON path.
- The refusals of :mod:`chatstate.snapshots.jsontext` are located as a JSON path, with a
  line and column. They are NaN, a repeated key, a huge integer, nesting deeper than 512.

Errors carry the problem line ``Snapshot.from_json`` gives for the same text."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from chatstate.snapshots.checks import MAX_DEPTH, may_nest_deeper, path_of
from chatstate.snapshots.jsontext import (
    MAP_SECTIONS,
    SCAN,
    TRAILING_COMMA,
    TRUSTED_SCAN,
    Found,
    locate,
    nests_deeper,
    problem,
)

#: The largest value (a state map, a lock, an id…) read by default, in bytes of its text.
DEFAULT_MAX_VALUE_BYTES = 1 << 20

_WS = re.compile(r"[ \t\n\r]*")
_BLANK = " \t\n\r"
# A scanner error this close to the end of the window may be the window's end, not the text's.
_MARGIN = 64
_CLOSE = {"{": "}", "[": "]"}

Steps = tuple[object, ...]


class JsonSyntaxError(ValueError):
    """The text is not a snapshot's JSON.

    ``problem`` is the problem line as ``Snapshot.from_json`` words it. It gives the path,
    what, line, column and character."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True)
class Mark:
    """A position in the file: byte offset, and the character, line and line start.

    Those are what the ``json`` module would count there. So a stream opened at a mark
    reports the same line and column as one that read from the start."""

    byte: int = 0
    char: int = 0
    line: int = 1
    line_start: int = 0


class JsonStream:
    """A cursor over the JSON text of ``raw`` from ``mark``.

    The text is UTF-8, with an optional BOM. ``depth`` counts the arrays and objects already
    open at ``mark``. ``trusted`` means the text was read before with every check; it
    decodes without the refusals' hooks. Several streams may share one file, since each
    seeks before it reads."""

    def __init__(
        self,
        raw: BinaryIO,
        mark: Mark | None = None,
        *,
        chunk_size: int = 1 << 20,
        max_value: int = DEFAULT_MAX_VALUE_BYTES,
        trusted: bool = False,
        depth: int = 0,
    ) -> None:
        mark = mark or Mark()
        self.raw = raw
        self.scan = TRUSTED_SCAN if trusted else SCAN
        self.chunk_size = max(16, chunk_size)
        self.max_value = max_value
        self.depth = depth
        self.file_pos = mark.byte
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.at_start = mark.byte == 0
        self.bom = 0  # a UTF-8 BOM skipped at the start
        self.base_chars = mark.char  # characters before buf[0]
        self.base_bytes = mark.byte  # file offset of buf[0]
        self.lines_before = mark.line - 1  # newlines before buf[0]
        self.line_start = mark.line_start  # character index where the line of buf[0] starts
        self.key_at = 0  # character index of the last key ``members`` read

    # -- the window ----------------------------------------------------------------------

    def fill(self, size: int = 0) -> None:
        """Drop what was consumed, then read ``size`` bytes more, at least a chunk."""
        drop = self.buf[: self.pos]
        if drop:
            self.base_bytes += _utf8_length(drop)
            newlines = drop.count("\n")
            if newlines:
                self.lines_before += newlines
                self.line_start = self.base_chars + drop.rfind("\n") + 1
            self.base_chars += len(drop)
        self.raw.seek(self.file_pos)
        data = self.raw.read(max(size, self.chunk_size))
        if self.at_start:
            self.at_start = False
            if data.startswith(b"\xef\xbb\xbf"):  # json.loads(bytes) reads UTF-8 with a BOM too
                data, self.file_pos, self.base_bytes, self.bom = data[3:], 3, 3, 3
        pending = len(self.decoder.getstate()[0])
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise self.undecodable(exc, self.file_pos - pending - self.bom) from None
        self.file_pos += len(data)
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        if not data:
            self.eof = True

    @staticmethod
    def undecodable(exc: UnicodeDecodeError, shift: int) -> JsonSyntaxError:
        """``exc`` in the words ``json.loads`` uses, its positions ``shift`` bytes on."""
        start, end = exc.start + shift, exc.end + shift
        if exc.end - exc.start == 1:
            what = f"byte 0x{exc.object[exc.start]:02x} in position {start}"
        else:
            what = f"bytes in position {start}-{end - 1}"
        return JsonSyntaxError(f"$: invalid JSON: 'utf-8' codec can't decode {what}: {exc.reason}")

    def decode_error(self) -> JsonSyntaxError | None:
        """The first text that is not UTF-8 from here to the end; read, not kept.

        ``json.loads`` reports it before any JSON error, since it decodes the whole text
        first."""
        try:
            while not self.eof:
                self.pos = len(self.buf)
                self.fill(1 << 20)
        except JsonSyntaxError as exc:
            return exc
        return None

    def mark(self) -> Mark:
        """The current position as a ``Mark``, for a later ``JsonStream(raw, mark)``."""
        byte = _utf8_length(self.buf[: self.pos])
        line, column = self.line_column(self.pos)
        char = self.base_chars + self.pos
        return Mark(self.base_bytes + byte, char, line, char - column + 1)

    def line_column(self, at: int) -> tuple[int, int]:
        """Line and column, from 1, of window position ``at``, as ``json`` counts them."""
        newline = self.buf.rfind("\n", 0, at)
        line = self.lines_before + self.buf.count("\n", 0, at) + 1
        start = self.base_chars + newline + 1 if newline >= 0 else self.line_start
        return line, self.base_chars + at - start + 1

    def error(self, path: str, what: str, at: int) -> JsonSyntaxError:
        """``path: what: line L column C (char N)`` at window position ``at``."""
        line, column = self.line_column(at)
        char = self.base_chars + at
        return JsonSyntaxError(f"{path}: {what}: line {line} column {column} (char {char})")

    def syntax(self, message: str, at: int) -> JsonSyntaxError:
        """A syntax error, in the words of ``json.JSONDecodeError``."""
        return self.error("$", f"invalid JSON: {message}", at)

    # -- tokens --------------------------------------------------------------------------

    def peek(self) -> str:
        """Skip whitespace; return the next character, ``""`` at the end of the text."""
        while True:
            buf, pos = self.buf, self.pos
            if pos < len(buf) and buf[pos] not in _BLANK:
                return buf[pos]
            pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if self.eof:
                return ""
            self.fill()

    def end(self) -> None:
        """Raise "Extra data" unless only whitespace is left."""
        if self.peek() != "":
            raise self.syntax("Extra data", self.pos)

    def value(self, where: Steps, what: str = "value") -> Any:
        """Decode the value here exactly as ``json.loads`` would, from at most ``max_value`` bytes.

        It raises ``JsonSyntaxError`` for invalid JSON, a refusal, or a value too large. The
        error names ``where`` when that is the path of the fault."""
        self.peek()
        start = self.pos
        while True:
            buf = self.buf
            try:
                obj, end = self.scan(buf, start)
            except StopIteration as exc:
                message, at = "Expecting value", int(exc.value)
            except json.JSONDecodeError as exc:
                message, at = exc.msg, exc.pos
            except (ValueError, RecursionError) as exc:
                found = locate(buf, start, list(where), self.depth, complete=self.eof)
                if found is not None and found.cut and len(buf) - start <= self.max_value:
                    start = self.grow(start, where, what)  # the number may go on
                    continue
                raise self.refusal(found, start, where, exc) from None
            else:
                if end < len(buf) or self.eof:  # a number may go on past the window
                    self.check_size(start, end, where, what)
                    if nests_deeper(buf, start, end, MAX_DEPTH - self.depth):
                        found = locate(buf, start, list(where), self.depth, self.eof)
                        raise self.refusal(found, start, where, None)
                    self.pos = end
                    return obj
                start = self.grow(start, where, what)
                continue
            if nests_deeper(buf, start, at, MAX_DEPTH - self.depth):  # too deep comes first
                found = locate(buf, start, list(where), self.depth, self.eof)
                if found is not None:
                    raise self.refusal(found, start, where, None)
            truncated = message.startswith("Unterminated string") or at >= len(buf) - _MARGIN
            if self.eof or not truncated:
                raise self.syntax(message, at)
            start = self.grow(start, where, what)

    def grow(self, start: int, where: Steps, what: str) -> int:
        """Read more of a value starting at ``start``; return its new start.

        The window at least doubles, so each byte is scanned a bounded number of times."""
        if len(self.buf) - start > self.max_value:
            raise self.too_large(start, where, what)
        self.pos = start
        self.fill(len(self.buf) - start)
        return self.pos

    def check_size(self, start: int, end: int, where: Steps, what: str) -> None:
        chars = end - start
        if chars * 4 <= self.max_value:
            return
        if chars > self.max_value or _utf8_length(self.buf[start:end]) > self.max_value:
            raise self.too_large(start, where, what)

    def too_large(self, start: int, where: Steps, what: str) -> JsonSyntaxError:
        limit = f"{self.max_value:,}"
        message = f"{what} larger than {limit} bytes (the limit: --max-value-bytes)"
        return self.error(path_of(where, MAP_SECTIONS), message, start)

    def refusal(
        self, found: Found | None, start: int, where: Steps, exc: BaseException | None
    ) -> JsonSyntaxError:
        """The error of a refusal ``found`` in the value at ``start``.

        ``exc`` is what the scanner raised. It is named when the refusal cannot be located."""
        if found is None:
            return self.error(path_of(where, MAP_SECTIONS), f"invalid JSON: {exc}", start)
        line, column = self.line_column(found.at)
        return JsonSyntaxError(
            problem(found.path(), found.detail, line, column, self.base_chars + found.at)
        )

    # -- containers ----------------------------------------------------------------------

    def open(self, char: str) -> None:
        """Consume ``char``, ``[`` or ``{``, and count the depth."""
        if self.peek() != char:
            raise AssertionError(f"expected {char!r}")
        self.pos += 1
        self.depth += 1

    def after_item(self, open_: str) -> bool:
        """After an item of a container, consume ``,`` or the closing bracket.

        ``True`` when another item follows, ``False`` after the bracket."""
        char = self.peek()
        if char == _CLOSE[open_]:
            self.pos += 1
            self.depth -= 1
            return False
        if char != ",":
            raise self.syntax("Expecting ',' delimiter", self.pos)
        comma = self.pos
        self.pos += 1
        message, at_comma = TRAILING_COMMA[open_]
        if at_comma and self.peek() == _CLOSE[open_]:
            raise self.syntax(message, comma)
        return True

    def members(self, where: Steps) -> Iterator[str]:
        """Open an object and yield each key, with the stream at its value.

        The caller consumes the value before asking for the next key. It ends after ``}``."""
        self.open("{")
        if self.peek() == "}":
            self.pos += 1
            self.depth -= 1
            return
        while True:
            if self.peek() != '"':
                raise self.syntax("Expecting property name enclosed in double quotes", self.pos)
            self.key_at = self.base_chars + self.pos
            key = self.value(where, "key")
            if self.peek() != ":":
                raise self.syntax("Expecting ':' delimiter", self.pos)
            self.pos += 1
            self.peek()
            yield key
            if not self.after_item("{"):
                return

    def elements(self, where: Steps) -> Iterator[Any]:
        """Open an array and yield each element's value. It ends after ``]``."""
        self.open("[")
        if self.peek() == "]":
            self.pos += 1
            self.depth -= 1
            return
        index = 0
        scan = self.scan
        small = self.max_value // 4
        budget = MAX_DEPTH - self.depth
        stop = "]}" + _BLANK
        while True:
            # Fast path: small elements followed directly by "," and a non-blank character,
            # within the window, need none of the checks of ``value``.
            buf, pos = self.buf, self.pos
            limit = len(buf) - 1
            while True:
                try:
                    obj, end = scan(buf, pos)
                except (StopIteration, ValueError, RecursionError):
                    break
                if end >= limit or end - pos > small or buf[end] != "," or buf[end + 1] in stop:
                    break
                if end - pos > budget and may_nest_deeper(buf, pos, end, budget):
                    break
                self.pos = pos = end + 1
                yield obj
                index += 1
            yield self.value((*where, index))
            index += 1
            if not self.after_item("["):
                return

    def skip(self, where: Steps) -> None:
        """Consume one value of any size, keeping none of it; each piece is still checked."""
        char = self.peek()
        if char == "[":
            for _ in self.elements(where):
                pass
        elif char == "{":
            for key in self.members(where):
                self.value((*where, key))
        else:
            self.value(where)


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
