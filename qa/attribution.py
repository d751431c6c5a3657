"""Who says what: attribute sentences of news text to the person making the statement.

English news conventions only: reported speech ("X said", "said X" after a quote or comma,
"according to X"), direct quotes spanning sentences of a paragraph, pronouns ("he said") that point
back to the last speaker of that sex, and role references ("the foreign minister added", "Russia's
foreign minister said") that point back to a named person known to hold that role. An attribution
set off by a comma or closing quote ("..., the minister added.") is the sentence's own and wins over
a "said" inside the reported words; a "said" inside quotation marks is never the speaker. Run once
per document at index time; the result is one speaker (or None) per sentence.

A speaker is a person. The evidence is the shape of the name and what the same document says about
it, never a list of particular people or places:
- a possessive is never the speaker itself: "Russia's foreign minister said" is a role reference;
- a person is two or more capitalised name words ("Ana Ruiz"), or a title with a name ("Mr Weller",
  "President Brandt"), or a single word that the same document elsewhere uses as the last word of
  such a name ("Ruiz said" after "farmer Ana Ruiz"; headlines often name the surname first);
- names holding an acronym (NATO, BBC) or a generic organisation or place word (Ministry, Party,
  Bank, Inc, Street, ...) are organisations, and a single capitalised word never used as a person's
  surname ("Moscow", "Gazprom", "Analysts") is not a person either.

Decision: a statement made by a body ("Moscow said", "the Kremlin said", "Gazprom said", "according
to the ministry") gets no speaker (None), not the body's name. The questions this serves ask what a
person said, and a body's statement is not that person's; labelling it with the body's name would
also make "Moscow" match any question naming Moscow. Such sentences are still retrieved on their
words; they only get no speaker bonus. Sentences after a body's statement still resolve "he said" to
the last named person.

Speaker strings are names without titles, completed to the document's full form where it has one
("Mr Weller said" -> "Jonas Weller"). `same_person` merges spelling variants across documents.
Known limits: a two-word organisation without a generic word ("Goldman Sachs") passes as a person,
a one-word name never given in full ("Mr Dean" is kept, a bare "Jamelia" is not) and a capitalised
role noun opening a sentence may stay in the name ("Singer Sam Endicott"; `same_person` still
matches it to "Sam Endicott").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from .signals import with_variants

SPEECH_VERBS = (
    "said|says|say|stated|states|told|tells|added|adds|noted|notes|asserted|asserts|explained|"
    "explains|claimed|claims|stressed|stresses|emphasi[sz]ed|emphasi[sz]es|warned|warns|argued|"
    "argues|insisted|insists|reiterated|reiterates|underscored|underscores|accused|accuses|"
    "dismissed|dismisses|rejected|rejects|pointed out|points out|made it clear|declared|declares|"
    "announced|announces|remarked|wrote|writes|replied|answered|acknowledged|admitted|suggested|"
    "questioned|called|urged|recalled|highlighted|clarified|expressed|praised|criticised|criticized|"
    "denied|confirmed|believes|believed|thinks|thought|commented|continued|went on"
)


def _trie(words: list[str]) -> str:
    """A regex alternation factored by common prefixes: fails at the first letter on most words,
    which makes the per-sentence verb scan several times faster than a flat alternation."""
    if "" in words and len(words) == 1:
        return ""
    groups: dict[str, list[str]] = {}
    for w in words:
        groups.setdefault(w[:1], []).append(w[1:])
    alts = [re.escape(k) + _trie(v) for k, v in sorted(groups.items()) if k]
    body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return f"(?:{body})?" if "" in words else body


def _verb_forms(verbs: str) -> list[str]:
    return [v.replace("[sz]", c) for v in verbs.split("|") for c in ("s", "z")
            if "[sz]" in v or c == "s"]


_VERB = re.compile(rf"\b{_trie(_verb_forms(SPEECH_VERBS))}\b")
# Verbs that put the speaker after them in news style ("..., said Ana Ruiz."); "told X" names the
# listener, so it is not among them.
_INVERTED = frozenset(
    "said says added adds continued explained noted notes wrote writes replied answered insisted "
    "stated warned argued claimed recalled remarked declared stressed acknowledged admitted "
    "suggested commented asserted explains warns argues insists claims stresses thinks believes "
    "continues replies answers asserts".split())
_ACCORDING = re.compile(r"\b[Aa]ccording to\s+")
_QUOTE = re.compile(r"[“\"«][^“”\"«»]{12,}[”\"»]|[“\"«][^“”\"«»]{12,}$|^[^“”\"«»]{12,}[”\"»]")
_TOKEN = re.compile(r"[^\W\d_][\w'’\-]*\.?|\S")
_CLOSING = frozenset({",", "”", '"', "»", "’"})
# A run of capitalised words (with name particles) in running text: candidate names.
_UPPER = "A-ZÀ-ÖØ-Þ"
_CAPS = re.compile(rf"[{_UPPER}][\w'’\-]*\.?(?:\s+(?:(?:de|van|von|der|den|bin|ibn|al|da|di|du|del|dos|la|le)\s+)*"
                   rf"[{_UPPER}][\w'’\-]*\.?)+")  # two words or more: one alone is no evidence

# Words between the subject and the verb: "Lavrov has repeatedly said".
_ADVERBS = frozenset(
    "also further then later repeatedly previously firmly again has have had was is once clearly "
    "openly publicly however reportedly recently earlier today yesterday separately simply only "
    "would will could may might just even still".split())
_PARTICLES = frozenset("de van von der den bin ibn al da di du del dos la le".split())
# Capitalised at a sentence start or in headlines, never name words.
_NOT_NAMES = frozenset(
    "the this that these those it its in on at but and or nor however meanwhile furthermore "
    "additionally moreover when while as if a an he she they we i you both since for so apparently "
    "speaking there here many some most all any each every few several other such no our your his "
    "her their my one after before during from with without under over between among about "
    "against through despite following unlike like of to by until within across amid behind beyond "
    "near towards upon via because although though unless whether once where why what which who "
    "whom how also still even only just now then later earlier today yesterday tomorrow last next "
    "instead indeed thus therefore nevertheless nonetheless overall finally eventually recently "
    "currently previously separately elsewhere perhaps maybe already asked according is was are "
    "were has have had will would can could should may might must do does did not yes me "
    "monday tuesday wednesday thursday friday saturday sunday january february march april june "
    "july august september october november december".split())
# Titles before a name. Honorifics only ever precede a name; offices are also role nouns.
_HONORIFICS = {"mr": "m", "mrs": "f", "ms": "f", "miss": "f", "mx": "", "dr": "", "sir": "m",
               "dame": "f", "lord": "m", "lady": "f", "prof": "", "professor": "", "rev": "",
               "reverend": "", "mme": "f", "mlle": "f", "sen": "", "rep": "", "gov": "", "gen": "",
               "col": "", "capt": "", "lt": "", "sgt": "", "maj": "", "adm": "", "cllr": "",
               "insp": "", "det": "", "supt": ""}
_OFFICES = frozenset(
    "president minister premier chancellor secretary general governor senator congressman "
    "congresswoman mayor king queen prince princess emperor pope cardinal archbishop bishop imam "
    "rabbi sheikh ayatollah judge justice ambassador envoy commissioner chairman chairwoman "
    "director chief executive commander admiral colonel captain major lieutenant sergeant "
    "inspector detective superintendent constable officer coach manager spokesman spokeswoman "
    "spokesperson speaker leader head boss diplomat official aide adviser advisor "
    "representative prosecutor attorney".split())
# Words qualifying a title ("Foreign Minister", "Deputy Prime Minister"), not name words.
_QUALIFIERS = frozenset(
    "foreign prime deputy vice acting former interim shadow home interior defence defense health "
    "finance economy trade justice culture education energy environment transport labour "
    "labor first senior top state federal national regional district county city party "
    "opposition army police managing executive general attorney".split())
# Roles that only ever refer to a person introduced with that role ("a Kremlin spokesman said"
# is not the foreign minister named before).
_ANONYMOUS = frozenset("spokesman spokeswoman spokesperson official aide adviser advisor source "
                       "representative diplomat".split())
# Head words of organisations and places: a name holding one is not a person.
_ORG_WORDS = frozenset(
    "ministry council party bank group inc ltd llc plc corp corporation co company agency "
    "commission union club fc united association department office government police court "
    "committee authority board bureau institute institution foundation trust fund federation "
    "league organisation organization university college school hospital service services "
    "network news radio tv television channel times post journal herald telegraph tribune "
    "gazette press media agency airways airlines motors industries holdings partners capital "
    "securities insurance energy oil gas petroleum telecom systems technologies labs studios "
    "records pictures army navy force forces guard command parliament assembly senate congress "
    "house palace kremlin cabinet administration treasury exchange market markets street square "
    "road avenue city state states republic kingdom county province region island islands "
    "democrats republicans dems conservatives tories greens socialists liberals nations church "
    "festival awards cup championship olympics games stadium centre center airport station "
    "watch international society alliance coalition movement front brigade network industry "
    "research partnership consortium charity unit units societies programme program index code "
    "survey commentary".split())


@dataclass(frozen=True)
class Mention:
    """What a subject phrase refers to.

    kind: "person" (name words), "surname" (one untitled word: a person only if the document
    names someone so), "role" (a role noun, resolved to a known holder) or "pronoun".
    """

    kind: str
    words: tuple[str, ...] = ()
    gender: str = ""                       # "m"/"f" from an honorific, "" unknown
    role: tuple[str, frozenset[str]] | None = None  # (head noun, qualifiers), lowercase


@dataclass(frozen=True)
class Known:
    """A person the document names: where, as what name, with which roles."""

    sentence: int
    name: str
    roles: frozenset[tuple[str, frozenset[str]]]
    gender: str = ""  # from an honorific ("Mrs Ruiz")


# ---------------------------------------------------------------------------------------------
# Names and name variants


def _plain(word: str) -> str:
    return word.rstrip(".").lower()


# Entries of each word and name cache below. Indexing all of BBC (2,225 articles) fills ~15,000 of
# 65,536 in each, ~17 MB held, and a larger archive would fill them all (~70 MB); with 8,192 the hits
# are the same within 0.2% (most repeats are within one article) and the same time is spent. The
# indexer also empties them after each embedding batch (clear_caches): then they hold one batch's
# names, not ~11 MB at 2,225 BBC articles and filling as the collection grows, in the same time
# (attributing those articles: 1.07-1.17 s of CPU keeping them, 0.98-1.13 s emptied every 70).
CACHE_SIZE = 8192


@lru_cache(maxsize=CACHE_SIZE)
def _office(word: str) -> str | None:
    """The office a title word names ("Minister", "Secretary-General"), else None."""
    parts = _plain(word).split("-")
    if parts[-1] in _OFFICES and all(p in _OFFICES or p in _QUALIFIERS for p in parts):
        return parts[-1]
    return None


def _is_title(word: str) -> bool:
    return _plain(word) in _HONORIFICS or _office(word) is not None


def _is_possessive(word: str) -> bool:
    return word.endswith(("'s", "’s", "s'", "s’"))


@lru_cache(maxsize=CACHE_SIZE)
def _is_acronym(word: str) -> bool:
    """"NATO", "MPs", "US-China": a part written in capitals only."""
    for part in word.split("-"):
        core = part.replace("'", "").replace("’", "").replace(".", "")
        core = core[:-1] if core.endswith("s") else core
        if len(core) >= 2 and core.isupper():
            return True
    return False


@lru_cache(maxsize=CACHE_SIZE)
def _name_key(word: str) -> str:
    """Transliteration-tolerant key of a name word: Sergey/Sergei, Zelensky/Zelenskyy/Zelenskiy."""
    w = unicodedata.normalize("NFKD", word.lower())
    w = "".join(c for c in w if c.isalpha())
    w = w.replace("kh", "h").replace("x", "ks").replace("ou", "u").replace("y", "i")
    return re.sub(r"(.)\1+", r"\1", w)


@lru_cache(maxsize=CACHE_SIZE)
def _name_parts(name: str) -> tuple[tuple[str, ...], str]:
    """The name words of a speaker or asked person: honorifics, possessives, acronyms and leading
    titles dropped ("Foreign Minister Sergei Lavrov"; but "John Major", "Mervyn King" keep theirs)."""
    parts, gender = [], ""
    for w in re.findall(r"[^\W\d_][\w'’\-]*", name):
        p = w.lower()
        if p in _HONORIFICS:
            gender = gender or _HONORIFICS[p]
        elif not (p in _NOT_NAMES or p in _PARTICLES or _is_possessive(w) or _is_acronym(w)
                  or w[0].islower()):
            parts.append(w)
    while len(parts) > 1 and (_office(parts[0]) or parts[0].lower() in _QUALIFIERS):
        parts = parts[1:]
    return tuple(parts), gender


@lru_cache(maxsize=CACHE_SIZE)
def same_person(a: str, b: str) -> bool:
    """Do two name strings name one person? Surnames equal up to transliteration; first names,
    when both are given, equal or one an initial/short form of the other; honorifics of one sex."""
    pa, ga = _name_parts(a)
    pb, gb = _name_parts(b)
    if not pa or not pb or (ga and gb and ga != gb):
        return False
    if _name_key(pa[-1]) != _name_key(pb[-1]):
        return False
    if len(pa) > 1 and len(pb) > 1:
        # Given names agree if the first ones do (or one is the other's initial or short form),
        # or a full given name recurs: "George W Bush"/"George Bush", "Singer Sam Endicott"/"Sam Endicott".
        fa, fb = _name_key(pa[0]), _name_key(pb[0])
        ga = {_name_key(w) for w in pa[:-1] if len(w.rstrip(".")) > 1}
        gb = {_name_key(w) for w in pb[:-1] if len(w.rstrip(".")) > 1}
        return fa.startswith(fb) or fb.startswith(fa) or bool(ga & gb)
    return True


# ---------------------------------------------------------------------------------------------
# Subject phrases


def _demonym_like(word: str) -> bool:
    """"Russian", "Chinese", "British": adjectives qualifying a title, not first names."""
    return _is_acronym(word) or (len(word) >= 6 and word.lower().endswith(
        ("ian", "ean", "ese", "ish", "can", "man")))


_DESCRIPTOR = re.compile(r"-[a-z]")


@lru_cache(maxsize=CACHE_SIZE)  # names recur across sentences and documents
def _parse_span(span: tuple[str, ...]) -> Mention | None:
    """Classify a run of capitalised words in subject position (None: not a person)."""
    words = list(span)
    described = [i for i, w in enumerate(words) if _DESCRIPTOR.search(w)]
    if described:  # "Film-maker Spike Lee", "Paris-based Acme": descriptors, not name words
        words = words[described[-1] + 1:]
    while words and _plain(words[0]) in _NOT_NAMES:
        words = words[1:]
    possessive = [i for i, w in enumerate(words) if _is_possessive(w)]
    if possessive:
        words = words[possessive[-1] + 1:]  # "Russia's Ana Ruiz": the possessor is not the speaker
    if not words:
        return None
    titles = [i for i, w in enumerate(words) if _is_title(w)]
    gender, role = "", None
    if titles:
        t = titles[-1]
        head = _office(words[t])
        before = [_plain(w) for w in words[:t]]
        if t < len(words) - 1:
            gender = _HONORIFICS.get(_plain(words[t]), "")
            if head:
                role = (head, frozenset(q for q in before if q not in _OFFICES))
            words = words[t + 1:]
        elif head and (not before or any(
                b in _QUALIFIERS or _is_title(w) or _demonym_like(w)
                for b, w in zip(before, words[:t]))):
            # "the Foreign Minister said", "Russian President said": a role, no name
            return Mention("role", role=(head, frozenset(before)))
        # otherwise the title word is a surname ("John Major said")
    name = [w.rstrip(".") for w in words]
    while len(name) > 2 and _is_acronym(name[-1]):
        name.pop()  # post-nominal letters: "Ian MacDonald QC"
    if any(_is_acronym(w) and len(w) > 1 for w in name) or any(w.lower() in _ORG_WORDS for w in name):
        return None
    if any(w.lower() in _NOT_NAMES or not w[:1].isupper() and w.lower() not in _PARTICLES for w in name):
        return None
    if len(name) >= 2 or titles:
        return Mention("person", tuple(name), gender, role)
    return Mention("surname", tuple(name))


def _is_cap(tok: str) -> bool:
    return tok[:1].isupper() and tok[:1].isalpha()


def _role_after_determiner(tokens: list[str]) -> tuple[Mention | None, int]:
    """"the foreign minister", "Russia's foreign minister": tokens end with a role head noun.
    Returns the role and the index of its determiner."""
    head = _office(tokens[-1])
    if head is None or not tokens[-1].islower():
        return None, len(tokens)
    quals: list[str] = []
    for k in range(len(tokens) - 2, max(-1, len(tokens) - 6), -1):
        tok = tokens[k]
        low = _plain(tok)
        if low in ("the", "his", "her") or _is_possessive(tok):
            return Mention("role", role=(head, frozenset(quals))), k
        if not tok[:1].isalpha() or low in _NOT_NAMES:
            break
        quals.append(low)
    return None, len(tokens)


def _subject_before(tokens: list[str], common: Callable[[tuple[str, ...]], bool]
                    ) -> tuple[Mention | None, int]:
    """The subject ending right before a speech verb ("Ana Ruiz has said", "he said"), and the
    index of the token it starts at."""
    toks = list(tokens)
    while toks and (_plain(toks[-1]) in _ADVERBS or (toks[-1] == "," and len(toks) > 1
                                                     and _plain(toks[-2]) == "however")):
        toks.pop()
    if toks and toks[-1] == "," and len(toks) > 1 and _plain(toks[-2]) == "however":
        toks = toks[:-2]
    n = len(toks)
    if not toks:
        return None, n
    last = toks[-1]
    if last.lower() in ("he", "she"):  # not "they": a group, not the last named person
        return Mention("pronoun", gender="m" if last.lower() == "he" else "f"), n - 1
    if _is_cap(last):
        i = n - 1
        while i > 0 and (_is_cap(toks[i - 1]) or toks[i - 1] in _PARTICLES):
            i -= 1
        if _is_possessive(last):
            return None, i  # "the West's continued backing": a possessive is never a subject
        if i < n - 1 and not any(t[:1].isalnum() for t in toks[:i]) and common(tuple(toks[i:])):
            i += 1  # "Singer Sam Endicott said": a common noun capitalised at the sentence start
        return _parse_span(tuple(toks[i:])), i
    if last == ",":  # "Ana Ruiz, the port's harbour master, said"
        j = n - 2
        while j >= 0 and toks[j] != "," and n - j < 14:
            j -= 1
        if j > 0 and toks[j] == ",":
            inner = toks[j + 1:-1]
            person, start = _subject_before(toks[:j], common)
            # An office in between, or a full name before it ("Chris Hawkins, host of the chart show, said").
            if inner and person is not None and (
                    (any(_office(t) for t in inner) and person.kind in ("person", "surname"))
                    or (person.kind == "person" and len(person.words) > 1)):
                return person, start
        return None, n
    if last.lower() == "who" and n > 2 and toks[-2] == ",":  # "critic Paul Connolly, who said"
        person, start = _subject_before(toks[:-2], common)
        if person is not None and person.kind == "person" and len(person.words) > 1:
            return person, start
        return None, n
    return _role_after_determiner(toks)


def _subject_after(tokens: list[str]) -> Mention | None:
    """The subject right after "said" or "according to" ("said farmer Ana Ruiz")."""
    toks = tokens[:8]
    i = 0
    while i < len(toks) and i < 4 and toks[i][:1].islower() and toks[i].isalpha():
        i += 1  # determiners and role nouns before a name: "the harbour master Petra Olsen"
    j = i
    while j < len(toks) and (_is_cap(toks[j]) or (j > i and toks[j] in _PARTICLES)):
        j += 1
    if j > i:
        span = toks[i:j]
        if _is_possessive(span[-1]):  # "according to Russia's foreign minister"
            k = j
            while k < len(toks) and k - j < 4 and toks[k].isalpha() and toks[k].islower():
                k += 1
                if _office(toks[k - 1]):
                    return Mention("role", role=(_office(toks[k - 1]), frozenset(
                        _plain(t) for t in toks[j:k - 1])))
            return None
        if i and _office(toks[i - 1]) and len(span) == 1:
            return _parse_span((toks[i - 1].capitalize(), *span))  # "said coach Brandt"
        return _parse_span(tuple(span))
    if i:
        return _role_after_determiner(toks[:i])[0]
    return None


def _after_closing(tokens: list[str]) -> bool:
    """Does the verb follow a comma or closing quote (adverbs aside): "...,” said Ana Ruiz"?"""
    for tok in reversed(tokens):
        if _plain(tok) not in _ADVERBS:
            return tok in _CLOSING
    return False


def _mentions(sentence: str, common: Callable[[tuple[str, ...]], bool]) -> list[Mention]:
    """Subjects of the sentence's statements, best first: an attribution set off by a comma or a
    closing quote ("..., the minister added.") is the sentence's own; the others in text order
    ("He accused Zelensky of ..., which Moscow rejects")."""
    found: list[tuple[bool, int, Mention]] = []
    if "ccording to" in sentence:
        for m in _ACCORDING.finditer(sentence):
            sub = _subject_after(_TOKEN.findall(sentence[m.end():m.end() + 120]))
            if sub:
                found.append((False, m.start(), sub))
    for m in _VERB.finditer(sentence):
        if _inside_quote(sentence, m.start()):
            continue  # the quoted words' own "X said" is not who is speaking
        window = sentence[max(0, m.start() - 160):m.start()]
        before = _TOKEN.findall(window)
        sub = None
        if m.group() in _INVERTED and _after_closing(before):
            sub, attached = _subject_after(_TOKEN.findall(sentence[m.end():m.end() + 120])), True
        if sub is None:
            at_start = common if m.start() <= 160 else _never
            sub, start = _subject_before(before, at_start)
            attached = 0 < start <= len(before) and before[start - 1] in _CLOSING
        if sub:
            found.append((not attached, m.start(), sub))
    found.sort(key=lambda x: x[:2])
    return [s for _, _, s in found]


def _inside_quote(sentence: str, pos: int) -> bool:
    """Is `pos` inside quoted words? Curly quotes open unambiguously; a straight quote may be a
    stray closing one left by sentence splitting, so it counts only with a closing one after."""
    head = sentence[:pos]
    return (head.count("“") > head.count("”") or head.count("«") > head.count("»")
            or (head.count('"') % 2 == 1 and '"' in sentence[pos:]))


def _never(_: tuple[str, ...]) -> bool:
    return False


def _common_words(text: str) -> Callable[[tuple[str, ...]], bool]:
    """Is the first word of a name span that starts a sentence a capitalised common word, not a
    name ("Singer Sam Endicott said")? Yes if the document uses it in lowercase, or names the
    rest of a three-word span on its own elsewhere."""
    memo: dict[tuple[str, ...], bool] = {}

    def used_lowercase(low: str) -> bool:
        i = text.find(low)
        while i != -1:
            end = i + len(low)
            if (i == 0 or not text[i - 1].isalpha()) and (end == len(text) or not text[end].isalpha()):
                return True
            i = text.find(low, end)
        return False

    def common(span: tuple[str, ...]) -> bool:
        if span not in memo:
            low = span[0].lower()
            memo[span] = (low != span[0] and used_lowercase(low)) or (
                len(span) >= 3 and text.count(" ".join(span[1:])) > text.count(" ".join(span)))
        return memo[span]
    return common


# ---------------------------------------------------------------------------------------------
# The document's cast: who it names, as what


def _title_case(sentence: str) -> bool:
    """Headlines capitalise every word but short function words, so capitalisation says nothing
    about names there; running text has lowercase words of four letters or more, or ends in a stop."""
    words = sentence.split()
    return (len(words) >= 3 and not sentence.rstrip().endswith((".", "!", "?", "”", '"'))
            and not any(w[0].islower() and len(w) >= 4 for w in words))


_APPOSITIVE = re.compile(r",\s+((?:the|his|her|[A-Z][\w\-]*['’]s)\s+(?:[\w\-]+\s+){0,3}?)(\w+)")


@lru_cache(maxsize=CACHE_SIZE)
def _span_of(text: str) -> tuple[tuple[str, ...], Mention | None]:
    words = tuple(_TOKEN.findall(text))
    return words, _parse_span(words)


def _cast(sentences: list[str], common: Callable[[tuple[str, ...]], bool]) -> list[Known]:
    """Every person the document names with full evidence (two name words, or a title)."""
    cast: list[Known] = []
    for i, sent in enumerate(sentences):
        headline = None
        for m in _CAPS.finditer(sent):
            words, mention = _span_of(m.group())
            if mention is None or mention.kind != "person":
                continue
            if (m.start() < 3 and not sent[:m.start()].strip(" “\"‘'([") and not _is_title(words[0])
                    and common(words)):  # "Singer Sam Endicott": a common noun starts the sentence
                mention = _parse_span(words[1:])
                if mention is None or mention.kind != "person":
                    continue
            if headline is None:
                headline = _title_case(sent)
            if headline:
                break
            roles = {mention.role} if mention.role else set()
            before = sent[max(0, m.start() - 40):m.start()].split()
            if before and before[-1].islower() and _office(before[-1]):  # "party leader Jo Weller"
                roles.add((_office(before[-1]), frozenset(_plain(w) for w in before[-3:-1]
                                                          if w.islower())))
            after = _APPOSITIVE.match(sent, m.end())
            if after and _office(after.group(2)):  # "Ana Ruiz, the port's manager"
                quals = [_plain(w) for w in after.group(1).split()[1:]]
                roles.add((_office(after.group(2)), frozenset(quals)))
            cast.append(Known(i, " ".join(mention.words), frozenset(roles), mention.gender))
    return cast


def _nearest(candidates: list[Known], at: int) -> Known | None:
    """The candidate named last at or before sentence `at`, else the first named after it."""
    before = [k for k in candidates if k.sentence <= at]
    if before:
        return max(before, key=lambda k: k.sentence)
    return min(candidates, key=lambda k: k.sentence) if candidates else None


def _full_name(words: tuple[str, ...], cast: list[Known], at: int) -> str:
    """A surname completed to the document's full form of that person ("Weller" -> "Jonas Weller")."""
    name = " ".join(words)
    full = [k for k in cast if " " in k.name and same_person(k.name, name)]
    best = _nearest(full, at)
    return best.name if best else name


