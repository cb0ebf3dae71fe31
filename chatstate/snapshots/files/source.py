"""``open_source``: the snapshot file a restore reads, or its standard input.

Both passes of :class:`~chatstate.snapshots.files.reader.SnapshotFile` seek in what they
read. So standard input is copied to a temporary file. :class:`Spool` copies it lazily, only
as far as the reader has asked. So a file refused early, by ``--max-problems``, is refused
early through a pipe too. The rest of it is not read."""

from __future__ import annotations

import io
import sys
import tempfile
from typing import IO, Any, BinaryIO, cast

_CHUNK = 1 << 20


def open_source(path: str, stdin: IO[Any] | None = None) -> BinaryIO:
    """A seekable binary file for ``path``; ``OSError`` when it cannot be opened.

    ``"-"`` gives a :class:`Spool` of ``stdin``. That defaults to the process's standard
    input. A text stream is encoded as UTF-8."""
    if path != "-":
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    source: IO[Any] = stdin if stdin is not None else sys.stdin
    return cast(BinaryIO, io.BufferedReader(Spool(getattr(source, "buffer", source))))


class Spool(io.RawIOBase):
    """A seekable copy of the stream ``source``, made as far as it is read.

    Reading at or past what was copied first copies more into a temporary file. It copies at
    least a mebibyte at a time. Seeking to the end copies the rest."""

    def __init__(self, source: IO[Any]) -> None:
        super().__init__()
        self.source = source
        self.copy = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.copied = 0
        self.done = False
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self._copy_until(None)
            offset += self.copied
        elif whence == io.SEEK_CUR:
            offset += self.position
        self.position = max(offset, 0)
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        self._copy_until(self.position + wanted)
        self.copy.seek(self.position)
        got = self.copy.readinto(buffer)
        self.position += got
        return got

    def _copy_until(self, end: int | None) -> None:
        """Copy from the source until ``end`` bytes are copied; ``None`` copies all of it."""
        while not self.done and (end is None or self.copied < end):
            chunk = self.source.read(max(_CHUNK, 0 if end is None else end - self.copied))
            if not chunk:
                self.done = True
                break
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8", "surrogatepass")
            self.copy.seek(self.copied)
            self.copy.write(chunk)
            self.copied += len(chunk)

    def close(self) -> None:
        if not self.closed:
            self.copy.close()
        super().close()
