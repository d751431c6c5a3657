"""What is stored in Milvus and how: the collections' schemas, the packing of blobs into text
fields, the expressions (every value enters one through `quote` or as an integer), and the BM25
scoring of a version's passages."""

from __future__ import annotations

import base64
import binascii
import json
import struct
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Sequence

import numpy as np

from ...errors import QAError
from ...types import Chunk, DocInfo

# 3: rows carry the version that added them; one meta row per version; terms per version.
# 4: a passage's `data` field as pack_passage writes it (PACKED), no longer zlib + JSON.
FORMAT = 4
READABLE = (3, 4)  # formats this code serves; an update in place keeps writing its collection's format
PACKED = "p4:"  # the start of a format 4 `data` field (a format 3 one is base64: never holds ':')
VARCHAR_MAX = 65_535          # Milvus' portable VARCHAR limit (bytes)
INSERT_BATCH = 256
_ANALYZER = {"tokenizer": "standard", "filter": ["lowercase"]}
# bm25s' defaults ("lucene"), so the lexical ranking follows the local backend's.
BM25_K1, BM25_B = 1.5, 0.75


# -- expressions ----------------------------------------------------------------------------------
def quote(value: str) -> str:
    """A Milvus string literal holding exactly `value`: the only way text enters an expression."""
    if not isinstance(value, str):
        raise TypeError("quote() takes text")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def like_contains(value: str) -> str:
    """A LIKE pattern literal matching text that contains `value`. % and _ are escaped; Milvus'
    LIKE has no escape for a backslash, so one matches any single character there."""
    pattern = "".join("_" if ch == "\\" else "\\" + ch if ch in "%_" else ch for ch in value)
    return quote("%" + pattern + "%")


def ints(name: str, values) -> str:
    return f"{name} in [{', '.join(str(int(v)) for v in values)}]"


def visible(version: int, hidden: Sequence[int]) -> str:
    """The rows of passages or documents a reader of `version` sees: added by then, and not of a
    document retired by then (retired documents are listed until their rows are deleted)."""
    expr = f"added <= {int(version)}"
    return expr + (f" and not ({ints('doc', sorted(hidden))})" if hidden else "")


def meta_doc(version: int) -> int:
    """The doc key of a version's meta row in {stem}_docs (documents have keys >= 0)."""
    return -int(version)


# -- packing ------------------------------------------------------------------------------------
def b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def unb64(text: str, dtype) -> np.ndarray:
    return np.frombuffer(binascii.a2b_base64(text), dtype=dtype)


def pack(obj) -> str:
    return base64.b64encode(zlib.compress(json.dumps(obj, ensure_ascii=False).encode("utf-8"), 6)).decode("ascii")


def unpack(text: str):
    return json.loads(zlib.decompress(base64.b64decode(text)).decode("utf-8"))


def pack_vectors(vectors: np.ndarray) -> str:
    """A passage's vector and its sentence vectors as text, in float16 as the local backend stores
    them: the engine then scores exactly the values it scores there, and the text (the largest
    field of a row) is half as long to store, send and decode as float32's."""
    text = "f2:" + b64(np.asarray(vectors, np.float16))
    if len(text) > VARCHAR_MAX:
        raise QAError(f"a passage has too many sentences ({len(vectors)}) to store in Milvus")
    return text


def stored_vectors(text: str, dim: int) -> np.ndarray:
    """The vectors of pack_vectors' text in the type they were stored in: float16, or float32 in
    rows written before float16 was the rule ("f4:", still read)."""
    kind, data = text[:3], text[3:]
    return unb64(data, np.float16 if kind == "f2:" else np.float32).reshape(-1, dim)


def unpack_vectors(text: str, dim: int) -> np.ndarray:
    return stored_vectors(text, dim).astype(np.float32)


class NameNumbers:
    """Numbers of the name words in the passages a backend decodes (a question renumbers the names
    it fetched with array operations instead of word by word). Never cleared: bounded by the
    distinct name words of a collection."""

    def __init__(self):
        self.words: list[str] = []
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._frozen: tuple[str, ...] = ()

    @property
    def ids(self) -> dict[str, int]:
        """word -> its number (grows; a number never changes, so a reader may hold it)."""
        return self._ids

    def snapshot(self) -> tuple[str, ...]:
        """The words numbered so far, as a tuple made again only when words were added since."""
        frozen = self._frozen
        if len(frozen) != len(self.words):
            with self._lock:
                frozen = self._frozen = tuple(self.words)
        return frozen

    def of(self, words: Sequence[str]) -> np.ndarray:
        ids = self._ids
        if any(w not in ids for w in words):
            with self._lock:  # two threads decoding at once must not give two words one number
                for w in words:
                    if w not in ids:
                        self.words.append(w)
                        ids[w] = len(self.words) - 1
        return np.fromiter(map(ids.__getitem__, words), np.int32, len(words))


