"""The public engine: `QA(docs_dir, index_dir).ask(question)` over a folder of articles."""

from __future__ import annotations

import logging
import numbers
import os
import re
import shutil
import threading
from pathlib import Path

from .errors import BadQuestionError, DocumentsError
from .types import Answer, DocInfo, IndexUpdate, Settings

log = logging.getLogger("qa")

MAX_QUESTION_CHARS = 2000
MAX_K = 50
MAX_NAME_BYTES = 200  # below the usual 255-byte limit of file systems
UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # and lone surrogates


class QA:
    """Question answering over one folder of articles, with its index kept up to date.

    Args:
        docs_dir: folder of .txt/.md/.html/.pdf/.docx articles (searched recursively).
        index_dir: folder where the index is saved; created if missing.
        settings: index settings; a change triggers a rebuild.
        progress: show a progress bar while embedding (default: only when many passages).

    Raises:
        DocumentsError: the folder is missing or holds no readable article.
    """

    def __init__(self, docs_dir: str | os.PathLike = "seeds", index_dir: str | os.PathLike = "embeddings",
                 settings: Settings | None = None, progress: bool | None = None):
        from .store import IndexStore

        self.docs_dir = Path(docs_dir)
        self.settings = settings or Settings()
        self.progress = progress
        self._store = IndexStore(index_dir)
        self._lock = threading.Lock()
        self._state = None  # (Index, Embedder), swapped whole so ask() never sees half an update
        self._state_version: Path | None = None
        self.last_update: IndexUpdate = self.refresh()

    # -- asking ----------------------------------------------------------------------------------
    def ask(self, question: str, k: int = 5, history: list[str] | tuple[str, ...] | None = None,
            sources: list[str] | tuple[str, ...] | None = None) -> Answer:
        """Answer a question with ranked verbatim passages.

        Args:
            question: the question, 1 to 2,000 characters.
            k: how many passages at most (1 to 50).
            history: earlier questions of the conversation, oldest first (for follow-ups).
            sources: if given, only these doc_ids may answer.

        Returns:
            An Answer; `answered` is False when the articles do not answer the question.

        Raises:
            BadQuestionError: empty or over-long question, k out of range, or unknown sources.
        """
        from .answer import compose
        from .retrieve import formulate, retrieve

        question = _clean_question(question)
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_K:
            raise BadQuestionError(f"k must be a whole number from 1 to {MAX_K}, got {k!r}")
        k = int(k)
        history, sources = _text_list(history, "history"), _text_list(sources, "sources")
        past = [_clean_question(h) for h in history if h.strip()][-3:]
        index, embedder = self._state
        allowed = None
        if sources:
            unknown = set(sources) - set(index.docs)
            if unknown:
                raise BadQuestionError(f"unknown sources: {', '.join(sorted(unknown))}")
            import numpy as np

            wanted = set(sources)
            allowed = np.fromiter((c.doc_id in wanted for c in index.chunks), bool, len(index.chunks))
        query = formulate(question, past)
        qvec = embedder.embed_query(query)
        candidates = retrieve(index, qvec, query, allowed=allowed)
        return compose(question, query, past, candidates, index, qvec, k)

    # -- the document set ----------------------------------------------------------------------
    def documents(self) -> list[DocInfo]:
        """The indexed documents, by doc_id."""
        return sorted(self._state[0].docs.values(), key=lambda d: d.doc_id)

    def document_text(self, doc_id: str) -> str:
        """The full text of an indexed document, in the frame its citations' offsets use."""
        info = self._state[0].docs.get(doc_id)
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
        info = self._state[0].docs.get(doc_id)
        if info is None:
            raise DocumentsError(f"no document {doc_id!r} in the index")
        path = Path(info.path).resolve()
        if self.docs_dir.resolve() not in path.parents:
            raise DocumentsError(f"{doc_id}: not inside the documents folder")
        if len(self._state[0].docs) == 1:  # the index could not be updated to hold nothing
            raise DocumentsError(f"{doc_id} is the only document; add another before removing it")
        path.unlink(missing_ok=True)
        return self.refresh()

    # -- keeping the index current ---------------------------------------------------------------
    def refresh(self) -> IndexUpdate:
        """Bring the index in line with the folder (adds, changes, removals, settings)."""
        from .embed import Embedder
        from .ingest import read_folder
        from .store import build, load_current, plan, unusable_reason

        with self._lock, self._store.lock():
            folder = read_folder(self.docs_dir)
            if not folder.documents:
                raise DocumentsError(f"no readable articles in {self.docs_dir}")
            hashes = {d.doc_id: d.content_hash for d in folder.documents}
            skipped = tuple(s.path for s in folder.skipped)
            if self._state is not None and self._store.current() == self._state_version:
                loaded = (self._state[0], self._state_version)  # already in memory: skip re-reading
            else:
                loaded = load_current(self._store)
            version = loaded[1] if loaded else None
            update = plan(hashes, version, self.settings)
            if loaded is None and (self._store.root / "CURRENT").exists():
                update = _with(update, reason=unusable_reason(self._store))
            model_ok = True
            if loaded and not update.changed_anything:
                index = loaded[0]
                if self._state is not None and self._state[0] is index:
                    return _with(update, skipped=skipped, passages=len(index))
                embedder = self._query_embedder(version)
                if embedder is not None:
                    self._state = (index, embedder)
                    self._state_version = version
                    return _with(update, skipped=skipped, passages=len(index))
                # The saved query model is damaged: write a new version (vectors reused, model exported).
                model_ok = False
                update = _with(update, rebuilt=True, reason="the saved query model was damaged")
            previous = loaded[0] if loaded else None
            tmp = self._store.new_version()
            # Passages are embedded by the same exported model that embeds questions (ONNX Runtime,
            # length-sorted batches: faster than sentence-transformers, see BENCHMARKS.md).
            builder = self._export_model(version if model_ok else None, tmp) or Embedder(self.settings.model)
            index = build(folder.documents, previous, self.settings, builder, self._show_progress(folder))
            index.save(tmp)
            final = self._store.commit(tmp)
            self._state = (index, self._query_embedder(final) or Embedder(self.settings.model))
            self._state_version = final
            log.info("index updated: %s", update)
            return _with(update, skipped=skipped, passages=len(index))

    def _show_progress(self, folder) -> bool:
        if self.progress is not None:
            return self.progress
        return sum(len(d.text) for d in folder.documents) > 200_000

    def _export_model(self, old_version: Path | None, new_version: Path):
        """Put the fast query model beside the index: copied from the old version, else exported.

        Returns an Embedder on it once it has been seen to load and run (None if it does not). A
        copy that does not load is replaced by a fresh export, so damage is not carried forward.
        """
        from . import embed

        if not hasattr(embed, "export_onnx"):
            return None
        old = old_version / "model" if old_version else None
        target = new_version / "model"
        wanted = "int8" if self.settings.int8 else "fp32"
        if (old is not None and old.is_dir() and (old / "embed_config.json").exists()
                and _precision(old) == wanted):
            shutil.copytree(old, target)
            embedder = _model_works(target, self.settings)
            if embedder is not None:
                return embedder
            log.warning("index at %s is damaged: its query model does not load; exporting it again", old_version)
            shutil.rmtree(target, ignore_errors=True)
        embed.export_onnx(self.settings.model, target, quantize=self.settings.int8)
        return _model_works(target, self.settings)

    def _query_embedder(self, version: Path):
        from .embed import Embedder

        model_dir = version / "model"
        if (model_dir / "embed_config.json").exists():
            embedder = _model_works(model_dir, self.settings)
            if embedder is None:
                log.warning("index at %s is damaged, rebuilding: its query model does not load", version)
            return embedder
        return Embedder(self.settings.model)


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
