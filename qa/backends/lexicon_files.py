"""The local backend's files for the lexicon (qa/lexicon.py): one .npy per array, checked at load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError
from ..lexicon import Lexicon

FILES = {"ids": "sent_terms.npy", "start": "sent_term_start.npy", "flags": "sent_flags.npy",
         "distinct": "sent_distinct.npy", "names": "sent_names.npy", "name_start": "sent_name_start.npy",
         "same": "same_words.npy", "same_start": "same_words_start.npy"}
NAME_WORDS = "name_words.json"


def save(lex: Lexicon, directory: Path) -> None:
    for name, file in FILES.items():
        np.save(directory / file, getattr(lex, name), allow_pickle=False)
    (directory / NAME_WORDS).write_text(json.dumps(list(lex.name_words), ensure_ascii=False), "utf-8")


def load(directory: Path, sentences: int, vocab_size: int, passages: int) -> Lexicon:
    """Read and check the arrays; raises IndexCorruptError if they do not fit the index."""
    arrays = {name: np.load(directory / file, allow_pickle=False) for name, file in FILES.items()}
    ids, start, flags, distinct = arrays["ids"], arrays["start"], arrays["flags"], arrays["distinct"]
    names, name_start = arrays["names"], arrays["name_start"]
    same, same_start = arrays["same"], arrays["same_start"]
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
          and not np.any(distinct > np.diff(start))
          and same.ndim == same_start.ndim == 1 and same.dtype == same_start.dtype == np.int64
          and len(same_start) == passages + 1 and same_start[0] == 0 and same_start[-1] == len(same)
          and not np.any(np.diff(same_start) < 0) and (not len(same) or 0 <= same.min() <= same.max() < passages))
    if not ok:
        raise IndexCorruptError("the sentence term arrays disagree with the passages")
    return Lexicon(ids, start, flags, distinct, names, name_start, tuple(words), same, same_start)
