"""The Milvus backend: passages and everything the engine reads about them, kept in a Milvus server.

App processes hold no index state of their own: passage text, offsets, sentence spans, speakers,
vectors, sentence vectors, the lexicon arrays, document records with their content hashes and the
term statistics all live in Milvus. What a process keeps are caches of one version.

Layout. A collection is three Milvus collections sharing one name stem `{name}__{tag}`:
    {stem}          passages: pid (the backend id), doc number, the doc's first/last pid, the
                    version that added it, the analysed text with a BM25 Function into a sparse
                    field, the normalised text (exact phrases), the passage vector (searched), and
                    packed blobs (chunk + lexicon rows; the passage vector again and the sentence
                    vectors, as read back; on a document's first passage also the document's text
                    and terms, so one query fetches both)
    {stem}_docs     one row per document (its DocInfo as JSON, the version that added it) and one
                    meta row per published version (doc = -version: settings, counts, the documents
                    retired by then)
    {stem}_terms    the vocabulary per version: (term, version) -> (term id, document frequency)
The alias `{name}` names the live collection; its newest meta row names the live version. An
update changes the live collection in place (writer.py: readers filter by version, so none sees
half an update); a rebuild writes a new collection and switches the alias. A backend resolves
(collection, version) once and serves it for its whole life (as LocalBackend serves one folder
version); `QA` moves a process to the live version between questions when `is_current()` says so.

Modules: connection (clients, errors, the writers' lock), schema (schemas, packing, expressions,
BM25), reader (MilvusBackend), arena (the decoded passages a reader keeps, in contiguous arrays),
writer (MilvusWriter).

Filters never paste user text: documents become integer doc numbers (the document table is cached
per version, and `Filter.allows` decides, as in the local backend); exact phrases enter a LIKE
pattern only through `quote` (Milvus Lite 3.2 rejects `filter_params` templating).
"""

from .connection import IndexServerError, cache_dir
from .reader import FOLLOW_SECONDS, GRACE_SECONDS, MilvusBackend
from .schema import FORMAT, like_contains, quote
from .writer import MilvusWriter

__all__ = ["MilvusBackend", "MilvusWriter", "IndexServerError", "cache_dir", "quote", "like_contains", "FORMAT",
           "FOLLOW_SECONDS", "GRACE_SECONDS"]
