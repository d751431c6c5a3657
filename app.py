"""Web chat over the qa engine: `python app.py` serves http://127.0.0.1:7860.

A thin Gradio UI: every answer comes from `qa.QA.ask`, every document change from
`QA.add_file` / `QA.remove_document`. All article text, titles and questions are inserted into
the page as escaped text (never as Markdown or live HTML).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from qa import QA, BadQuestionError, QAError  # noqa: E402
from qa.api import UPLOAD_SUFFIXES  # noqa: E402
from qa.serve.policy import PolicyError, decide, environment, is_loopback, read_token  # noqa: E402
from qa.serve.workers import InProcess, asker_for  # noqa: E402

log = logging.getLogger("qa.app")

UPLOAD_TYPES = list(UPLOAD_SUFFIXES)
SHOWN_QUESTION_CHARS = 500  # longer questions are shortened in the chat echo (the engine sees all)
NOT_ANSWERED = "The articles don't answer this question."
EXPORT_FORMATS = ("csv", "json", "md")
PAGE_ROWS = 50  # documents per page of the Documents tab
ALL_OUTLETS = "All outlets"
DOCUMENT_ORDERS = [("Title", "title"), ("Newest first", "newest"), ("Oldest first", "oldest"), ("Outlet", "outlet")]

CSS = """
.qa-answer ol { margin: 0; padding-left: 1.6em; }
.qa-answer li { margin: 0 0 0.9em 0; }
.qa-text { white-space: pre-wrap; margin: 0 0 0.25em 0; line-height: 1.5; }
.qa-answer mark, .qa-source mark.qa-hl { background: #ffe066; color: #111; padding: 0 2px; border-radius: 2px; }
.qa-cite { font-size: 0.85em; color: var(--body-text-color); opacity: 0.8; margin: 0; }
.qa-cite b { color: var(--body-text-color); }
.qa-also { font-size: 0.85em; margin: 0.15em 0 0 0; color: var(--body-text-color); opacity: 0.8; font-style: italic; }
.qa-note { color: var(--body-text-color-subdued); font-style: italic; }
.qa-plain { white-space: pre-wrap; }
.qa-source h3 { margin: 0 0 0.2em 0; }
.qa-meta { font-size: 0.85em; color: var(--body-text-color-subdued); margin: 0 0 0.5em 0; }
.qa-doc { position: relative; white-space: pre-wrap; line-height: 1.5; max-height: 520px; overflow-y: auto;
          border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 0.6em 0.8em; }
.qa-doc mark.qa-cited { background: #d9ecff; color: #111; outline: 1px solid #7fb3e6; }
.qa-status { font-size: 0.9em; white-space: pre-wrap; }
"""

# Scrolls the source panel so the cited passage is in view, each time the panel's value changes.
SCROLL_JS = """
function scrollToCited() {
  const box = element.querySelector('.qa-doc');
  const mark = element.querySelector('#qa-cited');
  if (box && mark) box.scrollTop = Math.max(0, mark.offsetTop - box.clientHeight / 4);
}
watch('value', scrollToCited);
scrollToCited();
"""

# After an answer, bring the top of the latest question (not the end of the reply) into view.
SCROLL_CHAT_JS = """
() => setTimeout(() => {
  const log = document.querySelector('#chat [role=log]');
  const rows = document.querySelectorAll('#chat .user-row');
  const last = rows[rows.length - 1];
  if (log && last) log.scrollTop += last.getBoundingClientRect().top - log.getBoundingClientRect().top - 8;
}, 100)
"""

E = html.escape


# -- rendering (all text escaped) ----------------------------------------------------------------
def _place(c) -> str:
    page = f", page {c.page}" if getattr(c, "page", None) else ""
    return f"{c.doc_id}{page}, characters {c.start}–{c.end}"


def _source_name(c) -> str:
    return " — ".join(x for x in (c.title, c.outlet, getattr(c, "date", None)) if x)


def _passage_html(i: int, p) -> str:
    c = p.citation
    lo, hi = p.highlight_start - c.start, p.highlight_end - c.start
    if not (0 <= lo < hi <= len(p.text) and p.text[lo:hi] == p.highlight):
        lo = p.text.find(p.highlight) if p.highlight else -1
        hi = lo + len(p.highlight)
    if lo >= 0 and p.highlight:
        body = f"{E(p.text[:lo])}<mark>{E(p.text[lo:hi])}</mark>{E(p.text[hi:])}"
    else:  # defensive: show the answering sentence under the passage
        body = E(p.text) + (f"\n<mark>{E(p.highlight)}</mark>" if p.highlight else "")
    speaker = f" · speaker: {E(p.speaker)}" if p.speaker else ""
    out = [f'<li class="qa-passage"><p class="qa-text">{body}</p>',
           f'<p class="qa-cite">[{i}] <b>{E(c.title)}</b>{" — " + E(c.outlet) if c.outlet else ""}'
           f'{" · " + E(c.date) if getattr(c, "date", None) else ""}'
           f" · {E(_place(c))}{speaker} · score {p.score:.2f}</p>"]
    if p.also_in:
        others = "; ".join(f"{E(_source_name(o))} ({E(_place(o))})" for o in p.also_in)
        out.append(f'<p class="qa-also">Also reported by: {others}</p>')
    out.append("</li>")
    return "".join(out)


def _filters_html(ans) -> str:
    if not ans.filters:
        return ""
    shown = "; ".join(f"{n}: {v}" for n, v in ans.filters)
    undated = f" ({ans.undated_left_out} undated articles left out)" if ans.undated_left_out else ""
    return f'<p class="qa-note">Filtered by {E(shown)}{E(undated)}</p>'


def answer_html(ans) -> str:
    if not ans.answered or not ans.passages:
        why = f" ({ans.reason})" if ans.reason.startswith(("no article matches", "no passage contains")) else ""
        return f'<div class="qa-answer">{_filters_html(ans)}<p>{E(NOT_ANSWERED + why)}</p></div>'
    items = "".join(_passage_html(i, p) for i, p in enumerate(ans.passages, start=1))
    return f'<div class="qa-answer">{_filters_html(ans)}<ol>{items}</ol></div>'


def statements_html(st) -> str:
    """A person's statements, each with its date, outlet and where it was first reported."""
    head = f"{st.person}" + (f" on “{st.about}”" if st.about else "")
    if not st.statements:
        return f'<div class="qa-answer">{_filters_html(st)}<p>{E(f"No statements by {head} found")}' \
               f'{E(f" ({st.reason})" if st.reason else "")}.</p></div>'
    items = []
    for i, s in enumerate(st.statements, start=1):
        first = s.first_reported
        when = f"First reported: {_source_name(first)} ({_place(first)})"
        items.append(_passage_html(i, s.passage).replace("</li>", f'<p class="qa-also">{E(when)}</p></li>'))
    order = "newest first" if st.order == "newest" else "oldest first"
    return (f'<div class="qa-answer"><p class="qa-meta">{len(st.statements)} statements by {E(head)}, {order}</p>'
            f'{_filters_html(st)}<ol>{"".join(items)}</ol></div>')


def note_html(text: str) -> str:
    return f'<p class="qa-note">{E(text)}</p>'


def question_html(q: str) -> str:
    shown = q if len(q) <= SHOWN_QUESTION_CHARS else q[:SHOWN_QUESTION_CHARS] + f"… ({len(q):,} characters)"
    return f'<div class="qa-plain">{E(shown)}</div>'


def citation_choices(ans) -> tuple[list[tuple[str, int]], list[dict]]:
    """Dropdown entries for the answer's citations (and the 'also reported by' ones)."""
    labels, cites = [], []
    for i, p in enumerate(ans.passages if ans.answered else (), start=1):
        spans = [(p.citation, p.highlight_start, p.highlight_end)] + [(o, None, None) for o in p.also_in]
        for j, (c, hs, he) in enumerate(spans):
            tag = f"[{i}]" if j == 0 else f"[{i}] also:"
            labels.append((f"{tag} {_short(c.title, 70)} — {_place(c)}", len(cites)))
            cites.append({"doc_id": c.doc_id, "start": c.start, "end": c.end, "hs": hs, "he": he})
    return labels, cites


def source_html(bot: QA, cite: dict | None) -> str:
    if not cite:
        return note_html("Choose a citation to read the whole article here.")
    info = bot.document(cite["doc_id"])
    if info is None:
        return note_html(f"{cite['doc_id']} is no longer in the document set.")
    try:
        text = bot.document_text(info.doc_id)
    except (QAError, OSError) as exc:
        return note_html(f"Can't show {info.doc_id}: {exc}")
    s, e = max(0, min(cite["start"], len(text))), max(0, min(cite["end"], len(text)))
    hs, he = cite.get("hs"), cite.get("he")
    if hs is not None and s <= hs < he <= e:
        inner = f'{E(text[s:hs])}<mark class="qa-hl">{E(text[hs:he])}</mark>{E(text[he:e])}'
    else:
        inner = E(text[s:e])
    meta = " · ".join(E(x) for x in (info.outlet, f"By {info.byline}" if info.byline else None,
                                     info.doc_id, f"characters {s}–{e} cited") if x)
    return (f'<div class="qa-source"><h3>{E(info.title)}</h3><p class="qa-meta">{meta}</p>'
            f'<div class="qa-doc">{E(text[:s])}<mark id="qa-cited" class="qa-cited">{inner}</mark>'
            f"{E(text[e:])}</div></div>")


def _filters(sources, since, until, outlets) -> dict:
    """The Settings tab's filters as `QA.ask` keyword arguments (empty fields: no filter)."""
    return {"sources": list(sources or []) or None, "since": (since or "").strip() or None,
            "until": (until or "").strip() or None, "outlets": list(outlets or []) or None}


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


# -- the app ---------------------------------------------------------------------------------------
class Exports:
    """Answers and statement lists written as files to download (qa.export), in a temporary folder
    removed when the app stops."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="qa-export-")

    def write(self, what, fmt: str, stem: str) -> str:
        from qa.export import render

        path = Path(self._dir.name) / f"{stem}-{uuid.uuid4().hex[:8]}.{fmt}"
        path.write_text(render(what, fmt), encoding="utf-8")
        return str(path)

    def button(self, what, fmt: str, stem: str):
        """The download button's update: the export of `what`, or hidden when there is nothing."""
        has = what is not None and (getattr(what, "passages", None) or getattr(what, "statements", None))
        if not has:
            return gr.update(visible=False, value=None)
        return gr.update(visible=True, value=self.write(what, fmt if fmt in EXPORT_FORMATS else "csv", stem))


class Chat:
    """The chat's event handlers: questions go through `asker`, sources are read from `bot`."""

    def __init__(self, bot: QA, asker, exports: Exports):
        self.bot, self.asker, self.exports = bot, asker, exports

    def chat_turn(self, question, k, sources, since, until, outlets, fmt, messages, questions):
        """Outputs: chat, messages, questions, box, cites, citation pick, viewer, last answer, download."""
        keep = (gr.update(),) * 2
        messages, questions = list(messages or []), list(questions or [])
        question = question if isinstance(question, str) else ""
        if not question.strip():
            messages.append({"role": "assistant", "content": note_html("Please type a question first.")})
            return messages, messages, questions, gr.update(), gr.update(), gr.update(), gr.update(), *keep
        messages.append({"role": "user", "content": question_html(question)})
        try:
            ans = self.asker.ask(question=question, k=int(k), history=questions, **_filters(sources, since, until,
                                                                                             outlets))
        except BadQuestionError as exc:
            messages.append({"role": "assistant", "content": note_html(f"Can't ask that: {exc}")})
            return messages, messages, questions, "", gr.update(), gr.update(), gr.update(), *keep
        except QAError as exc:
            messages.append({"role": "assistant", "content": note_html(f"Error: {exc}")})
            return messages, messages, questions, "", gr.update(), gr.update(), gr.update(), *keep
        messages.append({"role": "assistant", "content": answer_html(ans)})
        questions.append(question)
        labels, cites = citation_choices(ans)
        first = source_html(self.bot, cites[0]) if cites else gr.update()
        return (messages, messages, questions, "", cites,
                gr.update(choices=labels, value=0 if labels else None, interactive=bool(labels)), first,
                ans, self.exports.button(ans if ans.answered else None, fmt, "answer"))

    def export(self, last, fmt):
        return self.exports.button(last if last is not None and last.answered else None, fmt, "answer")

    def timeline(self, person, about, order, sources, since, until, outlets, fmt):
        """Outputs: the statements' HTML, the last statements, the download button."""
        try:
            st = self.asker.statements(person=person if isinstance(person, str) else "",
                                       about=about if isinstance(about, str) else None, order=order or "newest",
                                       **_filters(sources, since, until, outlets))
        except QAError as exc:
            return note_html(f"Can't list statements: {exc}"), None, gr.update(visible=False, value=None)
        return statements_html(st), st, self.exports.button(st, fmt, "statements")

    def export_timeline(self, last, fmt):
        return self.exports.button(last, fmt, "statements")

    def clear(self):
        return ([], [], [], [], gr.update(choices=[], value=None), source_html(self.bot, None), "", None,
                gr.update(visible=False, value=None))

    def show_source(self, idx, cites):
        if idx is None or not cites or not 0 <= int(idx) < len(cites):
            return source_html(self.bot, None)
        return source_html(self.bot, cites[int(idx)])

    def api_ask(self, question: str, k: int = 5, history: str = "[]", sources: str = "[]") -> str:
        """Answer a question; returns the engine's Answer (`Answer.to_dict()`) as a JSON string.

        history / sources: JSON lists (earlier questions, oldest first; doc_ids, empty = all).
        """
        try:
            past = json.loads(history) if isinstance(history, str) and history.strip() else history or []
            only = json.loads(sources) if isinstance(sources, str) and sources.strip() else sources or []
        except json.JSONDecodeError as exc:
            raise gr.Error(f"history and sources must be JSON lists: {exc}") from None
        if not isinstance(past, list) or not isinstance(only, list):
            raise gr.Error("history and sources must be JSON lists")
        try:
            ans = self.asker.ask(question=question, k=int(k), history=past, sources=only or None)
        except (QAError, ValueError, TypeError) as exc:
            raise gr.Error(str(exc)) from None
        # A string, not a dict: gradio_client would take each citation's "path" for a file to download.
        return json.dumps(ans.to_dict(), ensure_ascii=False)


class Library:
    """The Documents tab: a searchable, sortable, paged list of the documents; upload and removal."""

    def __init__(self, bot: QA, max_upload_bytes: int):
        self.bot, self.max_upload_bytes = bot, max_upload_bytes

    def doc_choices(self):
        return [(f"{_short(d.title, 60)} ({d.doc_id})", d.doc_id) for d in self.bot.document_entries()]

    def outlet_choices(self):
        return sorted({d.outlet for d in self.bot.document_entries() if d.outlet})

    def page(self, text, outlet, order, page_no=0):
        """Outputs: table rows, the counts line, the page number shown."""
        outlet = None if outlet in (None, "", ALL_OUTLETS) else outlet
        page_no = max(0, int(page_no or 0))
        try:
            found = self.bot.find_documents(text, outlet, order or "title", page_no * PAGE_ROWS, PAGE_ROWS)
            if page_no and not found.documents and found.matching:  # past the end: show the last page
                page_no = (found.matching - 1) // PAGE_ROWS
                found = self.bot.find_documents(text, outlet, order or "title", page_no * PAGE_ROWS, PAGE_ROWS)
        except QAError as exc:
            return [], note_html(str(exc)), 0
        rows = [[d.title, d.outlet or "", d.date or "", d.chars, d.doc_id] for d in found.documents]
        if not found.matching:
            counts = f"No document matches ({found.total:,} in the index)."
        else:
            counts = (f"{found.offset + 1:,}–{found.offset + len(rows):,} of {found.matching:,} matching · "
                      f"{found.total:,} in the index")
        return rows, f'<p class="qa-meta" id="doc-counts-text">{E(counts)}</p>', page_no

    def first_page(self, text, outlet, order):
        return self.page(text, outlet, order, 0)

    def previous_page(self, text, outlet, order, page_no):
        return self.page(text, outlet, order, max(0, int(page_no or 0) - 1))

    def next_page(self, text, outlet, order, page_no):
        return self.page(text, outlet, order, int(page_no or 0) + 1)

    def refreshed(self, lines, ticked, text, outlet, order):
        """After a change: table, counts, page, removal box, sources, outlets (both lists), status."""
        choices, outlets = self.doc_choices(), self.outlet_choices()
        still = [c for _, c in choices if c in set(ticked or ())]
        rows, counts, page_no = self.page(text, outlet, order, 0)
        return (rows, counts, page_no, "", gr.update(choices=choices, value=still), gr.update(choices=outlets),
                gr.update(choices=[ALL_OUTLETS, *outlets]), "".join(f'<div class="qa-status">{E(x)}</div>'
                                                                    for x in lines))

    def upload(self, files, ticked, text, outlet, order, progress=gr.Progress()):
        files = files if isinstance(files, list) else [files] if files else []
        lines = []
        for n, f in enumerate(files):
            path = Path(f if isinstance(f, str) else getattr(f, "name", f))
            progress((n, len(files)), desc=f"Adding {path.name} and updating the index…")
            try:
                data = path.read_bytes()
                update = self.bot.add_file(path.name, data, max_bytes=self.max_upload_bytes)
                if any(Path(x.path).name == path.name for x in update.skipped):
                    lines.append(f"Saved {path.name}, but it has no readable article text, so it is not indexed.")
                else:
                    lines.append(f"Added {path.name} ({update.passages} passages indexed).")
            except QAError as exc:
                lines.append(f"Not added: {exc}")
                gr.Warning(str(exc))
            except OSError as exc:
                lines.append(f"Not added: {path.name}: could not read the upload ({exc.strerror})")
            finally:
                path.unlink(missing_ok=True)  # the copy in Gradio's upload cache is not needed
        return (None, *self.refreshed(lines, ticked, text, outlet, order))

    def remove(self, doc_id, ticked, text, outlet, order, progress=gr.Progress()):
        doc_id = (doc_id or "").strip()
        if not doc_id:
            gr.Warning("Choose a document to remove first: click its row in the list.")
            return self.refreshed(["Choose a document to remove first: click its row in the list."], ticked, text,
                                  outlet, order)
        progress(0, desc=f"Removing {doc_id} and updating the index…")
        try:
            update = self.bot.remove_document(doc_id)
            return self.refreshed([f"Removed {doc_id} ({update.passages} passages indexed)."], ticked, text,
                                  outlet, order)
        except QAError as exc:
            gr.Warning(str(exc))
            return self.refreshed([f"Not removed: {exc}"], ticked, text, outlet, order)

    def on_load(self):
        """A page (re)load shows the index as it is now (another process may have changed it)."""
        choices, outlets = self.doc_choices(), self.outlet_choices()
        rows, counts, page_no = self.page("", ALL_OUTLETS, "title", 0)
        return (gr.update(choices=choices), gr.update(choices=outlets), gr.update(choices=[ALL_OUTLETS, *outlets]),
                rows, counts, page_no)

    def pick_row(self, evt: gr.SelectData):
        row = evt.row_value if evt is not None else None
        return gr.update(value=row[4]) if row and len(row) > 4 else gr.update()


def build_app(bot: QA, max_upload_bytes: int, asker=None, allow_changes: bool = True) -> gr.Blocks:
    """The chat UI over an opened QA. Questions run through `asker` (default: this process);
    uploads and removal are offered only when `allow_changes`."""
    exports = Exports()
    chat_events, library = Chat(bot, asker or InProcess(bot), exports), Library(bot, max_upload_bytes)
    private = {"api_visibility": "private"}
    with gr.Blocks(title="News QA", analytics_enabled=False) as demo:
        demo.exports = exports  # the download folder lives as long as the app
        gr.HTML("<h1 style='margin:0'>News QA</h1><p class='qa-meta'>Ask about the loaded articles. "
                "Answers are verbatim passages with the answering sentence highlighted and a citation.</p>")
        messages, questions, cites = gr.State([]), gr.State([]), gr.State([])
        last_answer, last_statements, page_no = gr.State(None), gr.State(None), gr.State(0)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                # render_markdown=False: messages are the escaped HTML built above, shown as is (and still
                # sanitized); no LaTeX, no custom tags, so article text can never turn into markup.
                chat = gr.Chatbot(label="Conversation", height=560, render_markdown=False, sanitize_html=True,
                                  latex_delimiters=[], allow_tags=False, buttons=[], feedback_options=None,
                                  autoscroll=False, elem_id="chat", placeholder="Ask a question about the articles.")
                with gr.Row():
                    box = gr.Textbox(show_label=False, placeholder="e.g. What did Lavrov say about ceasefires?",
                                     scale=5, max_lines=4, elem_id="question")
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                    clear_btn = gr.Button("Clear", scale=1, min_width=80, elem_id="clear")
                download = gr.DownloadButton("Download this answer", visible=False, size="sm", elem_id="download")
            with gr.Column(scale=2, min_width=360):
                with gr.Tabs():
                    with gr.Tab("Source"):
                        pick = gr.Dropdown(label="Citation", choices=[], value=None, interactive=False,
                                           elem_id="citation-pick")
                        viewer = gr.HTML(source_html(bot, None), js_on_load=SCROLL_JS, elem_id="source-viewer")
                    with gr.Tab("Documents"):
                        with gr.Row():
                            doc_search = gr.Textbox(show_label=False, placeholder="Search titles, bylines, doc_ids",
                                                    scale=3, elem_id="doc-search")
                            doc_outlet = gr.Dropdown([ALL_OUTLETS, *library.outlet_choices()], value=ALL_OUTLETS,
                                                     show_label=False, scale=2, elem_id="doc-outlet")
                            doc_order = gr.Dropdown(DOCUMENT_ORDERS, value="title", show_label=False, scale=1,
                                                    elem_id="doc-order")
                        rows, counts_html, _ = library.first_page("", ALL_OUTLETS, "title")
                        table = gr.Dataframe(rows, headers=["Title", "Outlet", "Date", "Chars", "doc_id"],
                                             datatype=["str", "str", "str", "number", "str"], interactive=False,
                                             wrap=True, max_height=320, elem_id="doc-table", show_label=False,
                                             column_widths=["38%", "16%", "12%", "10%", "24%"])
                        with gr.Row():
                            prev_btn = gr.Button("◀ Previous", size="sm", scale=1, elem_id="doc-prev")
                            counts = gr.HTML(counts_html, elem_id="doc-counts")
                            next_btn = gr.Button("Next ▶", size="sm", scale=1, elem_id="doc-next")
                        if allow_changes:
                            files = gr.File(label=f"Add articles ({', '.join(UPLOAD_TYPES)}; "
                                            f"up to {max_upload_bytes / 1e6:g} MB each)", file_count="multiple",
                                            file_types=UPLOAD_TYPES, elem_id="upload", height=130)
                            with gr.Row():
                                to_remove = gr.Textbox(label="Document to remove (click its row above)",
                                                       scale=3, elem_id="remove-pick")
                                remove_btn = gr.Button("Remove", variant="stop", scale=1, elem_id="remove")
                            status = gr.HTML("", elem_id="doc-status")
                        else:
                            gr.HTML("<p class='qa-meta'>Adding and removing articles is turned off on this "
                                    "server.</p>", elem_id="changes-off")
                    with gr.Tab("Timeline"):
                        with gr.Row():
                            person = gr.Textbox(label="Person", placeholder="e.g. Lavrov", elem_id="tl-person")
                            about = gr.Textbox(label="About (optional)", placeholder="e.g. ceasefire",
                                               elem_id="tl-about")
                        with gr.Row():
                            order = gr.Radio([("Newest first", "newest"), ("Oldest first", "oldest")],
                                             value="newest", show_label=False, elem_id="tl-order", scale=2)
                            show_btn = gr.Button("Show statements", variant="primary", scale=1, elem_id="tl-show")
                        timeline = gr.HTML("", elem_id="timeline")
                        tl_download = gr.DownloadButton("Download these statements", visible=False, size="sm",
                                                        elem_id="tl-download")
                    with gr.Tab("Settings"):
                        k = gr.Slider(1, 10, value=5, step=1, label="Passages per answer", elem_id="k")
                        only = gr.Dropdown(choices=library.doc_choices(), value=[], multiselect=True,
                                           label="Only these sources (none = all; type to search)",
                                           elem_id="sources")
                        with gr.Row():
                            since = gr.Textbox(label="Published since", placeholder="YYYY-MM-DD", elem_id="since")
                            until = gr.Textbox(label="Published until", placeholder="YYYY-MM-DD", elem_id="until")
                        outlets = gr.Dropdown(label="Only these outlets (none = all)",
                                              choices=library.outlet_choices(), value=[], multiselect=True,
                                              elem_id="outlets")
                        fmt = gr.Radio([("CSV", "csv"), ("JSON", "json"), ("Markdown", "md")], value="csv",
                                       label="Download format", elem_id="export-format")

        filters = [only, since, until, outlets]
        ask_outputs = [chat, messages, questions, box, cites, pick, viewer, last_answer, download]
        for trigger in (box.submit, ask_btn.click):
            trigger(chat_events.chat_turn, [box, k, *filters, fmt, messages, questions], ask_outputs,
                    **private).then(None, js=SCROLL_CHAT_JS, **private)
        cleared = [chat, messages, questions, cites, pick, viewer, box, last_answer, download]
        clear_btn.click(chat_events.clear, None, cleared, **private)
        chat.clear(chat_events.clear, None, cleared, **private)  # the chat's own bin icon
        pick.input(chat_events.show_source, [pick, cites], viewer, **private)
        for trigger in (show_btn.click, person.submit, about.submit):
            trigger(chat_events.timeline, [person, about, order, *filters, fmt],
                    [timeline, last_statements, tl_download], **private)
        fmt.change(chat_events.export, [last_answer, fmt], download, **private)
        fmt.change(chat_events.export_timeline, [last_statements, fmt], tl_download, **private)
        browse = [doc_search, doc_outlet, doc_order]
        for trigger in (doc_search.change, doc_outlet.change, doc_order.change):
            trigger(library.first_page, browse, [table, counts, page_no], trigger_mode="always_last", **private)
        prev_btn.click(library.previous_page, [*browse, page_no], [table, counts, page_no], **private)
        next_btn.click(library.next_page, [*browse, page_no], [table, counts, page_no], **private)
        if allow_changes:
            changed = [table, counts, page_no, to_remove, only, outlets, doc_outlet, status]
            files.upload(library.upload, [files, only, *browse], [files, *changed], **private)
            remove_btn.click(library.remove, [to_remove, only, *browse], changed, **private)
            table.select(library.pick_row, None, to_remove, **private)
        demo.load(library.on_load, None, [only, outlets, doc_outlet, table, counts, page_no], **private)
        gr.api(chat_events.api_ask, api_name="ask")
    return demo


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(description="Web chat and HTTP API over a folder of news articles.")
    p.add_argument("--host", default=env("QA_HOST", "127.0.0.1"), help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(env("QA_PORT", "7860")), help="port (default 7860)")
    p.add_argument("--docs", default=env("QA_DOCS", "seeds"), help="documents folder (default seeds)")
    p.add_argument("--index", default=env("QA_INDEX", "embeddings"),
                   help="index folder, or a Milvus URI (http://host:port, or a Milvus Lite file *.db); "
                        "default embeddings")
    p.add_argument("--max-upload-mb", type=float, default=float(env("QA_MAX_UPLOAD_MB", "5")),
                   help="largest accepted upload in MB (default 5)")
    p.add_argument("--workers", type=int, default=int(env("QA_WORKERS", "1")),
                   help="processes answering questions (default 1: the server's own)")
    p.add_argument("--token-file", default=None,
                   help="file holding the access token (else QA_TOKEN_FILE or QA_TOKEN); required "
                        "when listening beyond this machine")
    p.add_argument("--public", action="store_true", help="listen beyond this machine without a token")
    p.add_argument("--allow-uploads", action=argparse.BooleanOptionalAction, default=None,
                   help="offer adding and removing articles (default: only when listening on loopback)")
    p.add_argument("--rate-limit", type=float, default=float(env("QA_RATE_LIMIT", "10")),
                   help="questions per second per client, after a burst of 20 (0: no limit; default 10)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    if args.max_upload_mb <= 0 or not 1 <= args.workers <= 64:
        print("app: error: --max-upload-mb must be positive and --workers from 1 to 64", file=sys.stderr)
        return 2
    try:
        policy = decide(args.host, read_token(environment(), args.token_file), public=args.public,
                        allow_uploads=args.allow_uploads, rate=args.rate_limit)
    except PolicyError as exc:
        print(f"app: error: {exc}", file=sys.stderr)
        return 2
    try:
        bot = QA(args.docs, args.index)
    except QAError as exc:
        print(f"app: error: {exc}", file=sys.stderr)
        return 1
    try:  # the engine loads its query model lazily: do it now, not on the first visitor's question
        bot.ask("What is this about?", k=1)
    except QAError:
        pass
    if not is_loopback(args.host) and policy.token is None:
        log.warning("listening on %s with no token: anyone who can reach this port can ask questions", args.host)
    max_bytes = int(args.max_upload_mb * 1_000_000)
    # Workers are forked now, before the server starts any thread.
    asker = asker_for(bot, args.workers)
    try:
        serve(bot, asker, policy, args.host, args.port, max_bytes)
    finally:
        asker.close()
    return 0


def serve(bot: QA, asker, policy, host: str, port: int, max_bytes: int) -> None:
    """Serve the chat at / and the JSON API at /v1 on one port, behind the guard."""
    import uvicorn

    from qa.serve.guard import Guard
    from qa.serve.routes import api_app

    demo = build_app(bot, max_bytes, asker, allow_changes=policy.allow_changes)
    # Each chat event waits on the engine (in this process or a worker): a few more than the
    # workers keeps them all busy without a long queue of threads.
    demo.queue(default_concurrency_limit=max(4, 2 * asker.workers + 2))
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                              font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])
    app = gr.mount_gradio_app(api_app(bot, asker, policy), demo, path="", footer_links=["api", "settings"],
                              ssr_mode=False, show_error=False, pwa=False, mcp_server=False,
                              max_file_size=max_bytes, theme=theme, css=CSS)
    print(f"* Serving the chat on http://{host}:{port}/ and the API on http://{host}:{port}/v1/docs",
          file=sys.stderr, flush=True)
    uvicorn.run(Guard(app, policy, upload_bytes=max_bytes), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=5)


if __name__ == "__main__":
    sys.exit(main())