# The per-sentence numbers of a StoredPassage, one row each (see StoredPassage.per_sentence).
TERM_COUNT, FLAGS, DISTINCT, NAME_COUNT, CHARS = range(5)


@dataclass(frozen=True, eq=False)
class StoredPassage:
    """A passage row decoded as questions use it; a backend copies it into its arena (arena.py) and
    keeps it there (decoding the packed fields is most of a question's own time otherwise)."""

    chunk: Chunk
    # float32 views of one decoded buffer. Converted from float16 once here: numpy's conversion
    # (about 1.5 ns a value here) at every question costs more than the rest of its fetch.
    vector: np.ndarray        # (1, dim): the passage's vector
    sent_vectors: np.ndarray  # (sentences, dim)
    terms: np.ndarray         # int32: its sentences' term ids, one after another
    # int32 (5, sentences): per sentence, how many of `terms` and of `names` are its, its flags,
    # distinct terms and characters (rows TERM_COUNT...CHARS).
    per_sentence: np.ndarray
    names: np.ndarray         # int32: the first words of its names, sentence after sentence (NameNumbers)
    same: tuple[int, ...]     # backend ids of the passages its commit found carrying the same words
    added: int                # the version that added it


def pack_passage(chunk: Chunk, terms: np.ndarray, term_counts: np.ndarray, flags: np.ndarray,
                 distinct: np.ndarray, names: list[list[str]], same: np.ndarray) -> str:
    """A passage and its lexicon rows as the `data` text of format 4: JSON of its strings and one
    base64 buffer of its numbers, little-endian: int32 [start, end, sentences n, terms t, same s],
    the sentences' (start, end), StoredPassage.per_sentence (5 rows of n), the t term ids; then the
    s partner ids in int64. Decoding is one json.loads, one b64decode and views of the buffer: a
    row with its vectors decodes in about half the time of format 3's zlib + JSON lists."""
    n = len(chunk.sentences)
    bounds = np.array(chunk.sentences, np.int64).reshape(n, 2)
    rows = np.zeros((5, n), np.int64)
    rows[TERM_COUNT], rows[FLAGS], rows[DISTINCT] = term_counts, flags, distinct
    rows[NAME_COUNT], rows[CHARS] = [len(x) for x in names], bounds[:, 1] - bounds[:, 0]
    numbers = np.concatenate([[chunk.start, chunk.end, n, len(terms), len(same)], bounds.reshape(-1),
                              rows.reshape(-1), np.asarray(terms, np.int64)])
    if numbers.min() < -2**31 or numbers.max() >= 2**31:
        raise QAError(f"{chunk.doc_id}: a passage's numbers do not fit the stored form")
    raw = numbers.astype("<i4").tobytes() + np.asarray(same, "<i8").tobytes()
    return PACKED + json.dumps([chunk.doc_id, chunk.text, list(chunk.speakers), [w for x in names for w in x],
                                base64.b64encode(raw).decode("ascii")], ensure_ascii=False)


def passage_chunk(data: str) -> Chunk:
    """The Chunk of a passage's `data` field (either format)."""
    if data.startswith(PACKED):
        return _packed(data)[0]
    doc_id, start, end, text, sentences, speakers = unpack(data)["c"]
    return Chunk(doc_id, start, end, text, tuple(tuple(s) for s in sentences), tuple(speakers))


_HEAD = struct.Struct("<5i")


def _packed(data: str) -> tuple[Chunk, np.ndarray, np.ndarray, tuple[str, ...], tuple[int, ...]]:
    """(chunk, per_sentence, term ids, name words, partner ids) of pack_passage's text."""
    doc_id, text, speakers, names, numbers = json.loads(data[len(PACKED):])
    raw = binascii.a2b_base64(numbers)
    start, end, n, t, s = _HEAD.unpack_from(raw)
    body = np.frombuffer(raw, "<i4", 7 * n + t, offset=_HEAD.size)
    bounds = body[:2 * n].tolist()
    chunk = Chunk(doc_id, start, end, text, tuple(zip(bounds[0::2], bounds[1::2])), tuple(speakers))
    same = struct.unpack_from(f"<{s}q", raw, _HEAD.size + 4 * (7 * n + t)) if s else ()
    return chunk, body[2 * n:7 * n].reshape(5, n), body[7 * n:], tuple(names), same


def stored_passage(row: dict, dim: int, numbers: NameNumbers) -> StoredPassage:
    """Decode a passage row's `data` and `svec` fields (see writer.passage_rows), of either format."""
    if not row["data"].startswith(PACKED):
        return _stored_passage_v3(row, dim, numbers)
    chunk, per_sentence, terms, names, same = _packed(row["data"])
    vectors = unpack_vectors(row["svec"], dim)
    return StoredPassage(chunk, vectors[:1], vectors[1:], terms, per_sentence, numbers.of(names), same,
                         int(row["added"]))


