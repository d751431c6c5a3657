"""Ingest stage: read a folder of scraped news pages into Documents that keep only the article text.

Scraped pages carry site chrome (nav, widgets, share buttons), repeated copies of the article and
trailing lists of unrelated headlines. `clean` removes them with generic, feature-based rules
(word counts, sentence punctuation, letter ratio, lexical cohesion with the body), never with
strings of particular sites. Kept paragraphs are verbatim spans of the text, so citations round-trip.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import formats
from .folder import (  # noqa: F401  (the folder listing and its names, long found here)
    _HTML_SUFFIXES, _PLAIN_SUFFIXES, DEFAULT_LANGUAGES, DEFAULT_MAX_BYTES, SUPPORTED_SUFFIXES, Folder,
    UnreadableDocumentError, _doc_id, read_folder,
)
from .textutil import is_stopword
from .metadata import iso_date
from .types import Block, Document, Publication, Skipped  # noqa: F401  (Skipped: as for .folder)

log = logging.getLogger("qa")

@dataclass(frozen=True)
class Cleaned:
    """Result of `clean`: kept paragraphs (offsets into the cleaned text) and page metadata."""

    blocks: tuple[Block, ...]
    title: str | None
    byline: str | None
    outlet: str | None


# ---------------------------------------------------------------------------------------------
# Paragraph features
# ---------------------------------------------------------------------------------------------

# Zero-width characters and the BOM are not whitespace to str.isspace but must not start a block.
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"
_CLOSERS = "\"'”’»)]*_ "
_SENTENCE_END = (".", "!", "?", "…")
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'"})
# One signal among several (never the only rule): very common words of web-page furniture.
_UI_WORDS = frozenset(
    "share shares comment comments reply replies subscribe subscribed unsubscribe login logout "
    "signin signup menu advertisement advertisements advert ads sponsored related newsletter "
    "newsletters cookie cookies favorites favourites bookmark bookmarks print email skip "
    "navigation toggle search home loading wait trending popular recommended read more next "
    "previous prev tags version mobile cancel copyright rights reserved register account "
    "download click follow"
    .split()
)
_CTA = re.compile(
    r"\b(subscribe|newsletters?|sign(?:ing)? (?:up|in)|log ?in|cookies?|notifications?|"
    r"download (?:our|the) app|whitelist|ad ?blocker)\b"
)
_READER = re.compile(r"\b(you|your|our|us)\b")
_LETTERS = re.compile(r"[^\W\d_]+")
_NON_LETTERS = re.compile(r"[\W\d_]+")
_WORD = re.compile(r"[^\s]*[^\W\d_][^\s]*")
_GLUED = re.compile(r"(?<![\w])[a-z]+_[a-z]+|(?<![A-Za-z])[a-z]{2,}[A-Z][a-z]")
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_TIMESTAMP = re.compile(
    r"\b\d+\s*(?:s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?|months?|years?)"
    r"\s+ago\b|\b\d{1,2}:\d{2}\b|^(?:last )?(?:updated|published|posted|modified)\b|\b\d{4}-\d{2}-\d{2}\b"
    rf"|\b{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}\b|\b\d{{1,2}}\s+{_MONTH},?\s+\d{{4}}\b"
)
_NAV_SEPARATORS = frozenset(">›»|•·/→")
_MD_HEADING = re.compile(r"#{1,6}\s+(\S.*?)\s*#*$")
_BYLINE = re.compile(r"(?:(?:written|reported|posted)\s+)?by[\s:]+(.+)", re.IGNORECASE)
_NAME_CONNECTORS = frozenset("and & de da di del van von der den la le al bin ibn y e".split())
_TITLE_SMALL_WORDS = _NAME_CONNECTORS | frozenset(
    "a an the of in on at to for or but nor with by from as into onto over via vs per".split()
)
_LIST_MARKER = re.compile(r"[-*•+]\s|\d+[.)]\s")
_ABBREVIATION = re.compile(r"(?:\b[A-Z]|Mr|Mrs|Ms|Dr|St|Gen|Sen|Rep|Gov|Lt|Col|Jr|Sr|No|vs|etc)\.$")

# Tail trimming: a short line sharing fewer than 2 content stems, or under this fraction of them,
# with the title and the body above it is off-topic. On the seeds, trailing headlines share none
# and the closing paragraphs share 3-10 stems (fraction 0.17-0.70).
_COHESION_MIN = 0.12
_SHORT_WORDS = 30  # longer paragraphs are article prose, never a trailing headline
_MIN_REFERENCE = 15  # too little body to judge cohesion: keep everything
# English function words (the NLTK list, as shipped by bm25s, inlined to keep imports light) plus
# words any two news texts share (calendar, reporting verbs, quantities): no sign of a common topic.
_STOPWORDS = frozenset(
    "about above after again against all and any are aren because been before being below between "
    "both but can couldn did didn does doesn doing don down during each few for from further had "
    "hadn has hasn have haven having her here hers herself him himself his how into isn its itself "
    "just mightn more most mustn myself needn nor not now off once only other our ours ourselves "
    "out over own same shan she should shouldn some such than that the their theirs them "
    "themselves then there these they this those through too under until very was wasn were "
    "weren what when where which while who whom why will with won wouldn you your yours yourself "
    "yourselves "
    "said says say told also would could year years time times day days week weeks month months "
    "today yesterday tomorrow people new first last best one two three many much well way back still "
    "even make made take get like just now may might must can will per cent percent according "
    "including every everyone everything something anything nothing someone anyone never ever "
    "another several whole less more most monday tuesday wednesday thursday friday saturday "
    "sunday".split()
)


def _collapse(s: str) -> str:
    return " ".join(s.split())


def _words(t: str) -> list[str]:
    """Whitespace tokens that contain at least one letter."""
    return _WORD.findall(t)


def _bare(word: str) -> str:
    return word.strip("\"'“”‘’«»()[]{}.,;:!?…*_#").lower()


def _alpha_ratio(t: str) -> float:
    visible = len(t) - sum(map(str.isspace, t))
    return len(_NON_LETTERS.sub("", t)) / visible if visible else 0.0


def _ends_sentence(t: str) -> bool:
    return t.rstrip(_CLOSERS).endswith(_SENTENCE_END)


def _ui_ratio(words: list[str]) -> float:
    return sum(_bare(w) in _UI_WORDS for w in words) / len(words) if words else 0.0


def _capitalised_ratio(words: list[str], ignore: frozenset[str] = _NAME_CONNECTORS) -> float:
    lead = [w.lstrip("\"'“‘«(") for w in words if _bare(w) not in ignore]
    return sum(w[:1].isupper() or w[:1].isdigit() for w in lead) / len(lead) if lead else 0.0


def _title_case_ratio(words: list[str]) -> float:
    """Share of capitalised words, ignoring the small words title case leaves lowercase."""
    return _capitalised_ratio(words, _TITLE_SMALL_WORDS)


def _is_nav(t: str) -> bool:
    """Breadcrumbs and link rows: several standalone separators ("Home > World > Europe")."""
    return sum(tok in _NAV_SEPARATORS for tok in t.split()) >= 2


def _is_cta(t: str) -> bool:
    """Calls to action addressed to the reader (newsletter, cookies, sign-in), outside quotes."""
    low = t.lower()
    quoted = any(q in t for q in "\"“”«»")
    return not quoted and len(t.split()) <= 30 and bool(_CTA.search(low) and _READER.search(low))


def _is_furniture(t: str) -> bool:
    """Strong signs of page furniture, whatever the punctuation: widgets, nav, timestamps."""
    words = _words(t)
    n = len(words)
    if n > 25 and _ends_sentence(t) and not _is_cta(t):
        return False  # long running prose (even full of figures or "a / b") is never a widget
    if n == 0 or _alpha_ratio(t) < 0.5 or _is_nav(t) or _is_cta(t) or ("©" in t and n <= 20):
        return True
    if n <= 12 and (_GLUED.search(t) or (_TIMESTAMP.search(t.lower()) and not _ends_sentence(t))):
        return True
    if n <= 3 and t.rstrip().endswith(("...", "…")):  # "Loading...", "Please wait…"
        return True
    return n <= 6 and _ui_ratio(words) >= (0.3 if not _ends_sentence(t) else 0.5)


def _is_headline_question(t: str, words: list[str]) -> bool:
    return t.rstrip(_CLOSERS).endswith("?") and len(words) <= 15 and _title_case_ratio(words) >= 0.8


def _is_prose(t: str) -> bool:
    """A paragraph of article text: a sentence (or long text), not a heading, widget or label."""
    if _MD_HEADING.match(t) or _is_furniture(t):
        return False
    words = _words(t)
    if not _ends_sentence(t):
        return len(words) >= 20  # long text that merely lost its final full stop
    return len(words) >= 2 and not _is_headline_question(t, words)


def _byline(t: str) -> str | None:
    """The name in a short "By Jane Doe" line, else None."""
    m = _BYLINE.fullmatch(t.strip())
    if not m:
        return None
    name = re.split(r"\s+[|•·—–-]\s+|\s*[|•·]\s*", m.group(1))[0].strip(" .,;:")
    words = name.split()
    if not words or len(words) > 7 or not name[0].isupper() or name.endswith(("?", "!")):
        return None
    return name if _capitalised_ratio(words) >= 0.6 else None


def _headline_like(t: str) -> bool:
    words = _words(t)
    if not 4 <= len(words) <= 25 or _is_furniture(t) or _byline(t) is not None:
        return False
    return not _ends_sentence(t) or _is_headline_question(t, words)


def _outlet_like(t: str) -> bool:
    words = _words(t)
    return (
        1 <= len(words) <= 4
        and len(t) <= 40
        and not t.rstrip(_CLOSERS).endswith(_SENTENCE_END + (":",))
        and _title_case_ratio(words) == 1.0
        and _byline(t) is None
    )


def _stems(t: str) -> set[str]:
    """Crude stems (first 5 letters) of content words, so Russia/Russian or talk/talks match."""
    words = (w for w in _LETTERS.findall(t.lower()) if len(w) >= 3 and w not in _STOPWORDS)
    return {(w[:-1] if w.endswith("s") and len(w) > 3 else w)[:5] for w in words}


# ---------------------------------------------------------------------------------------------
# clean()
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Para:
    start: int
    end: int
    text: str  # whitespace-collapsed text[start:end]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and (text[start].isspace() or text[start] in _INVISIBLE):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _INVISIBLE):
        end -= 1
    return start, end


def _groups(text: str) -> list[list[tuple[int, int]]]:
    """Stripped spans of non-blank lines, grouped by blank-line separation."""
    groups: list[list[tuple[int, int]]] = [[]]
    pos = 0
    for line in text.split("\n"):
        s, e = _strip_span(text, pos, pos + len(line))
        if s < e:
            groups[-1].append((s, e))
        elif groups[-1]:
            groups.append([])
        pos += len(line) + 1
    return [g for g in groups if g]


def _wraps_into(prev: str, nxt: str) -> bool:
    """Does line `nxt` continue the paragraph `prev` (same sentence, cut mid-way)?"""
    # Widgets glued to icon names ("folder_openWorld") and headings are not wrapped prose.
    if _MD_HEADING.match(prev) or _GLUED.search(prev + " " + nxt):
        return False
    if prev.endswith("-") and prev[-2:-1].isalpha():
        return True
    if _ends_sentence(prev) or prev.rstrip().endswith(":"):
        return False
    long_enough = len(prev.split()) >= 6
    if nxt[:1].islower():
        return long_enough and not _LIST_MARKER.match(nxt)
    # A break inside a token (a formula's subscript, "O\n2") or before punctuation continues it;
    # "2. Next point" after a short line is a list item instead.
    if nxt[:1].isdigit() or nxt[:1] in ",;:.)]":
        return long_enough or not _LIST_MARKER.match(nxt)
    return False


def _uniform_width(lines: list[str]) -> bool:
    """A group of >= 3 lines all cut near one width, mostly mid-sentence: one wrapped paragraph."""
    if len(lines) < 3 or any(_MD_HEADING.match(x) or _LIST_MARKER.match(x) for x in lines):
        return False
    widths = [len(x) for x in lines[:-1]]
    widest = max(widths)
    mid_sentence = sum(not _ends_sentence(x) for x in lines[:-1])
    return (
        50 <= min(widths)
        and widest <= 100
        and min(widths) >= 0.75 * widest
        and len(lines[-1]) <= widest + 3
        and mid_sentence * 2 >= len(widths)
    )


def _paragraphs(text: str) -> list[_Para]:
    """Every non-empty line is a paragraph, except hard-wrapped lines, which are joined."""
    paras: list[_Para] = []
    for group in _groups(text):
        lines = [text[s:e] for s, e in group]
        whole = _uniform_width(lines)
        start, end = group[0]
        for i in range(1, len(group)):
            if whole or _wraps_into(text[start:end], lines[i]):
                end = group[i][1]
            else:
                paras.append(_Para(start, end, _collapse(text[start:end])))
                start, end = group[i]
        paras.append(_Para(start, end, _collapse(text[start:end])))
    return paras


def _norm(t: str) -> str:
    return " ".join(t.translate(_QUOTES).casefold().split())


def _header(lines: list[_Para]) -> tuple[str | None, str | None]:
    """Title and outlet from the lines above the first prose paragraph."""
    title_at = next((i for i, p in enumerate(lines) if _MD_HEADING.match(p.text)), None)
    if title_at is not None:
        title = _MD_HEADING.match(lines[title_at].text).group(1)
    else:
        found = [i for i, p in enumerate(lines) if _headline_like(p.text)]
        # A real headline has function words or lowercase words; a nav row of section names
        # ("World Business Tech Sport") has neither. Without such a line the one nearest the
        # body wins, as navigation sits at the very top.
        natural = [i for i in found if _capitalised_ratio(_words(lines[i].text)) < 1.0]
        title_at = natural[0] if natural else (found[-1] if found else None)
        last = lines[-1].text if lines else ""
        if (title_at is None and last and 1 <= len(_words(last)) <= 6 and not _ends_sentence(last)
                and not _is_furniture(last) and _byline(last) is None):
            # No headline, but a short name right above the text ("Oxygen", "Super Bowl 50"):
            # a title line as in encyclopedia-style documents.
            title_at = len(lines) - 1
        title = lines[title_at].text if title_at is not None else None
    outlet = None
    for p in lines[: title_at or 0]:
        if _is_furniture(p.text):
            continue
        # Only the first substantive line of the page can be the site's name.
        outlet = p.text if _outlet_like(p.text) else None
        break
    return title, outlet


def _trim_tail(body: list[_Para], prose: list[bool], title: str | None) -> list[_Para]:
    """Drop non-prose lines and, at the end, trailing lists of off-topic headlines."""
    stems = [_stems(p.text) for p in body]
    reference = Counter(s for st, ok in zip(stems, prose) if ok for s in st)
    distinct = len(reference)  # stems with a positive count, kept up to date in O(1)
    title_stems = _stems(title or "")
    off_topic = [False] * len(body)
    i = len(body) - 1
    # Walk back from the end over furniture and short off-topic lines; stop at on-topic or long prose.
    while i > 0:
        if prose[i]:
            for s in stems[i]:  # reference = prose before line i (plus the title below)
                reference[s] -= 1
                distinct -= reference[s] == 0
            if len(_words(body[i].text)) > _SHORT_WORDS or distinct < _MIN_REFERENCE:
                break
            shared = sum(reference[s] > 0 or s in title_stems for s in stems[i])
            # One shared word is chance; a line on the article's topic repeats several.
            if shared >= 2 and shared / len(stems[i]) >= _COHESION_MIN:
                break
            off_topic[i] = True
        i -= 1
    # Teasers end in "?", "!", "…" or nothing; an article's own closing lines end in a full stop.
    teaser = [off and not re.search(r"(?<!\.)\.[\"'”’)]*$", p.text) for p, off in zip(body, off_topic)]
    cut = len(body)
    remaining, teasers = sum(off_topic), sum(teaser)
    # A non-prose separator ("More stories") followed by off-topic lines ends the article; one or
    # two plain sentences may be the article's own closing lines under a subheading, a list is more.
    for j in range(i + 1, len(body)):
        remaining, teasers = remaining - off_topic[j], teasers - teaser[j]
        if not prose[j] and (remaining >= 3 or (remaining == 2 and teasers > 0)):
            cut = j
            break
    else:
        if sum(off_topic) >= 3:
            cut = i + 1
    return [p for p, ok in zip(body[:cut], prose[:cut]) if ok]


def clean(text: str) -> Cleaned:
    """Keep the article's paragraphs of a scraped page; find its title, byline and outlet."""
    seen: set[str] = set()
    byline: str | None = None
    paras: list[_Para] = []
    for p in _paragraphs(text):
        key = _norm(p.text)
        if key in seen:  # an article printed twice, a repeated headline
            continue
        seen.add(key)
        name = _byline(p.text)
        if name is not None:
            byline = byline or name
            continue
        paras.append(p)
    prose = [_is_prose(p.text) for p in paras]
    first = next((i for i, ok in enumerate(prose) if ok), len(paras))
    title, outlet = _header(paras[:first])
    kept = _trim_tail(paras[first:], prose[first:], title) if first < len(paras) else []
    return Cleaned(tuple(Block(p.start, p.end) for p in kept), title, byline, outlet)


