"""qa: question answering over a folder of news articles, answering with verbatim, cited passages."""

from .api import QA
from .errors import BadQuestionError, DocumentsError, IndexCorruptError, ModelError, QAError
from .types import Answer, Citation, DocInfo, IndexUpdate, Passage, Settings

__all__ = ["QA", "Answer", "Citation", "DocInfo", "IndexUpdate", "Passage", "Settings", "QAError",
           "BadQuestionError", "DocumentsError", "IndexCorruptError", "ModelError", "evaluate"]
__version__ = "0.1.0"


def evaluate(*args, **kwargs) -> dict:
    """Answer quality on a question file; see qa.evaluation.evaluate."""
    from .evaluation import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