def _stored_passage_v3(row: dict, dim: int, numbers: NameNumbers) -> StoredPassage:
    """A row written in format 3: `data` is zlib-compressed JSON in base64."""
    d = unpack(row["data"])
    doc_id, start, end, text, sentences, speakers = d["c"]
    chunk = Chunk(doc_id, start, end, text, tuple(tuple(s) for s in sentences), tuple(speakers))
    per_sentence = np.zeros((5, len(sentences)), np.int32)
    per_sentence[TERM_COUNT], per_sentence[FLAGS], per_sentence[DISTINCT] = d["ts"], d["f"], d["d"]
    per_sentence[NAME_COUNT] = [len(n) for n in d["n"]]
    per_sentence[CHARS] = [e - s for s, e in chunk.sentences]
    vectors = unpack_vectors(row["svec"], dim)
    return StoredPassage(chunk, vectors[:1], vectors[1:], unb64(d["t"], np.int32), per_sentence,
                         numbers.of([w for n in d["n"] for w in n]), tuple(int(p) for p in d["s"]), int(row["added"]))


def doc_info(record: dict) -> DocInfo:
    return DocInfo(**record)


# -- BM25 ---------------------------------------------------------------------------------------
def tokens_of(lexical: str) -> list[str]:
    """A passage's indexed terms as stored in its `lexical` field (an empty passage counts as one
    placeholder token, as in the local backend's bm25s index)."""
    return lexical.split(" ") if lexical else ["\u2400"]


def term_counts(lexical: str) -> tuple[Counter, int]:
    """(how often each term occurs, how many tokens) of a passage's `lexical` field."""
    toks = tokens_of(lexical)
    return Counter(toks), len(toks)


def bm25_scores(query: Sequence[str], counts: Sequence[tuple[Counter, int]], df: dict[str, int | None],
                passages: int, avgdl: float) -> np.ndarray:
    """bm25s' "lucene" score of each passage (its term_counts) for analysed query terms (a term
    asked twice counts twice), from one version's statistics (Milvus' own BM25 counts every row a
    collection holds, including rows other versions see)."""
    query = [t for t in query if df.get(t)]
    if not query or not counts:
        return np.zeros(len(counts))
    tfs = [tf for tf, _ in counts]
    # (terms, passages): each row filled by one map over the passages' counts (C-level lookups).
    tf = np.fromiter(chain.from_iterable(map(dict.get, tfs, repeat(t), repeat(0)) for t in query), np.float64,
                     len(query) * len(tfs)).reshape(len(query), len(tfs))
    n = np.fromiter(map(df.__getitem__, query), np.float64, len(query))
    idf = np.log(1 + (passages - n + 0.5) / (n + 0.5))
    length = np.fromiter((length for _, length in counts), np.float64, len(counts))
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / max(avgdl, 1e-9))
    return (idf[:, None] * tf / (tf + norm)).sum(axis=0)  # summed term after term, in the query's order


# -- schemas ------------------------------------------------------------------------------------
def schemas(dim: int):
    """(passages, documents, terms) schemas of a version."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    p = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    p.add_field("pid", DataType.INT64, is_primary=True)
    p.add_field("doc", DataType.INT64)
    p.add_field("lo", DataType.INT64)
    p.add_field("hi", DataType.INT64)
    p.add_field("added", DataType.INT64)
    p.add_field("lexical", DataType.VARCHAR, max_length=VARCHAR_MAX, enable_analyzer=True, analyzer_params=_ANALYZER)
    p.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    p.add_field("flat", DataType.VARCHAR, max_length=VARCHAR_MAX)
    p.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    p.add_field("data", DataType.VARCHAR, max_length=VARCHAR_MAX)
    p.add_field("svec", DataType.VARCHAR, max_length=VARCHAR_MAX)
    p.add_field("dblob", DataType.VARCHAR, max_length=VARCHAR_MAX)
    p.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["lexical"],
                            output_field_names=["sparse"]))
    d = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    d.add_field("doc", DataType.INT64, is_primary=True)
    d.add_field("added", DataType.INT64)
    d.add_field("info", DataType.VARCHAR, max_length=VARCHAR_MAX)
    d.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field in every collection
    t = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    t.add_field("key", DataType.VARCHAR, max_length=VARCHAR_MAX, is_primary=True)  # term \t version \t commit
    t.add_field("term", DataType.VARCHAR, max_length=VARCHAR_MAX)
    t.add_field("ver", DataType.INT64)
    t.add_field("tid", DataType.INT64)
    t.add_field("df", DataType.INT64)
    t.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)
    return p, d, t


def term_row(term: str, version: int, tid: int, df: int, commit: str = "") -> dict:
    """A term's id and document frequency from `version` on (until a later row for it); `commit`
    tells apart the rows of two writers that both wrote `version` (one of them fails to publish)."""
    return {"key": f"{term}\t{int(version)}\t{commit}", "term": term, "ver": int(version), "tid": int(tid),
            "df": int(df), "dummy": [0.0, 0.0]}
