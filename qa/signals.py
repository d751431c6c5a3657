"""Text signals of news questions: names matched as units, the kind of figure a number question
asks for, and questions asking for someone's words.

Small pure functions over plain text, so that they port to any index backend: the answer stage
calls them on the question and on the few dozen candidate passages (and memoises the per-passage
ones, which do not depend on the question).
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

# Kinds of figure, as bits of a sentence's `figure_kinds`.
MONEY, PERCENT, SCORE, COUNT = 1, 2, 4, 8

_MONEY = re.compile(
    r"[£$€¥]\s?\d|\b\d[\d,.]*\s?(?:m|bn|k|million|billion|trillion)?\s?(?:euros?|dollars?|pounds?|yen|won|"
    r"yuan|rupees?|roubles?|francs?|pence|p)\b|\b\d[\d,.]*(?:m|bn)\b", re.I)
_PERCENT = re.compile(r"\d\s?(?:%|per ?cent\b|percent\b|percentage points?\b)", re.I)
_SCORE = re.compile(r"\b\d{1,3}\s?-\s?\d{1,3}\b(?!\s?(?:year|month|day|week))")
_COUNT = re.compile(r"\b\d[\d,.]*\b|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                    r"twenty|thirty|forty|fifty|hundreds?|thousands?|millions?|billions?|dozens?)\b", re.I)


def figure_kinds(sentence: str) -> int:
    """Which kinds of figure a sentence holds (MONEY | PERCENT | SCORE | COUNT bits)."""
    return ((MONEY if _MONEY.search(sentence) else 0) | (PERCENT if _PERCENT.search(sentence) else 0)
            | (SCORE if _SCORE.search(sentence) else 0) | (COUNT if _COUNT.search(sentence) else 0))


_ASKS_PERCENT = re.compile(r"\b(?:percent(?:age)?|per cent|share|proportion|rate|by how much)\b", re.I)
_ASKS_MONEY = re.compile(
    r"\b(?:money|cost|costs|price|prices|pay|paid|worth|sales|profits?|revenues?|turnover|funds?|funding|"
    r"spend|spent|budget|prize|fees?|salary|wages?|bid|fine|fined|loss|losses|debts?|earn|earned|"
    r"value|valued|sold for|raise|raised|bill|compensation|investment|invest|deal)\b", re.I)
_ASKS_SCORE = re.compile(r"\b(?:score|scoreline|margin|beat|won|win|lost|defeat(?:ed)?|draw)\b", re.I)
_HOW_MUCH = re.compile(r"\bhow much\b", re.I)


# "What were X's sales", "What share of ...", "What height did she clear": a number question
# without "how much / how many".
_WHAT_AMOUNT = re.compile(
    r"\bwhat (?:[\w'’]+ ){0,4}?(?:sales|profits?|revenues?|turnover|price|cost|salary|budget|fees?|debts?|"
    r"losses|share|percentage|proportion|height|distance|weight|time|score|margin|fine|value)\b", re.I)


def asks_amount(question: str) -> bool:
    """Does a "what" question ask for an amount (sales, a share, a height)?"""
    return bool(_WHAT_AMOUNT.search(question))


def asked_figure(question: str) -> int:
    """The kinds of figure that would answer a number question (bits; COUNT: any figure)."""
    if _ASKS_PERCENT.search(question):
        return PERCENT
    if _ASKS_MONEY.search(question) or _HOW_MUCH.search(question):
        return MONEY | PERCENT if _HOW_MUCH.search(question) and not _ASKS_MONEY.search(question) else MONEY
    if re.search(r"\bwhat (?:was|is) the score\b|\bby what score\b", question, re.I):
        return SCORE
    return COUNT


# "What did X say", "How did X respond", "What reason did X give", "What did X call Y": the answer
# is someone's words, so a quoted sentence (or reported speech) answers better than the summary.
_ASKS_WORDS = re.compile(
    r"\b(?:say|said|says|tell|told|respond|responded|reply|replied|react|reacted|describe|described|"
    r"call|called|accuse|accused|warn|warned|claim|claimed|argue|argued|admit|admitted|explain|"
    r"explained|insist|insisted|comment|commented|reason|complain|complained|criticis\w+|blame|"
    r"blamed|predict|predicted|promise|promised|describe|verdict|view|views|think|thinks|believe|warning|why)\b", re.I)


def asks_for_words(question: str) -> bool:
    """Does the question ask what someone said (their words, a reason, a reaction)?"""
    return bool(_ASKS_WORDS.search(question))


# A name: capitalised words (with inner "of", "de", "the" and hyphens), not the question's first
# word unless it is itself a name. Possessives are cut so "Gazprom's" is the unit "Gazprom".
_NAME = re.compile(r"\b\d{4}\b|\b[A-Z][\w\-&.']*(?:\s+(?:(?:of|de|van|von|al)\s+)?[A-Z][\w\-&.']*)*")
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
_LOWER_START = {"what", "which", "who", "whom", "whose", "when", "where", "why", "how", "did", "does", "do",
                "is", "was", "were", "are", "has", "have", "had", "in", "on", "at", "for", "by", "after",
                "before", "according", "the", "a", "an", "and", "but", "can", "could", "will", "would",
                "should", "to", "from", "with", "of", "as", "since", "during", "if", "under"}


def question_names(question: str) -> tuple[str, ...]:
    """The names a question mentions (people, bodies, places, years), each as a unit."""
    text = question.replace("’", "'")
    out: list[str] = []
    for m in _NAME.finditer(text):
        words = _POSSESSIVE.sub("", m.group(0)).rstrip(".").split()
        while words and words[0].lower() in _LOWER_START:  # "What", "Did", "The" opening the question
            words = words[1:]
        if words and not (len(words) == 1 and len(words[0]) < 2):
            name = " ".join(words)
            if name not in out:
                out.append(name)
    return tuple(out)


# Spellings of one name that outlets use side by side (transliterations, renamed places): a
# question naming Kyiv is answered by a report from Kiev, and the other way round.
NAME_VARIANTS: tuple[tuple[str, ...], ...] = (
    ("Kyiv", "Kiev"), ("Kharkiv", "Kharkov"), ("Odesa", "Odessa"), ("Lviv", "Lvov"), ("Luhansk", "Lugansk"),
    ("Mykolaiv", "Nikolaev", "Nikolayev"), ("Zaporizhzhia", "Zaporozhye"), ("Chornobyl", "Chernobyl"),
    ("Dnipro", "Dnepr"), ("Belarus", "Byelorussia"), ("Moldova", "Moldavia"), ("Kyrgyzstan", "Kirghizia"),
    ("Beijing", "Peking"), ("Mumbai", "Bombay"), ("Myanmar", "Burma"), ("Kolkata", "Calcutta"),
    ("Chennai", "Madras"), ("Gaddafi", "Qaddafi", "Kadhafi", "Qadhafi"), ("Qaeda", "Qaida"),
    ("Muhammad", "Mohammed", "Mohammad"), ("Tehran", "Teheran"), ("Hanukkah", "Chanukah"),
)
_VARIANTS_OF = {w: group for group in NAME_VARIANTS for w in group}


def spellings(word: str) -> tuple[str, ...]:
    """The word and its other spellings as a name (just the word if it has none)."""
    return _VARIANTS_OF.get(word, (word,))


def with_variants(text: str) -> str:
    """The text followed by the other spellings of the names it holds (for word matching)."""
    extra = [v for w in re.findall(r"[A-Z][\w\-]+", text) if w in _VARIANTS_OF for v in _VARIANTS_OF[w] if v != w]
    return f"{text} {' '.join(extra)}" if extra else text


@lru_cache(maxsize=4096)
def _name_pattern(name: str) -> re.Pattern:
    # Exact unit, any possessive; straight and curly apostrophes alike; any spelling of each word.
    body = r"\s+".join("(?:" + "|".join(re.escape(v) for v in spellings(w)) + ")" for w in name.split())
    return re.compile(rf"(?<![\w\-]){body}(?![\w\-])")


def _absent(word: str, text: str) -> bool:
    """Plain substring test first: most names are absent from most texts."""
    return all(v not in text for v in spellings(word))


def name_found(name: str, text: str) -> float:
    """1 if the name is in the text as a unit, 0.5 if only its last word is (a surname, "the
    Exchange"), else 0. Case matters: "Labour" the party is not "labour" the word."""
    words = name.split()
    if _absent(words[-1], text):
        return 0.0
    if _name_pattern(name).search(text):
        return 1.0
    if len(words) > 1 and len(words[-1]) > 2 and _name_pattern(words[-1]).search(text):
        return 0.5
    return 0.0


def names_share(names: tuple[str, ...], text: str) -> float:
    """Share of the names found in the text (partial credit as in name_found); 1 when there are none."""
    if not names:
        return 1.0
    return sum(name_found(n, text) for n in names) / len(names)


def names_credit(names: tuple[str, ...], text: str, starts: list[int]) -> list[list[float]]:
    """Per sentence of a passage, per name: 1 if the sentence holds the name as a unit, 0.5 if only
    its last word (as name_found), from one search of the passage per name.

    starts: each sentence's first character within `text`, ascending."""
    credit = [[0.0] * len(names) for _ in starts]
    for k, name in enumerate(names):
        words = name.split()
        if _absent(words[-1], text):
            continue
        partial = [(0.5, _name_pattern(words[-1]))] if len(words) > 1 and len(words[-1]) > 2 else []
        for value, rx in partial + [(1.0, _name_pattern(name))]:
            for m in rx.finditer(text):
                j = bisect.bisect_right(starts, m.start()) - 1
                if j >= 0:
                    credit[j][k] = max(credit[j][k], value)
    return credit


# The thing a question asks about: "how many *jobs*", "what share of *shoppers*", "which two
# *photographers*", "who is the *chairman*". In news the answer sits right beside it ("12,000
# jobs", "chairman Zheng Junhuai"), while the sentence that restates the story often lacks it.
_FOCUS_AFTER = re.compile(
    r"\bhow (?:many|much)\b|\b(?:what|which) (?:share|percentage|proportion|number|amount|fraction) of\b"
    r"|\b(?:what|which)\b|\bwho (?:is|was|are|were|will be)\b", re.I)
_FOCUS_SKIP = {"the", "a", "an", "two", "three", "four", "five", "of", "its", "their", "his", "her", "all", "is",
               "was", "are", "were", "kind", "sort", "type"}
_FOCUS_STOP = re.compile(r"[\w'’\-]+|[^\w\s]")
_GENERIC = {"name", "names", "thing", "things", "way", "reason", "happened", "part", "one"}


def question_focus(question: str) -> tuple[str, ...]:
    """Up to two lower-case content words naming what the question asks about (none for "what
    did X say", "how much did X pay": there the verb, not a noun, says it)."""
    from .textutil import is_stopword

    m = _FOCUS_AFTER.search(question)
    if not m:
        return ()
    out: list[str] = []
    for tok in _FOCUS_STOP.findall(question[m.end():]):
        low = tok.lower()
        if not out and (low in _FOCUS_SKIP or tok[:1].isupper()):
            continue  # "which two paparazzi", "what share of UK mobile phones"
        if not tok[:1].isalpha() or tok[:1].isupper() or is_stopword(low) or low in _FOCUS_SKIP:
            break
        out.append(low)
        if len(out) == 2:
            break
    return tuple(w for w in out if w not in _GENERIC)


@lru_cache(maxsize=1024)
def _focus_pattern(word: str) -> re.Pattern:
    # The word's stem as a prefix, so "job" finds "jobs" and "photographer" finds "photographers".
    from .textutil import terms

    stem = (terms(word) or [word])[0]
    stem = stem[:-1] if stem.endswith("i") and len(stem) > 3 else stem  # "compani" -> "compan(y|ies)"
    return re.compile(rf"\b{re.escape(stem)}\w*", re.I)


_FIGURE = re.compile(r"[£$€¥]\s?\d|\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
                     r"twelve|twenty|thirty|forty|fifty|hundred|thousand|million|billion|half|third|quarter|dozen)\b",
                     re.I)
_CAPITAL = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z][\w\-']*")
# Near: within this many characters (about five words) of the focus word.
FOCUS_REACH = 30


def mentions(focus: tuple[str, ...], text: str) -> bool:
    """Does the text hold any of the focus words (any form)?"""
    return any(_focus_pattern(w).search(text) for w in focus)


def focus_near(focus: tuple[str, ...], sentence: str, wants_figure: bool, given: frozenset[str]) -> float:
    """1 if the sentence holds what the question asks for right beside its focus word (a figure
    for a number question, else a name the question does not give), 0.5 if only the focus word,
    0 if neither.

    given: the question's lower-cased words (its names are not the answer)."""
    spots = [m.start() for w in focus for m in _focus_pattern(w).finditer(sentence)]
    if not spots:
        return 0.0
    if wants_figure:
        answers = [m.start() for m in _FIGURE.finditer(sentence)]
    else:
        answers = [m.start() for m in _CAPITAL.finditer(sentence) if m.group(0).lower() not in given]
    return 1.0 if any(abs(a - s) <= FOCUS_REACH for a in answers for s in spots) else 0.5