# ---------------------------------------------------------------------------------------------
# Text encodings
# ---------------------------------------------------------------------------------------------

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
# Characters of Windows-1252 that Western text uses beyond letters: quotes, dashes, currency...
_WESTERN_SYMBOLS = frozenset("“”‘’„‚‹›«»–—…•·€£¥¢$©®™°±×÷§¶¡¿ªº¹²³¼½¾\u00a0\u00ad")
_IN_WORD = frozenset("’–—\u00ad·")  # apostrophe (don’t), dashes (London–Paris), soft hyphen, middle dot
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# C0 and C1 controls but tab, newlines, vertical tab and form feed.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def _universal_newlines(text: str) -> str:
    # Same frame as Path.read_text (universal newlines), so offsets index that string.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _utf16_without_bom(data: bytes) -> str | None:
    """"utf-16-le"/"utf-16-be" when NULs fill one byte of each pair (ASCII-range UTF-16), else None."""
    if len(data) < 4 or len(data) % 2:
        return None
    even, odd = data[0::2], data[1::2]
    if odd.count(0) > 0.6 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _looks_western(text: str) -> bool:
    """Is `text`, decoded as Windows-1252, plausible: accented letters inside mostly-ASCII words?

    Text in another single-byte code page decoded as 1252 turns into symbols inside words
    ("bud¿et", "ma³o": Polish in cp1250) or into words made wholly of accented letters (Cyrillic
    in cp1251), so this rejects it and the statistical detector decides instead.
    """
    accented = 0
    for m in _NON_ASCII.finditer(text):
        c, i = m.group(), m.start()
        if c.isalpha():
            accented += 1
        elif c not in _WESTERN_SYMBOLS:
            return False
        elif c not in _IN_WORD and text[i - 1 : i].isalpha() and text[i + 1 : i + 2].isalpha():
            return False
    letters = len(_NON_LETTERS.sub("", text))
    return accented <= 0.25 * letters