def _role_fits(role: tuple[str, frozenset[str]], roles: frozenset) -> bool:
    head, quals = role
    return any(h == head and (quals <= q or not q) for h, q in roles)


def _pronoun(m: Mention, cast: list[Known], at: int, sentence: str, history: list[str | None],
             genders: dict[str, str]) -> str | None:
    """"he said"/"she said": the last speaker, unless known to be of the other sex; then a person
    the same sentence names ("Arnold, from Kent, ... she said" after a man spoke), then the last
    speaker known to be of the pronoun's sex, else nobody."""
    last = next((h for h in reversed(history) if h), None)
    if last is not None and genders.get(last, m.gender) == m.gender:
        return last
    for tok in _TOKEN.findall(sentence):
        if _is_cap(tok) and _plain(tok) not in _NOT_NAMES:
            for k in cast:
                if same_person(k.name, tok) and genders.get(_full_name((tok,), cast, at), m.gender) == m.gender:
                    return _full_name((tok,), cast, at)
    return next((h for h in reversed(history) if h and genders.get(h) == m.gender), None)


def _resolve(m: Mention, cast: list[Known], at: int, sentence: str, history: list[str | None],
             genders: dict[str, str]) -> str | None:
    last = next((h for h in reversed(history) if h), None)
    if m.kind == "pronoun":
        return _pronoun(m, cast, at, sentence, history, genders)
    if m.kind == "person":
        return _full_name(m.words, cast, at) if len(m.words) == 1 else " ".join(m.words)
    if m.kind == "surname":
        known = [k for k in cast if same_person(k.name, m.words[0])]
        return _full_name(m.words, cast, at) if known else None
    # A role: the person the document names with it; else the last speaker if nothing known
    # about them contradicts it (an anonymous spokesman is never the minister named before).
    holders = [k for k in cast if _role_fits(m.role, k.roles)]
    holder = _nearest(holders, at)
    if holder is not None:
        return _full_name(tuple(holder.name.split()), cast, at)
    if last is None or m.role[0] in _ANONYMOUS:
        return None
    last_roles = frozenset(r for k in cast if same_person(k.name, last) for r in k.roles)
    return last if not last_roles else None


