"""``JsonStream``: one JSON document read piece by piece from a seekable binary file.

The stdlib's C scanner decodes each piece (a value, a key), so every piece is read exactly
as ``json.loads`` would read it; this module only walks the containers around the pieces
and keeps a bounded window of the file in memory. Errors carry the message and the line,
column and character position ``json.loads`` reports for the whole text.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, BinaryIO

from chatstate.snapshot import _no_constant, _unique_pairs

_WS = re.compile(r"[ \t\n\r]*")
_BLANK = " \t\n\r"
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]
# For text already checked with the hooks above: the same values, without their cost.
_TRUSTED_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
# A scanner error this close to the end of the window may be the window's end, not the text's.
_MARGIN = 64


class JsonSyntaxError(ValueError):
    """Invalid JSON (or not UTF-8); ``str()`` is what ``json.loads`` says of the whole text."""


def repeated_key(key: str) -> ValueError:
    """The error ``Snapshot.from_json`` raises for a key repeated in one object."""
    try:
        _unique_pairs([(key, None), (key, None)])
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


class JsonStream:
    """A cursor over the JSON text of ``raw`` (UTF-8, an optional BOM) from byte ``offset``.

    Positions in errors count characters from ``offset`` (so from the start of the text when
    ``offset`` is 0). Several streams may share one file: each seeks before it reads.
    """

    def __init__(
        self, raw: BinaryIO, offset: int = 0, chunk_size: int = 1 << 20, trusted: bool = False
    ) -> None:
        self.raw = raw
        # ``trusted``: the text was read before (no repeated key, no NaN): skip those checks.
        self.scan = _TRUSTED_SCAN if trusted else _SCAN
        self.chunk_size = max(16, chunk_size)
        self.file_pos = offset
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.at_start = offset == 0
        self.base_chars = 0  # characters dropped before buf[0]
        self.base_bytes = offset  # file offset of buf[0]
        self.lines_before = 0  # newlines dropped
        self.last_newline = -1  # position of the last dropped newline

    # -- the window ----------------------------------------------------------------------

    def fill(self) -> None:
        """Drop what was consumed and read the next chunk (``eof`` once the file ends)."""
        drop = self.buf[: self.pos]
        if drop:
            self.base_bytes += len(drop.encode("utf-8", "surrogatepass"))
            newlines = drop.count("\n")
            if newlines:
                self.lines_before += newlines
                self.last_newline = self.base_chars + drop.rfind("\n")
            self.base_chars += len(drop)
        self.raw.seek(self.file_pos)
        data = self.raw.read(self.chunk_size)
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = self.file_pos + exc.start
            raise JsonSyntaxError(
                f"'utf-8' codec can't decode byte 0x{exc.object[exc.start]:02x} in position "
                f"{at}: {exc.reason}"
            ) from None
        self.file_pos += len(data)
        if self.at_start and text:
            self.at_start = False
            if text.startswith("\ufeff"):  # json.loads(bytes) reads UTF-8 with a BOM too
                text = text[1:]
                self.base_bytes += 3
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        if not data:
            self.eof = True

    def tell(self) -> int:
        """The file offset of the current position (for a later ``JsonStream(raw, offset)``)."""
        return self.base_bytes + len(self.buf[: self.pos].encode("utf-8", "surrogatepass"))

    def error(self, message: str, at: int) -> JsonSyntaxError:
        """``message`` at window position ``at``, worded as ``json.JSONDecodeError``."""
        char = self.base_chars + at
        line = self.lines_before + self.buf.count("\n", 0, at) + 1
        newline = self.buf.rfind("\n", 0, at)
        column = char - (self.base_chars + newline if newline >= 0 else self.last_newline)
        return JsonSyntaxError(f"{message}: line {line} column {column} (char {char})")

    # -- tokens --------------------------------------------------------------------------

    def peek(self) -> str:
        """Skip whitespace; the next character, ``""`` at the end of the text."""
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

    def take(self, char: str, message: str) -> None:
        """Consume ``char`` (after whitespace), else raise ``message`` at that position."""
        if self.peek() != char:
            raise self.error(message, self.pos)
        self.pos += 1

    def value(self) -> Any:
        """Decode the value at the current position, exactly as ``json.loads`` would.

        Raises ``JsonSyntaxError`` (or the ``ValueError`` of a repeated key or NaN)."""
        while True:
            buf = self.buf
            try:
                obj, end = self.scan(buf, self.pos)
            except StopIteration as exc:
                message, at = "Expecting value", int(exc.value)
            except json.JSONDecodeError as exc:
                message, at = exc.msg, exc.pos
            else:
                if end < len(buf) or self.eof:  # a number may go on past the window
                    self.pos = end
                    return obj
                self.fill()
                continue
            truncated = message.startswith("Unterminated string") or at >= len(buf) - _MARGIN
            if self.eof or not truncated:
                raise self.error(message, at)
            self.fill()

    def members(self) -> Any:
        """After ``{``: yield each key, with the stream positioned at its value; the caller
        consumes the value before asking for the next key. Ends after ``}``."""
        char = self.peek()
        if char == "}":
            self.pos += 1
            return
        while True:
            if char != '"':
                raise self.error("Expecting property name enclosed in double quotes", self.pos)
            key = self.value()
            self.take(":", "Expecting ':' delimiter")
            self.peek()
            yield key
            char = self.peek()
            if char == "}":
                self.pos += 1
                return
            if char != ",":
                raise self.error("Expecting ',' delimiter", self.pos)
            self.pos += 1
            char = self.peek()

    def elements(self) -> Any:
        """After ``[``: yield each element's value. Ends after ``]``."""
        if self.peek() == "]":
            self.pos += 1
            return
        scan = self.scan
        while True:
            # Fast path: elements followed directly by "," and a non-blank character, within
            # the window, need none of the checks below; anything else takes the slow path.
            buf, pos = self.buf, self.pos
            limit = len(buf) - 1
            while True:
                try:
                    obj, end = scan(buf, pos)
                except (StopIteration, ValueError):
                    break
                if end >= limit or buf[end] != "," or buf[end + 1] in _BLANK:
                    break
                self.pos = pos = end + 1
                yield obj
            yield self.value()
            char = self.peek()
            if char == "]":
                self.pos += 1
                return
            if char != ",":
                raise self.error("Expecting ',' delimiter", self.pos)
            self.pos += 1
            self.peek()

    def entries(self) -> Any:
        """After ``{``: yield ``(key, value)`` pairs; a repeated key raises at the ``}``, where
        ``json.loads`` (with ``Snapshot.from_json``'s hooks) would raise it."""
        seen: set[str] = set()
        repeated: str | None = None
        for key in self.members():
            value = self.value()
            if repeated is None:
                if key in seen:
                    repeated = key
                seen.add(key)
            yield key, value
        if repeated is not None:
            raise repeated_key(repeated)
