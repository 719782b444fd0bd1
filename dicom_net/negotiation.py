"""A lighter association set-up (issue 16): the same negotiation, with less repeated work.

Some senders (TPS exports, linac consoles, DCMTK's `storescu` run once per file) open one
association per object and propose about 120 presentation contexts each time. Issue 16's
profile of that workload (py-spy, 100 associations of one 64x64 image each) put about a
quarter of the SCP's time into checking the same few hundred UIDs again and again: every
UID in the A-ASSOCIATE-RQ, in the negotiation and in the A-ASSOCIATE-AC is made a pydicom
`UID`, which checks it against a regular expression in pydicom (`UID.__new__`, `is_valid`)
and again in pynetdicom (`_config.VALIDATORS["UI"]`). Another 6 % went to `deepcopy` of our
43 supported presentation contexts (each with its transfer syntaxes) for every association.

What this module changes, behaviour kept:

- pynetdicom's own logging handlers are not bound unless its logger prints DEBUG
  (`_config.LOG_HANDLER_LEVEL`): they format every PDU whether or not it is printed;

- pynetdicom's `set_uid` (text or bytes to a checked UID) and the UID its presentation
  contexts make of each transfer syntax are remembered too: the same immutable UID
  object stands for the same text (a non-conformant UID is then warned about once);
- the three UID checks remember their answers (`functools.lru_cache`, bounded: a peer that
  sends a million distinct UIDs costs a million checks, as before, and at most
  `UID_CHECK_CACHE` remembered answers). A UID's validity depends on its text alone;
  pynetdicom's also on `_config.ENFORCE_UID_CONFORMANCE`, which is part of the key.
- `ContextList`: the supported contexts the server hands each association are copied
  with a copy made for their shape (a new PresentationContext with its own lists) instead
  of `copy.deepcopy`'s generic walk; the copy holds equal, unshared values, as before.

`install()` checks the library internals it wraps and changes nothing, with a warning,
where they are not what this module was written against (pydicom 3.0, pynetdicom 3.0).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from typing import Any

import pydicom
import pynetdicom
from pydicom import valuerep
from pydicom.uid import UID
from pynetdicom import _config, presentation, utils
from pynetdicom.presentation import PresentationContext

log = logging.getLogger(__name__)

UID_CHECK_CACHE = 4096  # distinct UIDs remembered per check; a few hundred are in use

_Pair = tuple[bool, str]


def _memo_pydicom(check: Callable[[str, Any], _Pair]) -> Callable[[str, Any], _Pair]:
    cached = functools.lru_cache(maxsize=UID_CHECK_CACHE)(check)

    def ui_check(vr: str, value: Any) -> _Pair:
        if isinstance(value, str):
            return cached(vr, str(value))
        return check(vr, value)

    ui_check._verity_memo = True  # type: ignore[attr-defined]
    ui_check.cache_info = cached.cache_info  # type: ignore[attr-defined]
    return ui_check


def _memo_pynetdicom(check: Callable[[Any], _Pair]) -> Callable[[Any], _Pair]:
    @functools.lru_cache(maxsize=UID_CHECK_CACHE)
    def cached(value: str, enforce: bool) -> _Pair:
        return check(value)

    def ui_check(value: Any) -> _Pair:
        if isinstance(value, str):
            return cached(str(value), bool(_config.ENFORCE_UID_CONFORMANCE))
        return check(value)

    ui_check._verity_memo = True  # type: ignore[attr-defined]
    ui_check.cache_info = cached.cache_info  # type: ignore[attr-defined]
    return ui_check


@functools.lru_cache(maxsize=UID_CHECK_CACHE)
def _uid_is_valid(text: str) -> bool:
    return bool(_STOCK_IS_VALID(text))  # type: ignore[arg-type]  # len() and re.match only


def _is_valid(self: UID) -> bool:
    """As pydicom's `UID.is_valid` (length and regular expression), remembered."""
    return _uid_is_valid(str(self))


_STOCK_IS_VALID: Callable[[UID], bool] = UID.is_valid.fget  # type: ignore[attr-defined]
_installed = False

# pynetdicom modules that took `set_uid` by name (`from pynetdicom.utils import set_uid`).
_SET_UID_USERS = ("pdu_items", "pdu_primitives", "presentation", "dimse_primitives")


