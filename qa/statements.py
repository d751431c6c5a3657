"""A person's statements over time: every passage where that person is the speaker (and, given a
subject, that `ask()` finds relevant to it), in date order, the same words carried by several
outlets shown once with the earliest report marked as first."""

from __future__ import annotations

from dataclasses import dataclass

from .attribution import speaker_matches
from .types import Answer, Citation, Passage

MAX_STATEMENTS = 50  # ask()'s own cap on passages


@dataclass(frozen=True)
class Statement:
    """One statement: its passage (highlight = the person's sentence), and where it was first reported."""

    passage: Passage
    first_reported: Citation   # the earliest dated of the passage's citation and its "also reported by"


@dataclass(frozen=True)
class Statements:
    """The reply to `QA.statements`; `statements` are in the order asked (undated ones last)."""

    person: str
    about: str | None
    statements: tuple[Statement, ...]
    order: str                 # "newest" or "oldest"
    filters: tuple[tuple[str, str], ...] = ()
    undated_left_out: int = 0
    reason: str = ""           # why there are none

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def question_for(person: str, about: str | None) -> str:
    """The question whose answers are the person's statements (on the subject)."""
    return f"What did {person} say about {about}?" if about else f"What did {person} say?"


def from_answer(person: str, about: str | None, answer: Answer, order: str) -> Statements:
    """Keep the passages where the person makes a statement related to the subject (ask()'s own
    rule) in the highlighted sentence; order them by date."""
    kept = [Statement(p, _first(p)) for p in answer.passages
            if p.statement and p.speaker and speaker_matches(p.speaker, person)]
    dated = sorted((s for s in kept if s.first_reported.date), key=lambda s: s.first_reported.date,
                   reverse=order == "newest")
    undated = [s for s in kept if not s.first_reported.date]
    reason = "" if kept else (answer.reason or f"no passage in which {person} is the speaker"
                              + (f" on {about}" if about else ""))
    return Statements(person, about, tuple(dated + undated), order, answer.filters, answer.undated_left_out, reason)


def _first(p: Passage) -> Citation:
    """The earliest dated citation among a passage and the outlets also carrying it (itself if none is dated)."""
    dated = [c for c in (p.citation, *p.also_in) if c.date]
    return min(dated, key=lambda c: c.date) if dated else p.citation