def _mostly_text(text: str) -> bool:
    """No more than a trace of control characters (binary data decodes to many of them)."""
    return len(_CONTROL_CHARS.findall(text)) <= 0.001 * len(text)


def decode(path: Path, data: bytes) -> tuple[str, str]:
    """(text, encoding) of a text file, `text` as `Path.read_text(encoding=encoding)` returns it.

    UTF-8 first (and any byte-order mark), then Windows-1252 when it reads as Western text (the
    usual "latin-1" file; the statistical detector guesses wrongly on mostly-ASCII text with a few
    accents, e.g. cp932 for one "£"), then charset-normalizer. Raises UnreadableDocumentError for
    binary data or text in no recognisable encoding: a file is never decoded with replacement.
    """
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if encoding in (None, "utf-8") and b"\x00" in data:  # NULs: UTF-16 without a BOM, or binary
        encoding = _utf16_without_bom(data) if encoding is None else None
        if encoding is None:
            raise UnreadableDocumentError(path, "not a text file (binary content)")
    candidates = [encoding] if encoding else ["utf-8", "cp1252"]
    for enc in candidates:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if enc != "cp1252" or _looks_western(text):
            if enc == "utf-8" or _mostly_text(text):
                return _universal_newlines(text), enc
            raise UnreadableDocumentError(path, "not a text file (binary content)")
    import charset_normalizer  # lazy: only files in legacy encodings need it

    best = charset_normalizer.from_bytes(data).best()
    if best is None or best.chaos > 0.2:
        raise UnreadableDocumentError(path, "not a text file (no known text encoding fits)")
    text = data.decode(best.encoding)
    if not _mostly_text(text):
        raise UnreadableDocumentError(path, "not a text file (binary content)")
    return _universal_newlines(text), best.encoding


