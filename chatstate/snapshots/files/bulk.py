"""``chunks``: the elements of a big JSON array, decoded many at a time.

Each element is exactly what ``json.loads`` reads. Each error is the one element-by-element
reading gives, at the same element.

An array of short ids read one element at a time costs a Python step per element. Here each
window of the file is cut after the last whole element it holds. The C scanner then decodes
the cut text in one call.

The cut is the last ``,`` between two elements of the array's shape. The decoding proves it:
text cut inside an element does not decode. Some windows are not proved. The cut may not
decode. An element may not be a string or an array of strings. It may be larger than the
stream's ``max_value``, or nest too deep. Such a window is read element by element by
:meth:`JsonStream.value <chatstate.snapshots.files.jsonstream.JsonStream.value>`, with every
check and its exact error."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

from chatstate.snapshots.checks import MAX_DEPTH
from chatstate.snapshots.files.jsonstream import JsonStream, Steps

_BLANK = " \t\n\r"
_CLOSER = {'"': '"', "[": "]"}
#: Commas tried from the window's end before giving up on a window.
_TRIES = 8


def chunks(stream: JsonStream, where: Steps) -> Iterator[list[Any]]:
    """Open the array at the stream and yield its elements in order, in lists of one or more.

    It ends after ``]``. It raises what element-by-element reading raises, at the same
    element. A bulk decoding never reports an error; it leaves that window to ``value``."""
    stream.open("[")
    if stream.peek() == "]":
        stream.pos += 1
        stream.depth -= 1
        return
    index = 0
    span = max(stream.max_value // 4, 64)  # characters: an element within is within limit
    until = -1  # character (from the text's start) before which elements go one at a time
    while True:
        opener = stream.peek()
        if stream.base_chars + stream.pos >= until and opener in _CLOSER:
            cut = _cut(stream.buf, stream.pos, min(len(stream.buf), stream.pos + span), opener)
            batch = _decode(stream, cut) if cut > stream.pos else None
            if batch is not None:
                stream.pos = cut
                index += len(batch)
                yield batch
                if not stream.after_item("["):
                    return
                continue
            until = stream.base_chars + (cut if cut > stream.pos else len(stream.buf))
        yield [stream.value((*where, index))]
        index += 1
        if not stream.after_item("["):
            return


def _cut(buf: str, pos: int, end: int, opener: str) -> int:
    """The position of a ``,`` after the last whole element of ``buf[pos:end]``; ``-1`` when none.

    The characters around it decide."""
    closer = _CLOSER[opener]
    at = end
    for _ in range(_TRIES):
        at = buf.rfind(",", pos, at)
        if at < 0:
            return -1
        before, after = at - 1, at + 1
        while before > pos and buf[before] in _BLANK:
            before -= 1
        while after < len(buf) and buf[after] in _BLANK:
            after += 1
        if before > pos and buf[before] == closer and buf[after : after + 1] == opener:
            return at
    return -1


def _decode(stream: JsonStream, cut: int) -> list[Any] | None:
    """The elements of ``stream.buf[stream.pos:cut]``, or None.

    The text must be whole elements of a shape read in bulk: strings, or arrays of strings,
    nesting within the limit. A text repeating its first element is one key over and over.
    It is recognized by comparison, and only that element is decoded: ``[element] * n``."""
    text = stream.buf[stream.pos : cut]
    comma = text.find(",")
    second = comma + 1  # where the second element starts
    while 0 < second < len(text) and text[second] in _BLANK:
        second += 1
    times, rest = divmod(len(text) + second - comma, second) if comma > 0 else (0, 1)
    if not rest and text + text[comma:second] == text[:second] * times:
        one = _scan(stream, text[:comma])
        return None if one is None or len(one) != 1 else one * times
    items = _scan(stream, text)
    if items is None:
        return None
    budget = MAX_DEPTH - stream.depth
    if text.count("[") + text.count("{") <= budget:
        return items  # cannot nest deeper than allowed
    kinds = set(map(type, items))
    if kinds == {str}:
        return items
    if kinds == {list} and set(map(type, chain.from_iterable(items))) <= {str}:
        return items if budget >= 1 else None
    return None


def _scan(stream: JsonStream, text: str) -> list[Any] | None:
    """``text`` decoded as the elements of an array, exactly as ``json.loads`` would.

    None when it is not whole elements, or holds a value the strict reader refuses."""
    whole = "[" + text + "]"
    try:
        items, end = stream.scan(whole, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    return items if end == len(whole) and items else None