def attribute(sentences: list[str], paragraph_ids: list[int]) -> list[str | None]:
    """Speaker of each sentence of one document (None: not a person's statement, or unknown).

    Args:
        sentences: the document's sentences in order.
        paragraph_ids: the paragraph each sentence belongs to; quotes are attributed across a
            paragraph because a quote often spans sentences and names its speaker only once.
    """
    common = _common_words("\n".join(sentences))
    cast = _cast(sentences, common)
    genders = {k.name: k.gender for k in cast if k.gender}  # who is known as he or she
    speakers: list[str | None] = []
    for i, sent in enumerate(sentences):
        name = None
        for mention in _mentions(sent, common):
            name = _resolve(mention, cast, i, sent, speakers, genders)
            if name:
                if mention.kind == "pronoun":
                    genders.setdefault(name, mention.gender)
                break
        speakers.append(name)
    # Spread a speaker to the other quoted sentences of its paragraph.
    by_paragraph: dict[int, list[int]] = {}
    for i, pid in enumerate(paragraph_ids):
        by_paragraph.setdefault(pid, []).append(i)
    for idx in by_paragraph.values():
        named = [speakers[i] for i in idx if speakers[i]]
        if not named:
            continue
        for i in idx:
            if speakers[i] is None and _QUOTE.search(sentences[i]):
                speakers[i] = named[0]
    return speakers


def clear_caches() -> None:
    """Empty the word and name caches used while attributing (not those of questions): the
    indexer calls it after each embedding batch so that they do not grow with the collection."""
    for cached in (_office, _is_acronym, _name_key, _name_parts, same_person, _parse_span, _span_of):
        cached.cache_clear()


def is_quote(sentence: str) -> bool:
    """Does the sentence carry a direct quotation (the speaker's own words)?"""
    return bool(_QUOTE.search(sentence))


@lru_cache(maxsize=4096)  # asked for every candidate sentence; few distinct speakers per question
def speaker_matches(speaker: str | None, person: str) -> bool:
    """True if a sentence's speaker is the person asked about: the same person up to spelling
    (`same_person`), or, for a one-word question ("What did Xi say?"), any of the speaker's names."""
    if not speaker or not person:
        return False
    if same_person(speaker, person):
        return True
    asked, _ = _name_parts(person)
    said, _ = _name_parts(speaker)
    return len(asked) == 1 and any(_name_key(asked[0]) == _name_key(w) for w in said)


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
    return with_variants(f"{person} {topic}" if person else question)
