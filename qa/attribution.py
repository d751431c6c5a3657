"""Who says what: attribute sentences of news text to the person (or body) making the statement.

English news conventions only: direct quotes, reported speech ("X said", "said X", "according to
X"), and pronoun or role references ("he said", "the minister stressed") that point back to the last
named speaker. Run once per document at index time; the result is one speaker (or None) per sentence.
"""

from __future__ import annotations

import re
from functools import lru_cache

SPEECH_VERBS = (
    "said|says|say|stated|states|told|tells|added|adds|noted|notes|asserted|asserts|explained|"
    "explains|claimed|claims|stressed|stresses|emphasi[sz]ed|emphasi[sz]es|warned|warns|argued|"
    "argues|insisted|insists|reiterated|reiterates|underscored|underscores|accused|accuses|"
    "dismissed|dismisses|rejected|rejects|pointed out|points out|made it clear|declared|declares|"
    "announced|announces|remarked|wrote|writes|replied|answered|acknowledged|admitted|suggested|"
    "questioned|called|urged|recalled|highlighted|clarified|expressed|praised|criticised|criticized|"
    "denied|confirmed|believes|believed|thinks|thought|commented|continued|went on"
)
_NAME = r"(?:[A-Z][\w'’\-]+\.?)(?:\s+(?:[A-Z][\w'’\-]+\.?|de|van|von|al-\w+))*"
_ADVERBS = r"(?:\s+(?:also|further|then|later|repeatedly|previously|firmly|again|has|have|had|was|once|clearly|openly|publicly|however,?)){0,3}"
_VERB = rf"(?:{SPEECH_VERBS})"
_NAME_VERB = re.compile(rf"\b(?P<name>{_NAME}){_ADVERBS}\s+{_VERB}\b")
_VERB_NAME = re.compile(rf"(?:[,”\"]|\b){_ADVERBS}\s*{_VERB}\s+(?P<name>{_NAME})")
_ACCORDING = re.compile(rf"\b[Aa]ccording to\s+(?P<name>{_NAME})")
_PRONOUN_VERB = re.compile(
    rf"\b(?:he|she|they|the (?:[a-z\-]+ ){{0,3}}(?:minister|president|spokes\w+|official|diplomat|"
    rf"leader|chief|secretary|envoy|ambassador|premier|chancellor|head|ministry|mayor|general))"
    rf"{_ADVERBS}\s+{_VERB}\b",
    re.IGNORECASE,
)
_QUOTE = re.compile(r"[“\"«][^“”\"«»]{12,}[”\"»]|[“\"«][^“”\"«»]{12,}$|^[^“”\"«»]{12,}[”\"»]")
# Capitalised words that start sentences or name things, not speakers.
_NOT_NAMES = {"The", "This", "That", "These", "Those", "It", "In", "On", "At", "But", "And", "However",
              "Meanwhile", "Furthermore", "Additionally", "Moreover", "When", "While", "As", "If", "A",
              "An", "He", "She", "They", "We", "I", "You", "Both", "Since", "For", "So", "Apparently",
              "Speaking", "There"}


def _clean_name(name: str) -> str | None:
    words = name.split()
    while words and words[0].strip(".") in _NOT_NAMES:
        words = words[1:]
    if not words:
        return None
    return " ".join(w.rstrip(".,") for w in words)


def _named_speaker(sentence: str) -> str | None:
    for pattern in (_ACCORDING, _NAME_VERB, _VERB_NAME):
        for m in pattern.finditer(sentence):
            name = _clean_name(m.group("name"))
            if name:
                return name
    return None


def attribute(sentences: list[str], paragraph_ids: list[int]) -> list[str | None]:
    """Speaker of each sentence of one document (None: not a statement, or speaker unknown).

    Args:
        sentences: the document's sentences in order.
        paragraph_ids: the paragraph each sentence belongs to; quotes are attributed across a
            paragraph because a quote often spans sentences and names its speaker only once.
    """
    speakers: list[str | None] = []
    last: str | None = None
    for sent in sentences:
        name = _named_speaker(sent)
        if name is None and _PRONOUN_VERB.search(sent):
            name = last
        if name:
            last = name
        speakers.append(name)
    # Spread a speaker to the other quoted sentences of its paragraph.
    for pid in set(paragraph_ids):
        idx = [i for i, p in enumerate(paragraph_ids) if p == pid]
        named = [speakers[i] for i in idx if speakers[i]]
        if not named:
            continue
        for i in idx:
            if speakers[i] is None and _QUOTE.search(sentences[i]):
                speakers[i] = named[0]
    return speakers


def is_quote(sentence: str) -> bool:
    """Does the sentence carry a direct quotation (the speaker's own words)?"""
    return bool(_QUOTE.search(sentence))


@lru_cache(maxsize=4096)  # asked for every candidate sentence; few distinct speakers per question
def speaker_matches(speaker: str | None, person: str) -> bool:
    """True if a sentence's speaker is the person asked about (surname match, case-insensitive)."""
    if not speaker or not person:
        return False
    asked = {w.lower() for w in re.findall(r"[\w'’\-]+", person) if w[:1].isupper() or len(w) > 3}
    said = {w.lower() for w in re.findall(r"[\w'’\-]+", speaker)}
    return bool(asked & said)


_ASK_SPEAKER = re.compile(
    r"^\s*(?:and\s+)?(?:what|how|why|when|where)\s+(?:did|does|do|has|have|had|is|was|will|would)\s+"
    r"(?P<x>.+?)\s+(?:say|said|tell|told|state|stated|think|claim|claimed|mean|argue|warn|"
    r"respond|reply|announce|comment|add|write|suggest|believe|note|stress|explain)\b(?P<rest>.*)$",
    re.IGNORECASE,
)
_ACCORDING_Q = re.compile(r"\baccording to\s+(?P<x>[A-Z][\w'’\-]+(?:\s+[A-Z][\w'’\-]+)*)")


def asked_speaker(question: str) -> str | None:
    """The person a question asks about as a speaker ("What did X say about Y?"), if any."""
    return speaker_question(question)[0]


def speaker_question(question: str) -> tuple[str | None, str]:
    """Split "What did X say about Y?" into (X, Y); (None, question) when it asks no speaker."""
    m = _ASK_SPEAKER.match(question)
    if m:
        x = m.group("x").strip()
        if any(w[:1].isupper() for w in x.split()):
            topic = re.sub(r"^\s*(?:about|on|regarding|concerning|of|to)\s+", "", m.group("rest").strip(" ?.!"))
            return x, topic
    m = _ACCORDING_Q.search(question)
    if m:
        topic = (question[:m.start()] + question[m.end():]).strip(" ,?.!")
        return m.group("x"), topic
    return None, question


def lexical_query(question: str) -> str:
    """The words to match literally: for "What did X say about Y?" just X and Y (the frame
    "what did ... say about" would otherwise match any passage where anyone says anything)."""
    person, topic = speaker_question(question)
    return f"{person} {topic}" if person else question
