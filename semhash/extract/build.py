"""Joining pages (or slides, or parts) into one document's text, with their boundaries and the size cap."""

from __future__ import annotations

import semhash.extract as package
from semhash.extract import Extraction, Record


class PagedText:
    """Pieces of one document joined by blank lines; a numbered piece (a page, a slide) records where it starts.

    Stops taking text at ``limit`` characters (:data:`~semhash.extract.MAX_EXTRACTED_CHARS`): :meth:`add`
    then returns ``False`` and the extraction is marked truncated, so a caller can stop reading the file.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit if limit is not None else package.MAX_EXTRACTED_CHARS
        self.parts: list[str] = []
        self.size = 0
        self.locations: list[tuple[int, int]] = []
        self.truncated = False

    def add(self, text: str, where: int | None = None) -> bool:
        """Append a piece (blank ones are dropped); ``False`` once the cap is reached."""
        text = text.strip()
        if not text:
            return not self.truncated
        if self.truncated:
            return False
        if self.parts:
            self.parts.append("\n\n")
            self.size += 2
        room = self.limit - self.size
        if len(text) > room:
            text = text[: max(room, 0)]
            self.truncated = True
        if where is not None and text:
            self.locations.append((self.size, where))
        self.parts.append(text)
        self.size += len(text)
        return not self.truncated

    def extraction(self, numbered: bool = True) -> Extraction:
        """One record (number 0) of all the text; ``locations`` when pieces were numbered."""
        text = "".join(self.parts)
        locations = tuple(self.locations) if numbered and self.locations else None
        return Extraction([Record(0, text, locations)], truncated=self.truncated)