def _memo_set_uid(stock: Callable[..., UID | None]) -> Callable[..., UID | None]:
    """pynetdicom's set_uid (text to a checked UID), remembering its answers: a UID is an
    immutable str, so the same object can stand for the same text everywhere."""
    cached = functools.lru_cache(maxsize=UID_CHECK_CACHE)(stock)

    def set_uid(value: Any, name: str, allow_empty: bool = True, allow_none: bool = True,
                validate: bool = True) -> UID | None:
        if type(value) in (str, bytes, UID):
            key = str(value) if type(value) is UID else value
            return cached(key, name, allow_empty, allow_none, validate)  # type: ignore[no-any-return]
        return stock(value, name, allow_empty, allow_none, validate)

    set_uid._verity_memo = True  # type: ignore[attr-defined]
    return set_uid


@functools.lru_cache(maxsize=UID_CHECK_CACHE)
def _uid(text: str) -> UID:
    return UID(text)


def _uid_of(value: str) -> UID:
    """`UID(value)` for pynetdicom.presentation (transfer syntaxes), remembered."""
    return _uid(str(value)) if type(value) in (str, UID) else UID(value)


def install() -> bool:
    """Remember the UID checks' answers; True when they are in place."""
    global _installed
    if _installed:
        return True
    ok = (pydicom.__version__.startswith("3.") and pynetdicom.__version__.startswith("3.")
          and callable(valuerep.VALIDATORS.get("UI"))
          and callable(_config.VALIDATORS.get("UI"))
          and isinstance(vars(UID).get("is_valid"), property))
    if not ok:
        log.warning("pydicom %s / pynetdicom %s: not the versions dicom_net.negotiation was "
                    "written for; UID checks left as they are", pydicom.__version__,
                    pynetdicom.__version__)
        return False
    if not getattr(valuerep.VALIDATORS["UI"], "_verity_memo", False):
        valuerep.VALIDATORS["UI"] = _memo_pydicom(valuerep.VALIDATORS["UI"])
    if not getattr(_config.VALIDATORS["UI"], "_verity_memo", False):
        _config.VALIDATORS["UI"] = _memo_pynetdicom(_config.VALIDATORS["UI"])
    UID.is_valid = property(_is_valid)  # type: ignore[assignment,method-assign]
    for name in _SET_UID_USERS:
        module = importlib.import_module(f"pynetdicom.{name}")
        if getattr(module, "set_uid", None) is utils.set_uid:
            module.set_uid = _memo_set_uid(utils.set_uid)  # type: ignore[attr-defined]
    if presentation.UID is UID:  # called only to make transfer syntaxes (and at start-up)
        presentation.UID = _uid_of  # type: ignore[assignment,misc]
    # pynetdicom's "standard" handlers describe every PDU and DIMSE message for its DEBUG
    # log (each of the ~120 proposed contexts, by name), whether or not DEBUG is on: 5 % of
    # an association. Kept when its logger would print them.
    _config.LOG_HANDLER_LEVEL = handler_level()
    _installed = True
    return True


def handler_level() -> str:
    """pynetdicom's LOG_HANDLER_LEVEL: its standard handlers only when they would print."""
    return "standard" if logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG) else "none"


# --- the supported contexts, copied per association ----------------------------------------

def copy_context(cx: PresentationContext) -> PresentationContext:
    """A copy of a presentation context that shares nothing mutable with it."""
    new = PresentationContext.__new__(PresentationContext)
    new.__dict__.update({name: list(value) if isinstance(value, list) else value
                         for name, value in vars(cx).items()})
    return new


def _copyable(cx: PresentationContext) -> bool:
    """Only lists and immutable values inside: copy_context is then a deep copy."""
    immutable = (type(None), bool, int, str)
    for value in vars(cx).values():
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, immutable) for item in items):
            return False
    return True


class ContextList(list[PresentationContext]):
    """The server's supported contexts: pynetdicom deep-copies them for every association
    (`RequestHandler._create_association`); `copy.deepcopy` calls `__deepcopy__`."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        return [copy_context(cx) for cx in self]


def fast_copied(contexts: list[PresentationContext]) -> list[PresentationContext]:
    """`contexts` as a ContextList, when every context can be copied that way."""
    if all(type(cx) is PresentationContext and _copyable(cx) for cx in contexts):
        return ContextList(contexts)
    return contexts
