"""Property-based tests of ingest + chunking: for arbitrary text, passages are verbatim, ordered,
non-overlapping spans of their source, their offsets round-trip through the file, and no character of
the kept paragraphs is lost or repeated between passages."""

from __future__ import annotations

import hashlib
import inspect
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qa.chunk import chunk_document
from qa.ingest import clean, read_document
from qa.types import Document

PLAIN = st.sampled_from("the harbour council said on Tuesday that new ferry route would cut crossing time in half "
                        "and growers reported record apple harvest after mild summer".split())
ODD = st.sampled_from(["Mr.", "Dr.", "U.S.", "e.g.", "No.", "3.5", "1,000", "2024", "well-known", "don't", "it's",
                       "O'Neill", "St.", "a.m.", "Zürich", "naïve", "東京", "北京市", "Москва", "сказал", "مرحبا",
                       "שלום", "🙂", "🇺🇦", "e\u0301", "\u00a0", "x" * 60, "...", "…", "—", "–", "-", "/", "&", "%",
                       "#", "*", "_", "(", ")", "[1]", "http://example.com/a.b?c=d", "<b>", "[link](x)", "\x0c",
                       "\u200b", "\u2028", "\x1b[0m"])
WORDS = st.one_of(PLAIN, PLAIN, PLAIN, PLAIN, ODD, st.text(st.characters(exclude_categories=("Cs",),
                                                                          exclude_characters="\n\r"),
                                                           min_size=1, max_size=12))
QUOTE = st.sampled_from(["", '"', "'", "“", "”", "‘", "’", "«", "»"])
END = st.sampled_from([".", ".", ".", "!", "?", "…", "...", "?!", ".\"", ".”", "", ":", ";", ","])
SPACE = st.sampled_from([" ", " ", " ", "  ", "\t", " \u00a0"])


@st.composite
def sentences(draw) -> str:
    words = draw(st.lists(WORDS, min_size=1, max_size=16))
    seps = draw(st.lists(SPACE, min_size=len(words), max_size=len(words)))
    body = "".join(w + s for w, s in zip(words, seps)).strip()
    q = draw(QUOTE)
    return f"{q}{body[:1].upper()}{body[1:]}{draw(END)}{q if draw(st.booleans()) else ''}"


@st.composite
def paragraphs(draw) -> str:
    sents = draw(st.lists(sentences(), min_size=1, max_size=5))
    seps = draw(st.lists(st.sampled_from([" ", "  ", "\n", " "]), min_size=len(sents), max_size=len(sents)))
    return "".join(s + sep for s, sep in zip(sents, seps)).rstrip(" ")


@st.composite
def pages(draw) -> str:
    parts = draw(st.lists(st.one_of(paragraphs(), paragraphs(), st.sampled_from(
        ["", " ", "Menu", "By Jane Doe", "Share", "# A Heading", "- item", "\ufeff", "\u200b", "12 Comments"])),
        min_size=1, max_size=6))
    seps = draw(st.lists(st.sampled_from(["\n", "\n\n", "\n \n", "\n\n\n", "\n\t\n"]),
                         min_size=len(parts), max_size=len(parts)))
    text = "".join(p + s for p, s in zip(parts, seps))
    return text[:1500]


def _document(text: str) -> Document:
    cleaned = clean(text)
    return Document("page.txt", "page.txt", text, cleaned.blocks, cleaned.title or "page")


def _visible(s: str) -> str:
    return "".join(s.split())


def _chunks(doc: Document, max_chars: int, min_chars: int):
    if "min_chars" in inspect.signature(chunk_document).parameters:
        return chunk_document(doc, max_chars, min_chars=min_chars)
    return chunk_document(doc, max_chars)


