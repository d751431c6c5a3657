"""The public engine: `QA(docs_dir, index_dir).ask(question)` over a folder of articles."""

from __future__ import annotations

import logging
import numbers
import os
import re
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

from typing import TYPE_CHECKING

from .errors import BadQuestionError, DocumentsError, QAError
from .types import Answer, DocInfo, DocumentPage, IndexStatus, IndexUpdate, Settings

if TYPE_CHECKING:  # the engine's modules import numpy: kept off `import qa` (e.g. the ingest worker)
    from collections.abc import Mapping

    from .backends import Backend
    from .backends.base import DocEntry, DocSummary
    from .engine import Engine

log = logging.getLogger("qa")

MAX_QUESTION_CHARS = 2000
MAX_K = 50
MAX_NAME_BYTES = 200  # below the usual 255-byte limit of file systems
DOCUMENT_ORDERS = ("newest", "oldest", "title", "outlet")
_DOCUMENT_KEYS = {
    "newest": lambda d: d.doc_id,  # re-sorted below: dates descending, undated last
    "oldest": lambda d: (d.date is None, d.date or "", d.doc_id),
    "title": lambda d: (d.title.casefold(), d.doc_id),
    "outlet": lambda d: ((d.outlet or "\uffff").casefold(), d.title.casefold(), d.doc_id),
}
_INHERITED: list = []  # query models replaced by fresh_model (see there)
FOLLOW_SECONDS = 0.5  # how often a question checks for a version written by another process
UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # and lone surrogates


