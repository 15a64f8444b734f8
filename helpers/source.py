"""Code as a digest: the source of the course's functions and classes (``helpers``, a notebook's
``__main__``) and of everything of the course they reach, so that a result saved by other code (a
checkpoint, cached tokens) is never taken for this code's.

What a function reaches: the functions and classes it names as globals (``attend``, a helper from
another cell), and what its closure holds (a ``collate`` made by ``make_collate``, a data object whose
methods build the batches). What a class reaches: its methods (static and class methods, properties),
its plain class attributes, and what those methods reach. A method called on an object another way
(``self.blocks[0].attn``) is reached through that object's class only when the object is reached.
"""

import dis
import functools
import hashlib
import inspect
import weakref
from collections.abc import Callable, Iterable

_SOURCES: "weakref.WeakKeyDictionary[object, bytes]" = weakref.WeakKeyDictionary()


def digest(text: str | bytes) -> str:
    """A short sha256 of ``text``."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:16]


def _code_bytes(code) -> bytes:
    """A code object's bytecode and constants, nested code (lambdas, comprehensions) included, without
    the memory addresses that ``repr`` would put in."""
    consts = (_code_bytes(c) if inspect.iscode(c) else repr(c).encode() for c in code.co_consts)
    return code.co_code + b"|" + b"|".join(consts)


def function_source(fn: Callable) -> bytes:
    """``fn``'s source (found through its code, so exact for a function re-defined in a notebook
    cell), else its compiled code (a function made by exec has no source)."""
    if fn not in _SOURCES:
        try:
            _SOURCES[fn] = inspect.getsource(fn).encode()
        except (OSError, TypeError):
            _SOURCES[fn] = _code_bytes(fn.__code__)
    return _SOURCES[fn]


def _names(code) -> set[str]:
    """The global names ``code`` (and the code nested in it) reads: not attribute names, which
    ``co_names`` holds too (``corpus.train`` is not the function ``train``)."""
    nested = (_names(c) for c in code.co_consts if inspect.iscode(c))
    own = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    return own.union(*nested)


def _cells(fn) -> list:
    """What ``fn``'s closure holds (an empty cell, a name not yet bound, is left out)."""
    held = []
    for cell in fn.__closure__ or ():
        try:
            held.append(cell.cell_contents)
        except ValueError:
            pass
    return held


def _methods(cls: type) -> list:
    """``cls``'s own functions: plain, static and class methods, and properties' getters and setters."""
    found = []
    for member in vars(cls).values():
        if isinstance(member, staticmethod | classmethod):
            member = member.__func__
        if isinstance(member, property):
            found += [f for f in (member.fget, member.fset) if f is not None]
        elif inspect.isfunction(member):
            found.append(member)
    return found


def reached(roots: Iterable[object]) -> list[tuple[str, bytes]]:
    """The course's functions and classes ``roots`` reach (functions, classes, bound methods,
    ``functools.partial``, or objects whose class is the course's), each once as (qualified name,
    code), sorted: a function's source, a class's plain attributes (its methods are entries of their
    own). Two functions may share a name (a wrapper around the one it replaced): both are kept."""
    roots = list(roots)  # the modules of the functions and classes given are the course's too
    homes = {r.__module__ for r in roots if inspect.isfunction(r) or isinstance(r, type)}

    def ours(obj: object) -> bool:
        module = getattr(obj, "__module__", None) or ""
        return module in homes or module == "__main__" or module.split(".")[0] == "helpers"

    found: list[tuple[str, bytes]] = []
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if inspect.ismethod(obj):
            todo += [obj.__func__, obj.__self__]
        elif isinstance(obj, functools.partial):
            todo += [obj.func, *obj.args, *obj.keywords.values()]
        elif inspect.isfunction(obj):
            fn = inspect.unwrap(obj)  # a decorated function: its own body
            if fn is not obj:
                todo.append(fn)
                continue
            found.append((f"{fn.__module__}.{fn.__qualname__}", function_source(fn)))
            names = (fn.__globals__.get(name) for name in sorted(_names(fn.__code__)))
            todo += [o for o in (*names, *_cells(fn)) if inspect.isfunction(o) and ours(o)
                     or isinstance(o, type) and ours(o) or not isinstance(o, type) and ours(type(o))]  # fmt: skip
        elif isinstance(obj, type):
            attributes = sorted((name, repr(value)) for name, value in vars(obj).items()
                                if isinstance(value, int | float | str | bool | tuple)
                                and not name.startswith("__"))  # fmt: skip
            found.append((f"{obj.__module__}.{obj.__qualname__}", repr(attributes).encode()))
            todo += _methods(obj)
        elif ours(type(obj)):
            todo.append(type(obj))
    return sorted(found)


def code_digest(*roots: object) -> str:
    """A digest of the code of ``roots`` and of all of the course's code they reach (``reached``)."""
    return digest(b"\n".join(name.encode() + b"\n" + code for name, code in reached(roots)))