# ---------------------------------------------------------------------------------------------
# Language
# ---------------------------------------------------------------------------------------------

# The most frequent function words of languages written in Latin script (not English, whose list
# is the stopword list of textutil): a stopword-ratio detector, as offline and fast as the
# tokenizer, enough to tell an article's language from its running text.
_FUNCTION_WORDS = {
    "de": "der die das und ist nicht mit sich auf für von den dem des ein eine einer eines zu im "
          "auch als wird werden wurde hat haben bei nach aus über sie er es ich wir sind war noch "
          "nur oder aber wie dass vor zum zur um schon mehr",
    "fr": "le la les et est des du une un dans pour que qui pas sur au aux avec ce cette il elle "
          "ils sont par plus ont été mais ou leur son sa ses nous vous se ne être était comme",
    "es": "el la los las es del que en un una por con para se su sus al lo como más pero fue ha "
          "han este esta entre sobre también muy son hasta desde porque",
    "it": "il lo la gli le di che un una per non con del della dei delle nel nella sono si ha ma "
          "anche come più alla al da sul questo questa essere è",
    "pt": "os as do da dos das em um uma para com não que por se mais foi são pelo pela ao seu "
          "sua também como mas ele ela está",
    "nl": "de het een en van dat op te zijn niet met voor er aan ook als bij door maar om naar "
          "dan wordt werd heeft hebben deze worden",
}
_FUNCTION_SETS = {lang: frozenset(words.split()) for lang, words in _FUNCTION_WORDS.items()}
# Scripts other than Latin, named as BCP 47 "und-Xxxx" (language undetermined, script known), or
# the language when the script is one language's own.
_SCRIPTS = (
    ("\u0400", "\u052f", "und-Cyrl"), ("\u0370", "\u03ff", "el"), ("\u0590", "\u05ff", "he"),
    ("\u0600", "\u06ff", "und-Arab"), ("\u0900", "\u097f", "und-Deva"), ("\u0e00", "\u0e7f", "th"),
    ("\u3040", "\u30ff", "ja"), ("\uac00", "\ud7af", "ko"), ("\u4e00", "\u9fff", "und-Hani"),
)
_NON_LATIN = re.compile("[" + "".join(f"{lo}-{hi}" for lo, hi, _ in _SCRIPTS) + "]")
_LANG_WORD = re.compile(r"[^\W\d_]+")
_MIN_WORDS = 30  # below this a ratio of function words says too little
# On the 2,225 BBC articles the English ratio is 0.17-0.6 (median 0.41) and no other list passes 0.04.
_MIN_RATIO = 0.12


