"""Fast rows for write-only sheets: cell XML rendered in bulk instead of one openpyxl cell object
per value.

openpyxl's write-only mode still builds, binds and serialises a ``Cell`` for every value (about
9 us each here): 100k VMs x 33 columns cost 40 s. Rendering the same ``<row>``/``<c>`` XML from
plain lists (inline strings, numbers, booleans) and handing openpyxl's stream one parsed chunk of
rows at a time does the job in a few seconds; openpyxl still writes everything around the rows
(views, widths, filters, conditional formats, the zip). Hyperlinks for those rows are written the
same way: one ``<hyperlinks>`` element and one block of relationships, not 100k objects.

This leans on two openpyxl internals (``WriteOnlyWorksheet._write_rows`` and
``WorksheetWriter.write_hyperlinks``/``_rels``), pinned by the ``openpyxl<3.2`` requirement and
checked by tests that read every sheet back with openpyxl and convert the book in LibreOffice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from types import MethodType
from typing import Any

from lxml import etree
from openpyxl.packaging.relationship import RelationshipList

REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
HYPERLINK = f"{REL_NS}/hyperlink"
CHUNK_ROWS = 2000
_TEXT_ESCAPE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
# Characters XML 1.0 cannot carry at all: dropped, as Excel would never show them anyway.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Over a column's strings joined by newlines: anything to escape or drop, or a value that starts
# or ends with white space (needs xml:space="preserve"); a false alarm only costs the slow path.
_ESCAPES = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EDGE_SPACE = re.compile(r"\s\n|\n\s")
# The same two tests for ASCII text: the characters _ESCAPES finds, and every ASCII white space
# (str.isspace: space, \t, \n, \r and the controls already above) beside a newline.
_ASCII_ESCAPES = tuple("&<>" + "".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r"))
_ASCII_EDGES = (" \n", "\n ", "\t\n", "\n\t", "\r\n", "\n\r", "\n\n")
EMPTY = "<c/>"


class RenderedRows(list):
    """Parsed ``<row>`` elements, appended to a sheet in one ``ws.append`` call."""


class _BulkRelationships(RelationshipList):
    """The sheet's relationships: openpyxl's own (drawings, tables) plus a pre-rendered block of
    hyperlink relationships, serialised in one parse."""

    def __init__(self, existing: RelationshipList, rendered: str, count: int) -> None:
        super().__init__(existing)
        self._rendered = rendered
        self._count = count

    def __len__(self) -> int:
        return list.__len__(self) + self._count

    def to_tree(self) -> Any:
        tree = etree.fromstring(f'<Relationships xmlns="{PKG_REL_NS}">{self._rendered}'
                                "</Relationships>")
        for rel in list.__iter__(self):
            tree.append(rel.to_tree())
        return tree


def _text(value: str) -> str:
    value = _ILLEGAL.sub("", value).translate(_TEXT_ESCAPE)
    if value[:1].isspace() or value[-1:].isspace():
        return f'<t xml:space="preserve">{value}</t>'
    return f"<t>{value}</t>"


def _plain(strings: list[str]) -> bool:
    """True when no string needs escaping or xml:space. An ASCII column (the usual one) is
    scanned with ``in`` for each character and pair that would need it (C substring searches,
    several times faster than the regexes); any other column with the two regexes."""
    if not strings:
        return True
    joined = "\n".join(strings)
    if joined[0].isspace() or joined[-1].isspace():
        return False
    if joined.isascii():
        return (not any(c in joined for c in _ASCII_ESCAPES)
                and not any(p in joined for p in _ASCII_EDGES))
    return _ESCAPES.search(joined) is None and _EDGE_SPACE.search(joined) is None


def save(book: Any, path: Any) -> None:
    """``book.save(path)`` (openpyxl's ``save_workbook``), deflating at level 1 instead of 6:
    a 100k-VM book's sheets are about 100 MB of XML, and level 6 spent about a second more on
    them for a file some 20 % smaller."""
    import datetime
    import zipfile

    from openpyxl.writer.excel import ExcelWriter

    if book.write_only and not book.worksheets:
        book.create_sheet()
    archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True,
                              compresslevel=1)
    book.properties.modified = datetime.datetime.now(
        tz=datetime.UTC).replace(tzinfo=None)
    ExcelWriter(book, archive).save()  # closes the archive


def column_cells(values: Sequence[Any], style_id: int = 0) -> list[str]:
    """The ``<c>`` element of each value, without a cell reference (cells follow one another,
    empty ones as ``<c/>``, so positions need no ``r``; it also makes equal values render
    alike). Strings are inline strings (as openpyxl writes them), booleans ``t="b"``, numbers
    plain; NaN and "" are empty cells."""
    style = f' s="{style_id}"' if style_id else ""
    head, tail = f'<c{style} t="inlineStr"><is><t>', "</t></is></c>"
    strings = [v for v in values if type(v) is str and v]
    if len(strings) == len(values) and _plain(strings):  # the usual text column
        return [head + v + tail for v in values]
    plain = _plain(strings)
    out: list[str] = []
    append = out.append
    for value in values:
        kind = type(value)
        if value is None or value == "":
            append(EMPTY)
        elif kind is str:
            append(head + value + tail if plain else f"<c{style} t=\"inlineStr\"><is>"
                   f"{_text(value)}</is></c>")
        elif kind is bool:
            append(f'<c{style} t="b"><v>{int(value)}</v></c>')
        elif kind is float and not math.isfinite(value):
            append(EMPTY)
        else:
            append(f"<c{style}><v>{value}</v></c>")
    return out


def render_rows(columns: Sequence[Sequence[Any]], first_row: int,
                styles: Sequence[int] | None = None) -> Iterator[RenderedRows]:
    """Chunks of parsed ``<row>`` elements from per-column values, rendered one chunk at a
    time so only one chunk's XML is ever in memory."""
    rows = len(columns[0]) if columns else 0
    styles = styles or [0] * len(columns)
    for start in range(0, rows, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, rows)
        cells = [column_cells(values[start:stop], style)
                 for values, style in zip(columns, styles, strict=True)]
        parts = ["<x>"]
        parts.extend(f'<row r="{n}">{"".join(row)}</row>'
                     for n, row in enumerate(zip(*cells, strict=True), first_row + start))
        parts.append("</x>")
        yield RenderedRows(etree.fromstring("".join(parts)))


def enable(ws: Any) -> None:
    """Let ``ws`` (a write-only sheet, before its first row) take ``RenderedRows`` chunks and
    bulk hyperlinks (``add_links``) besides ordinary rows."""
    ws._bulk_links = []

    def write_rows(self: Any):  # openpyxl's WriteOnlyWorksheet._write_rows, plus chunks
        self._writer.write_hyperlinks = MethodType(_write_hyperlinks, self._writer)
        xf = self._writer.xf.send(True)
        with xf.element("sheetData"):
            row_idx = 1
            try:
                while True:
                    row = (yield)
                    if isinstance(row, RenderedRows):
                        for element in row:
                            xf.write(element)
                        row_idx += len(row)
                    else:
                        self._writer.write_row(xf, self._values_to_row(row, row_idx), row_idx)
                        row_idx += 1
            except GeneratorExit:
                pass
        self._writer.xf.send(None)

    ws._write_rows = MethodType(write_rows, ws)


def add_links(ws: Any, refs: Sequence[str], urls: Sequence[str]) -> None:
    """External hyperlinks for cells ``refs`` (e.g. ``B2``) of a sheet made by ``enable``."""
    ws._bulk_links.extend(zip(refs, urls, strict=True))


def _write_hyperlinks(writer: Any) -> None:
    """openpyxl's ``WorksheetWriter.write_hyperlinks`` for bulk links: one parsed element for
    the sheet and one rendered block of relationships."""
    links = writer.ws._bulk_links
    if not links:
        type(writer).write_hyperlinks(writer)
        return
    if writer.ws._hyperlinks:
        raise ValueError(f"sheet {writer.ws.title}: mix of cell and bulk hyperlinks")
    first = len(writer._rels) + 1
    refs = "".join(f'<hyperlink ref="{ref}" r:id="rId{n}"/>'
                   for n, (ref, _) in enumerate(links, first))
    writer.xf.send(etree.fromstring(f'<hyperlinks xmlns:r="{REL_NS}">{refs}</hyperlinks>'))
    rels = "".join(f'<Relationship Id="rId{n}" Type="{HYPERLINK}" '
                   f'Target="{url.translate(_ATTR_ESCAPE)}" TargetMode="External"/>'
                   for n, (_, url) in enumerate(links, first))
    writer._rels = _BulkRelationships(writer._rels, rels, len(links))
