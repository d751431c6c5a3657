"""Turn what a user restricts a question by (sources, dates, outlets, authors, exact phrases) into
the backend's Filter, with one clear error for anything invalid."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .backends.base import Filter
from .errors import BadQuestionError
from .metadata import iso_date
from .textutil import normalise
from .types import DocInfo


def make_filter(docs: Mapping[str, DocInfo], sources: list[str], since, until, outlets: list[str],
                authors: list[str], phrases: tuple[str, ...] = ()) -> Filter:
    """The Filter for a question over these documents.

    Raises:
        BadQuestionError: an unknown source or outlet, a date that is not one, since after until.
    """
    unknown = {s for s in sources if s not in docs}  # not set(docs): per question, O(documents)
    if unknown:
        raise BadQuestionError(f"unknown sources: {', '.join(sorted(unknown))}")
    start, end = _date(since, "since"), _date(until, "until")
    if start and end and start > end:
        raise BadQuestionError(f"since ({start}) is after until ({end})")
    wanted = {normalise(o) for o in outlets if o.strip()}
    known = {normalise(d.outlet) for d in facts(docs) if d.outlet} if wanted else set()  # per question: only when asked
    if wanted - known:
        missing = ", ".join(sorted(o for o in outlets if normalise(o) in wanted - known))
        raise BadQuestionError(f"unknown outlet: {missing} (the articles name {len(known)} outlets)")
    names = {normalise(a) for a in authors if a.strip()}
    return Filter(sources=frozenset(sources) if sources else None, phrases=phrases, since=start, until=end,
                  outlets=frozenset(wanted) if wanted else None, authors=frozenset(names) if names else None)


def facts(docs: Mapping[str, DocInfo]) -> Iterable:
    """Every document's filter facts (doc_id, date, outlet, byline: what Filter.allows reads): the
    backend's columns when it keeps them (no record decoded), else the records."""
    return docs.facts() if hasattr(docs, "facts") else docs.values()


def describe(where: Filter) -> tuple[tuple[str, str], ...]:
    """The filter as (name, value) pairs for people to read."""
    out = []
    if where.sources is not None:
        out.append(("sources", ", ".join(sorted(where.sources))))
    if where.since:
        out.append(("since", where.since))
    if where.until:
        out.append(("until", where.until))
    if where.outlets:
        out.append(("outlets", ", ".join(sorted(where.outlets))))
    if where.authors:
        out.append(("authors", ", ".join(sorted(where.authors))))
    out += [("phrase", p) for p in where.phrases]
    return tuple(out)


def _date(value, name: str) -> str | None:
    if value is None or value == "":
        return None
    iso = iso_date(value)
    if iso is None:
        raise BadQuestionError(f"{name} must be a date as YYYY-MM-DD, got {value!r}")
    return iso
