"""Per-sentence lexical data, made when the index is built: term ids, answer-type flags, names.

Answering compares a question with a few hundred candidate sentences. Analysing their text at
question time (tokenising, stemming, regexes) cost more than embedding the question, so it is done
once here and kept as flat numpy arrays: the terms of sentence i are ids[start[i]:start[i+1]], in
text order, numbered by the BM25 vocabulary.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .attribution import is_quote
from .errors import IndexCorruptError
from .textutil import terms
from .types import Chunk

NUMBER, DATE, QUOTE = 1, 2, 4  # bits of `flags`

_NUMBER = re.compile(r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"dozens?|hundreds?|thousands?|millions?|billions?|half|percent)\b", re.I)
_DATE = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b(?:January|February|March|April|May|June|July|"
                   r"August|September|October|November|December|Monday|Tuesday|Wednesday|Thursday|"
                   r"Friday|Saturday|Sunday)\b|\b(?:century|decade|years? ago)\b")

# Capitalised words not opening a sentence: names of people, places, bodies.
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z'’\-]+(?:\s+[A-Z][a-z'’\-]+)*")

FILES = {"ids": "sent_terms.npy", "start": "sent_term_start.npy", "flags": "sent_flags.npy",
         "distinct": "sent_distinct.npy", "names": "sent_names.npy", "name_start": "sent_name_start.npy"}
NAME_WORDS = "name_words.json"


@dataclass(frozen=True, eq=False)
class Lexicon:
    ids: np.ndarray     # int32 term ids of all sentences, concatenated in index order
    start: np.ndarray   # int64, one more than there are sentences
    flags: np.ndarray   # uint8 per sentence: NUMBER | DATE | QUOTE
    distinct: np.ndarray  # int32 per sentence: how many different terms it has
    names: np.ndarray   # int32: each name's first word (lower-cased), as an index into name_words
    name_start: np.ndarray  # int64: sentence i's names are names[name_start[i]:name_start[i+1]]
    name_words: tuple[str, ...]

    def save(self, directory: Path) -> None:
        for name, file in FILES.items():
            np.save(directory / file, getattr(self, name), allow_pickle=False)
        (directory / NAME_WORDS).write_text(json.dumps(list(self.name_words), ensure_ascii=False), "utf-8")

    @classmethod
    def load(cls, directory: Path, sentences: int, vocab_size: int) -> "Lexicon":
        """Read and check the arrays; raises IndexCorruptError if they do not fit the index."""
        arrays = {name: np.load(directory / file, allow_pickle=False) for name, file in FILES.items()}
        ids, start, flags, distinct = arrays["ids"], arrays["start"], arrays["flags"], arrays["distinct"]
        names, name_start = arrays["names"], arrays["name_start"]
        words = json.loads((directory / NAME_WORDS).read_text("utf-8"))
        ok = (isinstance(words, list) and all(isinstance(w, str) for w in words)
              and names.ndim == name_start.ndim == 1 and names.dtype == np.int32 and name_start.dtype == np.int64
              and len(name_start) == sentences + 1 and name_start[0] == 0 and name_start[-1] == len(names)
              and not np.any(np.diff(name_start) < 0)
              and (not len(names) or 0 <= int(names.min()) <= int(names.max()) < len(words))
              and ids.ndim == start.ndim == flags.ndim == distinct.ndim == 1 and ids.dtype == np.int32
              and start.dtype == np.int64 and flags.dtype == np.uint8 and distinct.dtype == np.int32
              and len(start) == sentences + 1 and len(flags) == len(distinct) == sentences
              and start[0] == 0 and start[-1] == len(ids) and not np.any(np.diff(start) < 0)
              and (not len(ids) or 0 <= int(ids.min()) <= int(ids.max()) < vocab_size)
              and not np.any(distinct > np.diff(start)))
        if not ok:
            raise IndexCorruptError("the sentence term arrays disagree with the passages")
        return cls(ids, start, flags, distinct, names, name_start, tuple(words))


def build(chunks: list[Chunk], vocab: dict[str, int]) -> Lexicon:
    """Term ids and flags of every sentence of `chunks`, numbered by the BM25 vocabulary."""
    ids: list[int] = []
    start = [0]
    flags, distinct = [], []
    names: list[int] = []
    name_start = [0]
    words: dict[str, int] = {}
    for c in chunks:
        for s, e in c.sentences:
            text = c.text[s - c.start:e - c.start]
            # Every indexed word is in the vocabulary (BM25 was built from the same text).
            sentence_ids = [vocab[t] for t in terms(text) if t in vocab]
            ids.extend(sentence_ids)
            start.append(len(ids))
            distinct.append(len(set(sentence_ids)))
            names.extend(words.setdefault(m.group(0).split()[0].lower(), len(words)) for m in _NAME.finditer(text))
            name_start.append(len(names))
            flags.append((NUMBER if _NUMBER.search(text) else 0) | (DATE if _DATE.search(text) else 0)
                         | (QUOTE if is_quote(text) else 0))
    return Lexicon(np.array(ids, np.int32), np.array(start, np.int64), np.array(flags, np.uint8),
                   np.array(distinct, np.int32), np.array(names, np.int32), np.array(name_start, np.int64),
                   tuple(words))


def segments(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate ranges [starts[i], ends[i]) of positions.

    Returns (positions, owner: which range each position came from, offsets: range i fills
    positions[offsets[i]:offsets[i+1]]).
    """
    lengths = np.asarray(ends, np.int64) - np.asarray(starts, np.int64)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    owner = np.repeat(np.arange(len(lengths)), lengths)
    positions = np.arange(offsets[-1], dtype=np.int64) + (np.asarray(starts, np.int64) - offsets[:-1])[owner]
    return positions, owner, offsets


def segment_reduce(ufunc: np.ufunc, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """ufunc.reduce over each segment values[offsets[i]:offsets[i+1]]; segments must not be empty
    (they are passages' sentences, and the index holds no passage without one)."""
    return ufunc.reduceat(values, offsets[:-1], axis=0)
