"""Why a predictor's module failed to import: the exception, the module and line, and known legacy breakages.

A custom prediction routine written for AI Platform's runtimes (scikit-learn 0.20, TensorFlow 1,
Python 2.7 or 3.5) often meets a library that has since removed something it imports. The cause is
then an exception raised deep inside an import; :func:`describe_failure` turns it into one
readable sentence: the exception type and message, the file and line of the user's code that
raised it (or imported what raised it), and, where the failure is a known breakage, what to write
instead (:data:`KNOWN_BREAKAGES`).
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["KNOWN_BREAKAGES", "Breakage", "ImportFailure", "describe_failure", "known_hint"]


@dataclass(frozen=True)
class Breakage:
    """A failure that legacy predictors meet: a pattern on "source line + Type: message", and the fix."""

    pattern: str
    hint: str

    def matches(self, text: str) -> bool:
        return re.search(self.pattern, text) is not None


KNOWN_BREAKAGES: tuple[Breakage, ...] = (
    Breakage(r"sklearn\.externals\.joblib|from sklearn\.externals import joblib|"
             r"name 'joblib' from 'sklearn\.externals'",
             "sklearn.externals.joblib was removed in scikit-learn 0.23: write `import joblib` instead (joblib is "
             "installed with scikit-learn). A model file saved through sklearn.externals.joblib may reference that "
             "module too: load it once where it still exists and save it again with joblib.dump."),
    Breakage(r"sklearn\.externals\.six|from sklearn\.externals import six|name 'six' from 'sklearn\.externals'",
             "sklearn.externals.six was removed in scikit-learn 0.23: write `import six` (and declare six in your "
             "requirements), or use plain Python 3."),
    Breakage(r"sklearn\.(cross_validation|grid_search|learning_curve)\b",
             "sklearn.cross_validation, sklearn.grid_search and sklearn.learning_curve were removed in scikit-learn "
             "0.20: import the same names from sklearn.model_selection."),
    Breakage(r"name 'Imputer' from 'sklearn\.preprocessing'",
             "sklearn.preprocessing.Imputer was removed in scikit-learn 0.22: use sklearn.impute.SimpleImputer."),
    Breakage(r"tensorflow\.contrib|tf\.contrib",
             "tf.contrib was removed in TensorFlow 2.0: use the TensorFlow 2 or TensorFlow Addons equivalent."),
    Breakage(r"module 'tensorflow' has no attribute '(Session|placeholder|get_default_graph|ConfigProto)'",
             "That is TensorFlow 1 API, removed in TensorFlow 2.0: use tf.compat.v1 (for example "
             "tf.compat.v1.Session), or port the code to TensorFlow 2."),
    Breakage(r"keras\.wrappers",
             "keras.wrappers.scikit_learn was removed from Keras: use the scikeras package."),
    Breakage(r"cannot import name '\w+' from 'collections'",
             "The abstract base classes moved to collections.abc (the old aliases were removed in Python 3.10): "
             "write `from collections.abc import ...`."),
    Breakage(r"module 'numpy' has no attribute '(float|int|bool|object|str|long|unicode|complex)'",
             "np.float, np.int, np.bool, np.object and the like were removed in NumPy 1.24: use the builtin type "
             "(float, int, ...) or a sized NumPy type (np.float64, np.int64)."),
    Breakage(r"No module named '(cPickle|StringIO|cStringIO|urllib2|ConfigParser|Queue|__builtin__)'",
             "That is a Python 2 module: in Python 3 it is pickle, io, urllib.request, configparser, queue or "
             "builtins."),
    Breakage(r"Missing parentheses in call to 'print'|invalid syntax.*\bprint\b",
             "That is Python 2 syntax: this runtime is Python 3 (write print(...); run 2to3 over the module)."),
)


def known_hint(text: str) -> str | None:
    """The fix for a known legacy breakage that ``text`` (source line, exception) shows, if any."""
    return next((b.hint for b in KNOWN_BREAKAGES if b.matches(text)), None)


@dataclass(frozen=True)
class ImportFailure:
    """What went wrong while importing: exception type and message, where in the user's code, and a hint."""

    type: str
    message: str
    file: str | None = None
    line: int | None = None
    source: str | None = None
    hint: str | None = None

    def where(self) -> str:
        if self.file is None:
            return ""
        at = f" at {self.file} line {self.line}" if self.line else f" in {self.file}"
        return at + (f": `{self.source}`" if self.source else "")

    def sentence(self) -> str:
        """``"ImportError: cannot import ... at predictor.py line 3: `from ...`."``."""
        return f"{self.type}: {self.message}{self.where()}."


def _shown(filename: str, sites: Sequence[str]) -> tuple[str, bool]:
    """The file as the user knows it (relative to the package folder), and whether it is in the package."""
    for site in sites:
        if filename.startswith(site.rstrip(os.sep) + os.sep):
            return os.path.relpath(filename, site), True
    return filename, False


def _user_frame(exc: BaseException, sites: Sequence[str]) -> tuple[str, int | None, str | None] | None:
    """The innermost frame of the package's own code (else the innermost real frame) of ``exc``."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return _shown(exc.filename, sites)[0], exc.lineno, (exc.text or "").strip() or None
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    shown = [(_shown(f.filename, sites), f) for f in frames]
    own = [(name, f) for (name, in_package), f in shown if in_package]
    if own:
        name, frame = own[-1]
    elif shown:
        (name, _), frame = shown[-1]
    else:
        return None
    return name, frame.lineno, (frame.line or "").strip() or None


def describe_failure(exc: BaseException, *, sites: Sequence[str] = ()) -> ImportFailure:
    """``exc`` (raised while importing user code) as one record: type, message, file and line, known fix."""
    message = str(exc.msg if isinstance(exc, SyntaxError) else exc) or "(no message)"
    if isinstance(exc, ImportError) and exc.path:  # "cannot import name 'x' from 'y' (/path/y/__init__.py)"
        message = message.replace(f" ({exc.path})", "")
    frame = _user_frame(exc, [os.fspath(s) for s in sites])
    file, line, source = frame if frame else (None, None, None)
    hint = known_hint(f"{source or ''}\n{type(exc).__name__}: {message}")
    return ImportFailure(type(exc).__name__, message, file, line, source, hint)