def _check(doc: Document, max_chars: int, min_chars: int = 0) -> None:
    chunks = _chunks(doc, max_chars, min_chars)
    text = doc.text
    previous_end = 0
    for c in chunks:
        assert text[c.start:c.end] == c.text  # verbatim span
        assert 0 <= previous_end <= c.start < c.end <= len(text)  # in order, no overlap, not empty
        assert c.text.strip() and not c.text[0].isspace()
        assert len(c.text) <= max_chars  # an over-long sentence is cut at a word boundary
        assert c.sentences and c.sentences[0][0] == c.start and c.sentences[-1][1] == c.end
        s_prev = c.start
        for s, e in c.sentences:
            assert s_prev <= s < e <= c.end
            s_prev = e
        previous_end = c.end
    # Nothing lost or repeated: the visible characters of the kept paragraphs are exactly those of the
    # passages, in order (only whitespace between passages or sentences may be dropped; a passage may
    # join adjacent paragraphs, never take text from outside them).
    assert _visible("".join(c.text for c in chunks)) == _visible("".join(doc.block_text(b) for b in doc.blocks))
    kept = [(b.start, b.end) for b in doc.blocks]
    for c in chunks:
        covered = [(max(s, c.start), min(e, c.end)) for s, e in kept if s < c.end and c.start < e]
        assert sum(len(_visible(text[s:e])) for s, e in covered) == len(_visible(c.text))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages(), st.integers(min_value=40, max_value=1200), st.sampled_from([0, 0, 100, 400, 2000]))
@example("Mr. Smith went to Washington. He said “it’s fine.” Then he left!\n\nA second paragraph, which "
         "goes on and on without a full stop for quite a while because it is long enough to be prose anyway", 60, 0)
@example("Sentence one. " * 40, 100, 400)
def test_passages_are_verbatim_ordered_and_lose_nothing(text: str, max_chars: int, min_chars: int):
    _check(_document(text), max_chars, min_chars)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=600), st.integers(min_value=20, max_value=400),
       st.sampled_from([0, 400]))
def test_arbitrary_unicode_text(text: str, max_chars: int, min_chars: int):
    _check(_document(text), max_chars, min_chars)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages(), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
@example("The 北京市.\n", "\n", False)  # mostly Han letters: refused as not English, which is right
def test_offsets_round_trip_through_the_file(text: str, newline: str, bom: bool):
    """Citations index the file as Path.read_text returns it, whatever its newlines or BOM."""
    raw = ("\ufeff" if bom else "") + text.replace("\n", newline)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "page.txt"
        path.write_bytes(raw.encode("utf-8"))
        try:
            doc = read_document(path, Path(d))
        except Exception as exc:  # only "no article text" (or a page in another script) may refuse it
            refusals = ("no article text found", "empty", "not a text file (binary content)")
            assert exc.reason in refusals or exc.reason.startswith("not English"), exc
            return
        assert doc.content_hash == hashlib.sha256(raw.encode("utf-8")).hexdigest()
        on_disk = path.read_text(encoding="utf-8")
        assert doc.text == on_disk
        for c in _chunks(doc, 300, 100):
            assert on_disk[c.start:c.end] == c.text


def test_sentence_spans_keep_what_the_segmenter_drops():
    from qa.textutil import sentence_spans

    text = "The. The the the the the the Mr.?!\n"  # pysbd ends the sentence at "Mr." and loses "?!"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["The.", "The the the the the the Mr.?!"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(pages(), paragraphs(), st.text(st.characters(exclude_categories=("Cs",)), max_size=300)))
@example("Yes. Yes. Yes. No! No.\u00a0No.")  # repeated sentences: each found after the one before
@example("The. The the the the the the Mr.?!\n")  # a sentence pysbd alters
def test_sentences_are_found_where_pysbd_finds_them(text: str):
    """qa.textutil._segments locates pysbd's sentences with str.find instead of pysbd's regex per
    sentence: the same sentences at the same places, for any text."""
    from qa.textutil import _segmenter, _segments

    theirs = [(s.sent, s.start, s.end) for s in _segmenter().segment(text)] if text else []
    assert _segments(text) == theirs
