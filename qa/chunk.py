"""Chunk stage: cut a document's kept paragraphs into passages on sentence boundaries."""

from __future__ import annotations

from .textutil import sentence_spans
from .types import Block, Chunk, Document, page_of


def chunk_document(doc: Document, max_chars: int = 1200, min_chars: int = 0, joined_max: int = 0) -> list[Chunk]:
    """Passages of one document: a paragraph each, split into runs of whole sentences if too long.

    Args:
        doc: the document, with its kept paragraphs (`blocks`).
        max_chars: longest passage wanted; a single longer sentence is cut at a word boundary,
            the only case where a passage may end mid-sentence (it would otherwise be unbounded).
        min_chars, joined_max: short paragraphs are joined with a neighbour (see _merge_short).

    Returns:
        Chunks in document order, each a verbatim span `doc.text[start:end]`.
    """
    chunks: list[Chunk] = []
    for block in _merge_short(doc, min_chars, joined_max):
        sents = []
        for s, e in sentence_spans(doc.block_text(block), block.start):
            sents.extend(_cut_long(doc.text, s, e, max_chars))
        group: list[tuple[int, int]] = []
        for s, e in sents:
            if group and e - group[0][0] > max_chars:
                chunks.append(_make(doc, group))
                group = []
            group.append((s, e))
        if group:
            chunks.append(_make(doc, group))
    return chunks


def _merge_short(doc: Document, min_chars: int, joined_max: int) -> list[Block]:
    """Join adjacent paragraphs when either is shorter than `min_chars` and the two fit in `joined_max`.

    News paragraphs are often one sentence, and the occasion ("Speaking to NBC News, ...") sits in
    one while the quote follows in the next; a passage of a few sentences keeps them together.
    Only paragraphs adjacent in the file are joined (nothing removed between them), so the passage
    stays one verbatim span, and only on one page, so that its citation names the page it is on.
    """
    merged: list[Block] = []
    for block in doc.blocks:
        if merged:
            last = merged[-1]
            gap = doc.text[last.end:block.start]
            short = min(last.end - last.start, block.end - block.start) < min_chars
            same_page = page_of(doc.pages, last.start) == page_of(doc.pages, block.start)
            if short and block.end - last.start <= joined_max and not gap.strip() and same_page:
                merged[-1] = Block(last.start, block.end)
                continue
        merged.append(block)
    return merged


def _make(doc: Document, sents: list[tuple[int, int]]) -> Chunk:
    start, end = sents[0][0], sents[-1][1]
    return Chunk(doc.doc_id, start, end, doc.text[start:end], tuple(sents))


def _cut_long(text: str, s: int, e: int, max_chars: int) -> list[tuple[int, int]]:
    """Split an over-long sentence at whitespace so no piece exceeds max_chars."""
    pieces = []
    while e - s > max_chars:
        cut = text.rfind(" ", s + max_chars // 2, s + max_chars)
        if cut <= s:
            cut = s + max_chars
        pieces.append((s, cut))
        s = cut
        while s < e and text[s].isspace():
            s += 1
    if e > s:
        pieces.append((s, e))
    return pieces