class QA:
    """Question answering over one folder of articles, with its index kept up to date.

    Args:
        docs_dir: folder of .txt/.md/.html/.pdf/.docx articles (searched recursively).
        index_dir: folder where the index is saved; created if missing. Or a Milvus URI
            (http://host:port, or a Milvus Lite file ending in .db): the index lives there.
        settings: index settings; a change triggers a rebuild.
        progress: show a progress bar while embedding (default: only when many passages).
        embedder: embeds passages and questions (default: the settings' model, exported to ONNX
            beside the index).
        backend: where passages are stored and searched (default: the local folder `index_dir`).
        full_scan: read every file at opening; by default only files whose size or modification
            time changed since they were indexed are read.

    Raises:
        DocumentsError: the folder is missing or holds no readable article.
    """

    def __init__(self, docs_dir: str | os.PathLike = "seeds", index_dir: str | os.PathLike = "embeddings",
                 settings: Settings | None = None, progress: bool | None = None, *,
                 embedder=None, backend: Backend | None = None, full_scan: bool = False):
        from .backends import is_server_location

        self.docs_dir = Path(docs_dir)
        # A Milvus URI is passed on as given; the query model then lives in a local cache folder.
        self.index_location = str(index_dir) if is_server_location(index_dir) else Path(index_dir)
        self.index_dir = Path(index_dir) if isinstance(self.index_location, Path) else _server_cache(index_dir)
        self.settings = settings or Settings()
        self.progress = progress
        self._given_embedder = embedder
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()
        self._checked = 0.0
        self._engine: Engine | None = None
        self._backend = backend
        self.last_update: IndexUpdate = self.refresh(full=full_scan)

    # -- asking ----------------------------------------------------------------------------------
    def ask(self, question: str, k: int = 5, history: list[str] | tuple[str, ...] | None = None,
            sources: list[str] | tuple[str, ...] | None = None, since=None, until=None,
            outlets: list[str] | tuple[str, ...] | None = None,
            authors: list[str] | tuple[str, ...] | None = None) -> Answer:
        """Answer a question with ranked verbatim passages.

        Args:
            question: the question, 1 to 2,000 characters; a phrase in double quotes must appear
                as written in every passage.
            k: how many passages at most (1 to 50).
            history: earlier questions of the conversation, oldest first (for follow-ups).
            sources: if given, only these doc_ids may answer.
            since, until: only articles published on or after / on or before these dates (ISO
                strings or `datetime.date`); undated articles are left out and counted.
            outlets: only articles of these outlets (case and spacing do not matter).
            authors: only articles whose byline names one of these.

        Returns:
            An Answer; `answered` is False when the articles do not answer the question.

        Raises:
            BadQuestionError: empty or over-long question, k out of range, unknown sources or
                outlets, or an invalid date.
        """
        question = _clean_question(question)
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_K:
            raise BadQuestionError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
        k = int(k)
        history, sources = _text_list(history, "history"), _text_list(sources, "sources")
        outlets, authors = _text_list(outlets, "outlets"), _text_list(authors, "authors")
        past = [_clean_question(h) for h in history if h.strip()][-3:]
        engine = self._current()  # one version for the whole question
        try:
            answer, failure = self._answer(engine, question, k, past, sources, since, until, outlets, authors), None
        except QAError as exc:  # e.g. the version's rows were deleted after a long quiet spell
            answer, failure = None, exc
        # The version check rode beside the question's first search, never before it: if it saw
        # another process's commit, answer once more from that version.
        if self._moved_on(engine):
            return self._answer(self._engine, question, k, past, sources, since, until, outlets, authors)
        if failure is not None:
            raise failure
        return answer

    def _moved_on(self, engine: Engine) -> bool:
        """Has a newer version than `engine`'s been taken up (from the backend's latest check)?"""
        try:
            if not engine.backend.is_current(ask=False):
                self.follow(ask=False)
        except QAError as exc:  # the answer stands; the next question tries again
            log.warning("index version not taken up: %s", exc)
        return self._engine is not engine

    @staticmethod
    def _answer(engine: Engine, question: str, k: int, past: list[str], sources, since, until, outlets,
                authors) -> Answer:
        """The answer from one version (`engine`): every call of the question goes to it."""
        from .answer import compose
        from .filters import describe, facts, make_filter
        from .retrieve import formulate, retrieve
        from .textutil import quoted_phrases

        docs = engine.backend.documents()
        where = make_filter(docs, sources, since, until, outlets, authors, quoted_phrases(question))
        shown = describe(where)
        query = formulate(question, past)
        undated = (sum(1 for d in facts(docs) if d.date is None)
                   if where.since is not None or where.until is not None else 0)
        if not where.is_empty and not any(where.allows(d) for d in facts(docs)):
            return Answer(question, False, (), query, "no article matches the filter ("
                          + "; ".join(f"{n}: {v}" for n, v in shown if n != "phrase") + ")", shown, undated)
        qvec = engine.embedder.embed_query(query)
        found = retrieve(engine.backend, qvec, query, engine.weights, where=where)
        if not found.candidates and where.phrases:
            wanted = " and ".join(f"“{p}”" for p in where.phrases)
            return Answer(question, False, (), query, f"no passage contains the exact phrase {wanted}", shown, undated)
        return replace(compose(question, query, past, found, qvec, k), filters=shown, undated_left_out=undated)

    def statements(self, person: str, about: str | None = None, order: str = "newest", **filters):
        """A person's statements (on a subject), in date order, each with where it was first reported.

        Args:
            person: who (spelling variants of one name are one person: Sergei/Sergey Lavrov).
            about: the subject; None for everything the person is reported to have said.
            order: "newest" or "oldest" first (undated statements come last either way).
            **filters: since, until, outlets, authors, sources, as for `ask`.

        Returns:
            A Statements record (qa.statements).

        Raises:
            BadQuestionError: no person, an unknown order, or a bad filter.
        """
        from .statements import MAX_STATEMENTS, from_answer, question_for

        if not isinstance(person, str) or not person.strip():
            raise BadQuestionError("name the person whose statements you want")
        if order not in ("newest", "oldest"):
            raise BadQuestionError(f"order must be 'newest' or 'oldest', got {order!r}")
        about = about.strip() if isinstance(about, str) and about.strip() else None
        answer = self.ask(question_for(person.strip(), about), k=MAX_STATEMENTS, **filters)
        return from_answer(person.strip(), about, answer, order)

    @property
    def engine(self) -> Engine:
        """The parts answering questions now (read it once per question: it is swapped on updates)."""
        return self._engine

    def follow(self, ask: bool = True) -> bool:
        """Pick up an index version another process committed (`qa index`, another worker's upload).

        Questions already running finish on the version they started with. `ask` False: trust the
        backend's last check rather than wait for the server (see Backend.is_current). Returns True
        when a newer version was taken up.
        """
        engine = self._engine
        if engine.backend.is_current(ask=ask) or not self._follow_lock.acquire(blocking=False):
            return False  # up to date, or another thread is opening the new version right now
        try:
            backend = engine.backend.reopen()
            problem = getattr(backend, "problem", None) or (backend.settings is None and "it holds no index")
            if problem:  # a damaged new version: keep answering from this one
                log.warning("index version not taken up: %s", problem)
                return False
            with self._lock:
                if self._engine is engine:  # not replaced meanwhile by our own refresh
                    self._backend = backend
                    self._engine = replace(engine, backend=backend)
            return True
        finally:
            self._follow_lock.release()

    def fresh_model(self, threads: int | None = None) -> None:
        """Load the query model anew, e.g. in a forked worker process (an ONNX session does not survive
        a fork). `threads` caps the threads it computes with (default: every core)."""
        if self._given_embedder is not None:
            return
        from .embed import Embedder

        embedder = Embedder(self.settings.model, onnx_dir=self.index_dir / "model", threads=threads)
        embedder.embed_query("warm-up")  # load now, not at the first question
        with self._lock:
            # Kept alive for good: destroying the inherited session in a forked child waits forever
            # for its thread pool, whose threads did not survive the fork.
            _INHERITED.append(self._engine.embedder)
            self._engine = replace(self._engine, embedder=embedder)

    def _current(self) -> Engine:
        """The engine for the next question, after taking up a newer version if one was committed
        (checked at most every FOLLOW_SECONDS)."""
        now = time.monotonic()
        if now - self._checked >= FOLLOW_SECONDS:
            self._checked = now
            try:
                self.follow(ask=False)  # never a round trip before the question: see ask()
            except QAError as exc:  # the old version still answers
                log.warning("index version not taken up: %s", exc)
        return self._engine

    # -- the document set ----------------------------------------------------------------------
    def documents(self) -> list[DocInfo]:
        """The indexed documents, by doc_id."""
        return sorted(self._current().backend.documents().values(), key=lambda d: d.doc_id)

    def document_entries(self) -> list[DocEntry]:
        """Every indexed document's title, date, outlet and byline, by doc_id: what a list or a
        picker shows. Unlike `documents()` no record is decoded where the backend keeps these apart
        (the local backend's columns: 250,000 records decoded take seconds)."""
        from .backends.base import entries

        return sorted(entries(self._current().backend.documents()), key=lambda d: d.doc_id)

    def document(self, doc_id: str) -> DocInfo | None:
        """One indexed document's record, None if it is not indexed (decoded alone: `documents()`
        decodes every record)."""
        return self._current().backend.documents().get(doc_id)

    def find_documents(self, text: str | None = None, outlet: str | None = None, order: str = "newest",
                       offset: int = 0, limit: int = 50) -> DocumentPage:
        """A page of the indexed documents whose title, doc_id or byline contains `text`.

        Args:
            text: words to look for (case and spacing do not matter); None or "": every document.
            outlet: only this outlet's documents (case and spacing do not matter).
            order: "newest" or "oldest" (undated last either way), "title" or "outlet".
            offset, limit: which page (limit 1 to 1,000).

        Raises:
            BadQuestionError: an unknown order, or a page out of range.
        """
        from .backends.base import entries
        from .textutil import normalise

        if order not in DOCUMENT_ORDERS:
            raise BadQuestionError(f"order must be one of {', '.join(DOCUMENT_ORDERS)}, got {order!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0 or not 1 <= limit <= 1000:
            raise BadQuestionError("offset must be 0 or more and limit from 1 to 1,000")
        stored = self._current().backend.documents()
        # Found and sorted from entries (title, doc_id, byline, outlet, date) where the backend keeps
        # them without its records (local: columns); only the page's records are read.
        docs = list(entries(stored))
        words = normalise(text or "").split()
        wanted = normalise(outlet) if outlet else None
        found = [d for d in docs
                 if (wanted is None or normalise(d.outlet or "") == wanted)
                 and all(w in normalise(f"{d.title} {d.doc_id} {d.byline or ''}") for w in words)]
        found.sort(key=_DOCUMENT_KEYS[order])
        if order == "newest":  # newest first, undated last
            dated = [d for d in found if d.date]
            found = sorted(dated, key=lambda d: (d.date, d.doc_id), reverse=True) + [d for d in found if not d.date]
        page = tuple(stored[d.doc_id] for d in found[offset:offset + limit])
        return DocumentPage(page, len(found), len(docs), offset)

    def passage_count(self) -> int:
        """How many passages the index holds."""
        return self._current().backend.stats().passages

    def status(self) -> IndexStatus:
        """The backend kind, the version served now and its size."""
        backend = self._current().backend
        version = getattr(backend, "version", None)
        return IndexStatus(type(backend).__name__.removesuffix("Backend").lower(),
                           Path(version).name if isinstance(version, (str, os.PathLike)) else str(version or ""),
                           len(backend.documents()), backend.stats().passages)

    def document_text(self, doc_id: str) -> str:
        """The full text of an indexed document, in the frame its citations' offsets use."""
        info = self._current().backend.documents().get(doc_id)
        if info is None:
            raise DocumentsError(f"no document {doc_id!r} in the index")
        from .ingest import read_document

        doc = read_document(Path(info.path), self.docs_dir)
        if doc.content_hash != info.content_hash:  # the citations' offsets point into the indexed text
            raise DocumentsError(f"{doc_id} has changed since it was indexed; refresh the index first")
        return doc.text

    def add_file(self, name: str, data: bytes, max_bytes: int = 5_000_000) -> IndexUpdate:
        """Save an uploaded article into the documents folder and update the index.

        Raises:
            DocumentsError: unsafe or hidden name, unsupported type, too large, or an existing file.
        """
        base = _safe_upload_name(name)
        if len(data) > max_bytes:
            raise DocumentsError(f"{base}: file too large ({len(data):,} bytes; limit {max_bytes:,})")
        target = self.docs_dir / base
        if os.path.lexists(target):
            raise DocumentsError(f"{base}: a document with this name already exists")
        tmp = self.docs_dir / f".upload-{os.getpid()}-{threading.get_ident()}.part"
        try:
            tmp.write_bytes(data)
            os.link(tmp, target)  # unlike a rename, fails if the name was taken meanwhile: nothing overwritten
        except FileExistsError:
            raise DocumentsError(f"{base}: a document with this name already exists") from None
        except OSError as exc:
            raise DocumentsError(f"{base}: cannot save the upload ({exc.strerror or exc})") from None
        finally:
            tmp.unlink(missing_ok=True)
        return self.refresh()

    def remove_document(self, doc_id: str) -> IndexUpdate:
        """Delete a document file from the folder and update the index."""
        docs = self._current().backend.documents()
        info = docs.get(doc_id)
        if info is None:
            raise DocumentsError(f"no document {doc_id!r} in the index")
        path = Path(info.path).resolve()
        if self.docs_dir.resolve() not in path.parents:
            raise DocumentsError(f"{doc_id}: not inside the documents folder")
        if len(docs) == 1:  # the index could not be updated to hold nothing
            raise DocumentsError(f"{doc_id} is the only document; add another before removing it")
        path.unlink(missing_ok=True)
        return self.refresh()

    # -- keeping the index current ---------------------------------------------------------------
    def refresh(self, full: bool = False) -> IndexUpdate:
        """Bring the index in line with the folder (adds, changes, removals, settings).

        Args:
            full: read every file; by default a file whose size and modification time are those
                it had when indexed is taken as unchanged without reading it.
        """
        from .backends.base import summaries
        from .engine import Engine
        from .indexer import apply, plan
        from .folder import read_folder
        from .metadata import read_manifest

        with self._lock:
            backend = self._backend if self._backend is not None else self._open_backend()
            with backend.lock():
                if not backend.is_current():  # another process wrote a version meanwhile
                    backend = backend.reopen()
                stored = backend.documents()
                # Read of every stored document without decoding records (the local backend's columns).
                brief = {s.doc_id: s for s in summaries(stored)}
                known = None if full else {d: (s.size, s.mtime_ns) for d, s in brief.items()}
                spool = _spool_dir(self.index_dir)
                folder = read_folder(self.docs_dir, known=known, spool_dir=spool)
                try:
                    update = plan(_hashes(folder, brief), backend, self.settings, brief)
                    if update.rebuilt and folder.unchanged:  # everything is cut again: read it all
                        folder.close()
                        folder = read_folder(self.docs_dir, spool_dir=spool)
                        update = plan(_hashes(folder, brief), backend, self.settings, brief)
                    if not folder.documents and not folder.unchanged:
                        raise DocumentsError(f"no readable articles in {self.docs_dir}")
                    skipped = tuple(folder.skipped)
                    query_embedder, model_note = self._query_embedder()
                    manifest = read_manifest(self.docs_dir)
                    relabel = {} if update.rebuilt else _stale_records(folder, stored, brief, self.docs_dir, manifest)
                    if update.changed_anything or relabel:
                        backend = apply(update, folder.documents, backend, self.settings, lambda: query_embedder,
                                        self._show_progress(folder), folder.facts, relabel, manifest)
                        log.info("index updated: %s", update)
                finally:
                    folder.close()  # its spool file
                if model_note and not update.reason:
                    update = _with(update, reason=model_note)
                self._backend = backend
                self._engine = Engine(query_embedder, backend, self.settings)
                return _with(update, skipped=skipped, passages=backend.stats().passages)

    def _open_backend(self) -> Backend:
        from .backends import open_backend

        return open_backend(self.index_location)

    def _show_progress(self, folder) -> bool:
        if self.progress is not None:
            return self.progress
        return folder.documents.total_chars > 200_000

    def _query_embedder(self):
        """(embedder, note): the given embedder, or the fast exported model kept beside the index
        (exported now if missing or damaged; note says why it was exported again)."""
        if self._given_embedder is not None:
            return self._given_embedder, ""
        if self._engine is not None:
            return self._engine.embedder, ""
        from . import embed

        target = self.index_dir / "model"
        wanted = "int8" if self.settings.int8 else "fp32"
        note = ""
        if (target / "embed_config.json").exists() and _precision(target) == wanted:
            embedder = _model_works(target, self.settings)
            if embedder is not None:
                _split_weights(target)
                return embedder, ""
            log.warning("index at %s is damaged: its query model does not load; exporting it again", self.index_dir)
            note = "the saved query model was damaged; exported again"
        from .model_export import export_onnx

        shutil.rmtree(target, ignore_errors=True)  # a damaged or other-precision copy
        export_onnx(self.settings.model, target, quantize=self.settings.int8)
        return _model_works(target, self.settings) or embed.Embedder(self.settings.model), note


def _server_cache(location) -> Path:
    from .backends.milvus import cache_dir

    return cache_dir(location)


def _spool_dir(index_dir: Path) -> Path | None:
    """Where a folder read spools its documents: the index folder when it exists (the local
    backend's lock made it; on disk, where the system's temporary folder may be memory), else the
    temporary folder (none is made: a QA given its backend may never use `index_dir`)."""
    return index_dir if index_dir.is_dir() else None


def _hashes(folder, stored: Mapping[str, DocSummary]) -> dict[str, str]:
    """Content hash of every document of the folder: read now, or stored for files not re-read."""
    return {**{d: stored[d].content_hash for d in folder.unchanged}, **folder.documents.hashes()}


def _stale_records(folder, stored: Mapping[str, DocInfo], brief: dict[str, DocSummary], docs_dir: Path,
                   manifest) -> dict[str, DocInfo]:
    """Stored documents whose text is unchanged but whose record is not: the folder was moved, a
    file touched, or the manifest's publication facts changed. Their passages and vectors are kept.
    `brief`: the stored documents' summaries, which decide the usual case without their records."""
    from dataclasses import replace

    from .indexer import doc_info
    from .metadata import effective

    read = folder.documents
    unchanged = set(folder.unchanged)
    root = docs_dir.resolve()
    inside = os.path.join(str(root), "")  # root/ : a stored path starting so lies under it
    out = {}
    for doc_id, s in brief.items():
        facts = folder.facts.get(doc_id)
        if facts is None:
            continue
        if doc_id in read:
            if read.content_hash(doc_id) != s.content_hash:
                continue  # changed: cut and embedded again anyway
            info = stored[doc_id]
            expected = doc_info(read.get(doc_id), facts, manifest.get(doc_id))
        elif doc_id in unchanged:
            if (s.path is not None and s.path.startswith(inside) and facts == (s.size, s.mtime_ns)
                    and s.as_guessed and manifest.get(doc_id) is None):
                continue  # the usual case, decided from the summary (250,000 at each open of a large archive)
            info = stored[doc_id]
            if (info.path.startswith(inside) and facts == (info.size, info.mtime_ns)
                    and _same_publication(info, manifest.get(doc_id))):
                continue  # the usual case, decided without building the record (2,225 at each open)
            # Still under this folder: the stored path stands (resolving each file costs more than
            # the rest of opening); otherwise the folder was moved.
            path = info.path if Path(info.path).is_relative_to(root) else str((docs_dir / doc_id).resolve())
            expected = effective(replace(info, path=path, size=facts[0], mtime_ns=facts[1]), manifest.get(doc_id))
        else:
            continue
        if expected != info:
            out[doc_id] = expected
    return out


def _same_publication(info: DocInfo, manifest) -> bool:
    """Are the publication facts in force (metadata.effective) those the record holds?"""
    facts = manifest.merged_over(info.guess) if manifest is not None else info.guess
    return ((facts.date, facts.outlet, facts.author, facts.url, facts.sources)
            == (info.date, info.outlet, info.byline, info.url, info.meta_sources))


def _model_works(model_dir: Path, settings: Settings):
    """An Embedder on the saved query model if it loads and embeds (the session is loaded now, not at
    the first question), else None."""
    from .embed import Embedder

    try:
        embedder = Embedder(settings.model, onnx_dir=model_dir)
        vec = embedder.embed_query("warm-up")
        if vec.ndim != 1 or not vec.size:
            return None
        return embedder
    except Exception as exc:  # any failure to load or run it means it cannot answer questions
        log.debug("query model at %s unusable: %s", model_dir, exc)
        return None


def _split_weights(model_dir: Path) -> None:
    """Give a query model exported before its weights were kept apart the faster-loading layout
    (once: ~0.5 s here, then ~60 ms less at every cold open). Called under the index lock. A
    failure only leaves the model as it was: it works, as just checked."""
    from .model_export import split_weights

    try:
        if split_weights(model_dir):
            log.info("query model at %s: weights moved to their own file for faster loading", model_dir)
    except Exception as exc:
        log.warning("query model at %s kept as it is: %s", model_dir, exc)


def _precision(model_dir: Path) -> str | None:
    import json

    try:
        return json.loads((model_dir / "embed_config.json").read_text("utf-8")).get("precision")
    except (OSError, ValueError):
        return None


def _with(update: IndexUpdate, **changes) -> IndexUpdate:
    from dataclasses import replace

    return replace(update, **changes)


def _text_list(value, what: str) -> list[str]:
    """history / sources as a list of strings (None: empty); anything else is a BadQuestionError."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise BadQuestionError(f"{what} must be a list of strings, got {type(value).__name__}")
    if not all(isinstance(x, str) for x in value):
        raise BadQuestionError(f"{what} must be a list of strings")
    return list(value)


def _clean_question(question) -> str:
    if not isinstance(question, str):
        raise BadQuestionError(f"the question must be text, got {type(question).__name__}")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadQuestionError(
            f"the question is too long ({len(question):,} characters; at most {MAX_QUESTION_CHARS:,})")
    question = " ".join(_CONTROL.sub(" ", question).split())
    if not question:
        raise BadQuestionError("the question is empty")
    return question


def _safe_upload_name(name: str) -> str:
    """The bare file name of an upload, refused if it could escape the folder or hide itself."""
    if not isinstance(name, str) or not name.strip():
        raise DocumentsError("the upload has no file name")
    if "/" in name or "\\" in name or ".." in name or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in name):
        raise DocumentsError(f"{name!r}: file names may not contain paths, '..' or control characters")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise DocumentsError(f"{name[:40]!r}…: file name too long (at most {MAX_NAME_BYTES} bytes)")
    if name.startswith("."):
        raise DocumentsError(f"{name!r}: hidden files are not accepted")
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise DocumentsError(f"{name!r}: only {', '.join(UPLOAD_SUFFIXES)} files are accepted")
    return name
