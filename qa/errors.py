"""The package's own exceptions: every error a caller should handle derives from QAError."""


class QAError(Exception):
    """Base class for errors raised by qa."""


class BadQuestionError(QAError, ValueError):
    """The question (or k) cannot be answered as given: empty, too long, out of range."""


class DocumentsError(QAError):
    """The documents folder is missing, empty, or has nothing readable."""


class IndexCorruptError(QAError):
    """The saved index is damaged or does not match; it is rebuilt when possible."""


class IndexFormatError(IndexCorruptError):
    """The saved index was written by a version of qa with another file format; it is rebuilt."""


class ModelError(QAError):
    """The embedding model could not be loaded."""
