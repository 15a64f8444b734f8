"""Code as a digest: the code of the course's functions and classes (``helpers``, a notebook's
``__main__``) and of everything of the course they reach, so that a result saved by other code (a
checkpoint, cached tokens) is never taken for this code's.

A function counts by its parsed source without comments and docstrings (an edit of either retrains
nothing), or, without a source (made by exec), by its bytecode, constants and names. What a function
reaches: the functions and classes it names as globals (``attend``, a helper from another cell), and
what its closure holds (a ``collate`` made by ``make_collate``, a data object whose methods build the
batches, a plain value such as a label smoothing). What a class reaches: its methods (static and
class methods, properties), its plain class attributes, its bases, and what those reach. A method
called on an object another way (``self.blocks[0].attn``) is reached through that object's class
only when the object is reached. PyTorch's own code is never read: an upgrade of torch retrains
nothing by itself.
"""

import ast
import dis
import functools
import hashlib
import inspect
import textwrap
import weakref
from collections.abc import Callable, Iterable

# by function, with the code object it was read from (``%autoreload`` replaces a function's code); not
# by code object: two cells' equal code objects are equal whatever their file, one with a source
_SOURCES: "weakref.WeakKeyDictionary[Callable, tuple[object, bytes]]" = weakref.WeakKeyDictionary()


def digest(text: str | bytes) -> str:
    """A short sha256 of ``text``."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:16]


def _literal(value: object) -> bool:
    """A value whose repr is the same in every process: numbers, strings, None, and tuples, lists,
    sets and dicts of those (not an object whose repr holds its memory address)."""
    if isinstance(value, dict):
        return all(_literal(k) and _literal(v) for k, v in value.items())
    if isinstance(value, tuple | list | set | frozenset):
        return all(_literal(v) for v in value)
    return value is None or isinstance(value, int | float | str | bytes | bool)


def _stable_repr(value: object) -> str:
    """``repr`` with sets in sorted order (a set's order follows the hash seed)."""
    if isinstance(value, set | frozenset):
        return f"{type(value).__name__}({sorted(map(_stable_repr, value))!r})"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(sorted(f"{_stable_repr(k)}: {_stable_repr(v)}" for k, v in value.items()))
            + "}"
        )
    if isinstance(value, tuple | list):
        return type(value).__name__ + "(" + ", ".join(map(_stable_repr, value)) + ")"
    return repr(value)


def _code_bytes(code) -> bytes:
    """A code object's bytecode, constants and names, nested code (lambdas, comprehensions) included,
    without the memory addresses or hash-seed orders that ``repr`` would put in."""
    consts = (
        _code_bytes(c) if inspect.iscode(c) else _stable_repr(c).encode() for c in code.co_consts
    )
    return code.co_code + b"|" + b"|".join(consts) + b"|" + " ".join(code.co_names).encode()


def _without_docstrings(source: str) -> bytes:
    """The parsed ``source`` with every docstring dropped, written out again (comments and layout
    gone; ``ast.unparse``, whose text changes less across Python versions than ``ast.dump``'s)."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):  # fmt: skip
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree).encode()


def function_source(fn: Callable) -> bytes:
    """``fn``'s code as ``helpers.source`` counts it (found through its code object, so exact for a
    function re-defined in a notebook cell or reloaded): its parsed source without comments and
    docstrings, else its source as text (a lambda amid other code), else its compiled code."""
    code = fn.__code__
    if fn in _SOURCES and _SOURCES[fn][0] is code:
        return _SOURCES[fn][1]
    try:
        source = inspect.getsource(fn)
    except Exception:  # no source (exec), or a file changed on disk mid-edit
        counted = _code_bytes(code)
    else:
        try:
            counted = _without_docstrings(source)
        except SyntaxError:  # a lambda's lines hold other code around it
            counted = source.encode()
    _SOURCES[fn] = (code, counted)
    return counted


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


def _module(obj: object) -> str:
    module = getattr(obj, "__module__", None)
    return module if isinstance(module, str) else ""


def reached(roots: Iterable[object]) -> list[tuple[str, bytes]]:
    """The course's functions and classes ``roots`` reach (functions, classes, bound methods,
    ``functools.partial``, wrapped functions, or objects whose class is the course's), each once as
    (qualified name, code), sorted: a function's code and the plain values its closure holds, a
    class's plain attributes (its methods are entries of their own). Two functions may share a name (a
    wrapper around the one it replaced): both are kept."""
    roots = [r for r in roots if _module(r).split(".")[0] != "torch"]  # never torch's own code
    homes = {_module(r) for r in roots if inspect.isfunction(r) or isinstance(r, type)}

    def ours(obj: object) -> bool:
        module = _module(obj)
        return module in homes or module == "__main__" or module.split(".")[0] == "helpers"

    def follows(o: object) -> bool:
        if inspect.isfunction(o) or isinstance(o, type):
            return ours(o)
        return ours(type(o)) or isinstance(o, functools.partial)

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
            values = [*obj.args, *obj.keywords.values()]
            plain = [v if _literal(v) else "..." for v in obj.args]
            plain += [(k, v if _literal(v) else "...") for k, v in sorted(obj.keywords.items())]
            found.append((f"partial of {_module(obj.func)}.{getattr(obj.func, '__qualname__', '')}",
                          _stable_repr(tuple(plain)).encode()))  # fmt: skip
            todo += [obj.func, *values]
        elif inspect.isfunction(obj):
            wrapped = getattr(obj, "__wrapped__", None)
            if callable(wrapped):  # a decorated function: its own body
                todo.append(wrapped)
                continue
            name = f"{_module(obj)}.{obj.__qualname__}"
            cells = _cells(obj)
            names = sorted(_names(obj.__code__))
            plain = tuple(c for c in cells if _literal(c))  # a label smoothing a closure holds
            plain += tuple((g, obj.__globals__[g]) for g in names  # a constant it reads: SCALE
                           if g in obj.__globals__ and _literal(obj.__globals__[g]))  # fmt: skip
            found.append((name, function_source(obj) + _stable_repr(plain).encode()))
            todo += [o for o in (*(obj.__globals__.get(g) for g in names), *cells) if follows(o)]
        elif isinstance(obj, type):
            attributes = sorted((name, _stable_repr(value)) for name, value in vars(obj).items()
                                if _literal(value) and not name.startswith("__"))  # fmt: skip
            found.append((f"{obj.__module__}.{obj.__qualname__}", repr(attributes).encode()))
            held = [v for v in vars(obj).values() if callable(v) and follows(v)]  # ACT = (fn,)
            held += [f for v in vars(obj).values() if isinstance(v, tuple) for f in v if follows(f)]
            todo += [*_methods(obj), *held, *(b for b in obj.__mro__[1:] if ours(b))]
        elif callable(getattr(obj, "__wrapped__", None)) and not ours(type(obj)):  # lru_cache
            todo.append(obj.__wrapped__)
        elif ours(type(obj)):
            todo.append(type(obj))
    return sorted(found)


def code_digest(*roots: object) -> str:
    """A digest of the code of ``roots`` and of all of the course's code they reach (``reached``)."""
    return digest(b"\n".join(name.encode() + b"\n" + code for name, code in reached(roots)))