def _script_language(text: str) -> str | None:
    """The language (or script) of text written mostly outside the Latin alphabet, else None."""
    sample = text[:20_000]
    if sample.isascii():
        return None
    foreign = _NON_LATIN.findall(sample)
    letters = len(_NON_LETTERS.sub("", sample))
    if not foreign or len(foreign) < 0.5 * letters:
        return None
    counts = Counter(next(tag for lo, hi, tag in _SCRIPTS if lo <= c <= hi) for c in foreign)
    tag = max(counts, key=counts.get)
    if tag == "und-Hani" and counts.get("ja", 0) > 0.05 * len(foreign):
        return "ja"  # Japanese writes kana among the Chinese characters
    return tag


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the language `text` is written in ("en", "de", ...), None if unsure."""
    by_script = _script_language(text)
    if by_script is not None:
        return by_script
    words = [w for w in _LANG_WORD.findall(text[:10_000].lower()) if len(w) > 1]
    if len(words) < _MIN_WORDS:
        return None
    counts = Counter(words)
    scores = {lang: sum(k for w, k in counts.items() if w in s) / len(words) for lang, s in _FUNCTION_SETS.items()}
    scores["en"] = sum(k for w, k in counts.items() if is_stopword(w)) / len(words)
    lang = max(scores, key=scores.get)
    return lang if scores[lang] >= _MIN_RATIO else None


# ---------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------


def _size_text(n: int) -> str:
    return f"{n / 1_000_000:g} MB" if n >= 1_000_000 else f"{n} bytes"


def _read_bytes(path: Path, real: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing non-regular and oversized files without reading them whole."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags)  # O_NOFOLLOW: the checked target cannot be swapped for a link
    except FileNotFoundError:
        raise UnreadableDocumentError(path, "vanished while reading") from None
    except PermissionError:
        raise UnreadableDocumentError(path, "permission denied") from None
    except OSError as exc:
        raise UnreadableDocumentError(path, f"cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableDocumentError(path, "not a regular file")
        if info.st_size > max_bytes:
            raise UnreadableDocumentError(path, f"larger than {_size_text(max_bytes)}")
        try:
            data = f.read(max_bytes + 1)  # the file may have grown since fstat
        except OSError as exc:
            raise UnreadableDocumentError(path, f"cannot read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise UnreadableDocumentError(path, f"larger than {_size_text(max_bytes)}")
    return data


def _from_html(path: Path, data: str) -> tuple[str, str | None, Publication]:
    """Main text, title and publication facts (author, site name, date, URL) of an HTML page
    (trafilatura, whose date comes from htmldate), from its decoded text."""
    import trafilatura  # lazy: slow to import and only needed for HTML

    try:
        doc = trafilatura.bare_extraction(data, with_metadata=True, include_comments=False)
    except Exception as exc:  # a parser failure on one page must not stop the whole read
        raise UnreadableDocumentError(path, f"cannot parse HTML ({exc})") from None
    if doc is None or not (doc.text or "").strip():
        return "", None, Publication()
    text = doc.text.replace("\r\n", "\n").replace("\r", "\n")
    return text, doc.title or None, _publication("html metadata", date=iso_date(doc.date), outlet=doc.sitename,
                                                 author=doc.author, url=doc.url)


def _publication(source: str, **values) -> Publication:
    """Facts found in one place, each labelled with it."""
    values = {k: (" ".join(v.split()) or None) if isinstance(v, str) else None for k, v in values.items()}
    return Publication(**values, sources=tuple((k, source) for k, v in values.items() if v))


def _fallback_title(text: str, blocks: tuple[Block, ...], stem: str) -> str:
    """First sentence of the first block, cut near 100 chars on a word boundary; else the stem."""
    if not blocks:
        return stem
    first = _collapse(text[blocks[0].start : blocks[0].end])
    for m in re.finditer(r"[.!?…][\"'”’)]*(?=\s+[\"'“‘(]?[A-Z])", first):
        if not _ABBREVIATION.search(first[: m.start() + 1]):
            first = first[: m.end()]
            break
    if len(first) > 100:
        cut = first[:101].rsplit(" ", 1)[0] if " " in first[:101] else first[:100]
        first = cut.rstrip(" ,;:-–—") + "…"
    return first or stem


def _extracted(path: Path, data: bytes, kind: str, limits: formats.Limits) -> formats.Extracted:
    try:
        return formats.extract_isolated(kind, data, limits)
    except formats.FormatError as exc:
        raise UnreadableDocumentError(path, exc.reason) from None


_HASH_SLICE = 1 << 16  # characters


def _content_hash(file_sha256: str, text: str, encoding: str, extracted: bool) -> str:
    """What identifies the indexed text: the file's hash when the text is its UTF-8 decoding,
    else a hash of the file's hash and the text, so that another extraction of the same file
    (a new parser or detector version) is seen as a change and never misplaces a citation."""
    if encoding == "utf-8" and not extracted:
        return file_sha256
    h = hashlib.sha256(f"{file_sha256}\0{encoding}\0".encode())
    # In slices, not one copy of a long text: UTF-8 encodes each character on its own (surrogates
    # included, with "surrogatepass"), so the bytes hashed are the same wherever the text is cut.
    for i in range(0, len(text), _HASH_SLICE):
        h.update(text[i : i + _HASH_SLICE].encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def read_document(path: Path, root: Path, max_bytes: int = DEFAULT_MAX_BYTES,
                  languages: frozenset[str] | None = DEFAULT_LANGUAGES,
                  limits: formats.Limits = formats.Limits()) -> Document:
    """Read and clean one file of the folder `root`; raises DocumentsError when it is unusable.

    A document whose detected language is not in `languages` is refused (None accepts any); one
    whose language cannot be told is accepted. PDF and DOCX are parsed under `limits`.
    """
    path = Path(path)
    real_root = Path(root).resolve()
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # symlink loop
        raise UnreadableDocumentError(path, "symbolic link cannot be resolved") from None
    if not real.is_relative_to(real_root):
        reason = "symbolic link leaves the folder" if path.is_symlink() else "outside the folder"
        raise UnreadableDocumentError(path, reason)
    if path.is_symlink() and not real.exists():
        raise UnreadableDocumentError(path, "broken symbolic link")
    data = _read_bytes(path, real, max_bytes)
    if not data or data.isspace():  # as `not data.strip()`, without a copy of the file
        raise UnreadableDocumentError(path, "empty")
    suffix = path.suffix.lower()
    meta_title = None
    found = Publication()
    pages: tuple[int, ...] = ()
    if suffix in formats.SUFFIXES:
        got = _extracted(path, data, formats.SUFFIXES[suffix], limits)
        text, pages, meta_title, encoding = got.text, got.pages, got.title, ""
        found = _publication(f"{suffix[1:]} properties", author=got.author, date=iso_date(got.date))
    else:
        text, encoding = decode(path, data)
        if suffix in _HTML_SUFFIXES:
            text, meta_title, found = _from_html(path, text)
    cleaned = clean(text)
    if not cleaned.blocks:
        raise UnreadableDocumentError(path, "no article text found")
    language = detect_language("\n".join(text[b.start : b.end] for b in cleaned.blocks))
    if languages is not None and language is not None and language not in languages:
        wanted = "English" if languages == DEFAULT_LANGUAGES else "in " + ", ".join(sorted(languages))
        raise UnreadableDocumentError(path, f"not {wanted} (detected: {language})")
    title = meta_title or cleaned.title or _fallback_title(text, cleaned.blocks, path.stem)
    file_sha256 = hashlib.sha256(data).hexdigest()
    guess = found.merged_over(_publication("article text", author=cleaned.byline, outlet=cleaned.outlet))
    return Document(
        doc_id=_doc_id(path, root),
        path=str(real),
        text=text,
        blocks=cleaned.blocks,
        title=_collapse(title) or path.stem,
        byline=guess.author,
        outlet=guess.outlet,
        content_hash=_content_hash(file_sha256, text, encoding, extracted=suffix not in _PLAIN_SUFFIXES),
        encoding=encoding,
        pages=pages,
        language=language,
        file_sha256=file_sha256,
        guess=guess,
    )
