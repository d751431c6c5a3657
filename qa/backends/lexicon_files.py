"""The local backend's files for the lexicon (qa/lexicon.py): one .npy per array, memory-mapped.

`load` checks what costs nothing per sentence (dtypes, lengths, end points); `check_contents` the
values (offsets ascending, ids in range), which snapshot.py runs at open for small versions and
`qa check` for large ones.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import lexicon
from ..errors import IndexCorruptError
from ..lexicon import Lexicon
from ..types import Chunk
from . import npyfile

FILES = {"ids": "sent_terms.npy", "start": "sent_term_start.npy", "flags": "sent_flags.npy",
         "distinct": "sent_distinct.npy", "names": "sent_names.npy", "name_start": "sent_name_start.npy",
         "same": "same_words.npy", "same_start": "same_words_start.npy"}
NAME_WORDS = "name_words.json"
DTYPES = {"ids": np.int32, "start": np.int64, "flags": np.uint8, "distinct": np.int32, "names": np.int32,
          "name_start": np.int64, "same": np.int64, "same_start": np.int64}


def save(lex: Lexicon, directory: Path) -> None:
    for name, file in FILES.items():
        np.save(directory / file, getattr(lex, name), allow_pickle=False)
    (directory / NAME_WORDS).write_text(json.dumps(list(lex.name_words), ensure_ascii=False), "utf-8")


def write(chunks: Iterable[Chunk], vocab: dict[str, int], directory: Path, scratch: Path) -> None:
    """The lexicon of `chunks` built straight into its files: the same bytes as
    save(lexicon.build(chunks, vocab), directory). The per-sentence columns are appended to their
    .npy files as they are made (npyfile.Appender) and same_words reads the term ids back from
    their file a block of passages at a time, so what is held is a buffer per column, the name
    words and 8 bytes a passage (bounds), not 4 bytes a term occurrence and ~25 a sentence.
    `scratch`: an empty folder for same_words' temporary files."""
    with ExitStack() as files:
        columns = {name: files.enter_context(npyfile.Appender(directory / FILES[name], code))
                   for name, code in lexicon.TYPECODES.items()}
        name_words, bounds = lexicon.fill(chunks, vocab, columns)
    same, same_start = lexicon.same_words(npyfile.NpyRows(directory / FILES["ids"]), np.frombuffer(bounds, np.int64),
                                          scratch)
    del bounds
    np.save(directory / FILES["same"], same, allow_pickle=False)
    np.save(directory / FILES["same_start"], same_start, allow_pickle=False)
    (directory / NAME_WORDS).write_text(json.dumps(list(name_words), ensure_ascii=False), "utf-8")


def load(directory: Path, sentences: int, vocab_size: int, passages: int) -> Lexicon:
    """Map the arrays and check their shapes and end points; raises IndexCorruptError if they do
    not fit the index."""
    a = {name: np.asarray(np.load(directory / file, allow_pickle=False, mmap_mode="r")) for name, file in FILES.items()}
    words = json.loads((directory / NAME_WORDS).read_text("utf-8"))
    ok = (isinstance(words, list) and set(map(type, words)) <= {str}  # read in C: ~10,000 words
          and all(a[k].ndim == 1 and a[k].dtype == t for k, t in DTYPES.items())
          and len(a["start"]) == len(a["name_start"]) == sentences + 1
          and len(a["flags"]) == len(a["distinct"]) == sentences and len(a["same_start"]) == passages + 1
          and all(int(a[s][0]) == 0 and int(a[s][-1]) == len(a[v])
                  for s, v in (("start", "ids"), ("name_start", "names"), ("same_start", "same"))))
    if not ok:
        raise IndexCorruptError("the sentence term arrays disagree with the passages")
    return Lexicon(a["ids"], a["start"], a["flags"], a["distinct"], a["names"], a["name_start"], tuple(words),
                   a["same"], a["same_start"])


def check_contents(lex: Lexicon, vocab_size: int, passages: int) -> None:
    """Every value in range (reads the whole arrays)."""
    def within(x, hi):
        return not len(x) or 0 <= int(x.min()) <= int(x.max()) < hi

    ok = (not np.any(np.diff(lex.start) < 0) and not np.any(np.diff(lex.name_start) < 0)
          and not np.any(np.diff(lex.same_start) < 0) and within(lex.ids, vocab_size)
          and within(lex.names, len(lex.name_words)) and within(lex.same, passages)
          and not np.any(lex.distinct > np.diff(lex.start)))
    if not ok:
        raise IndexCorruptError("the sentence term arrays disagree with the passages")
