"""Reading and watching a student's code, for every checker: the tolerance, the not-a-tensor verdict,
the loop detector (``find_loop``, which reads the source's syntax tree) and the in-place guard
(``guarded``)."""

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable
from copy import deepcopy
from typing import TypeVar, overload

import torch
import torch.nn as nn

from helpers.feedback import (
    InputChanged,
    kind_of,
)

TOL = {"atol": 1e-4, "rtol": 1e-4}
M = TypeVar("M", bound=nn.Module)
R = TypeVar("R")
LOOP_HINT = (
    "no Python loops over the batch or the tokens: one matmul computes every score at once "
    "(q @ k.transpose(-2, -1) has shape (B, T, T))"
)


def not_a_tensor(got: object, shape: tuple, what: str) -> str | None:
    """Why ``got`` is not the (shape) tensor expected, or None when it is: None, a tuple or anything
    else is named as such, not given a "shape"."""
    if isinstance(got, torch.Tensor):
        if tuple(got.shape) == tuple(shape):
            return None
        return f"the output has shape {tuple(got.shape)}; expected {what} = {tuple(shape)}"
    if got is None:
        return f"the output is None: did you forget `return`? (expected {what} = {tuple(shape)})"
    if isinstance(got, tuple | list):
        return (f"the output is a {type(got).__name__} of {len(got)}, not one tensor: return only "
                f"{what} = {tuple(shape)}")  # fmt: skip
    return f"the output is {kind_of(got)}, not a tensor: return {what} = {tuple(shape)}"


def _close(a: torch.Tensor, b: torch.Tensor, **tol) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, equal_nan=True, **(tol or TOL))


# A loop whose iterable names nothing but these walks the module's settings, not the data.
SETTINGS_ONLY = {"self", "range", "len", "enumerate", "zip", "reversed", "tuple", "list"}
TENSOR_SIZES = {"shape", "size", "numel", "nelement", "ndim", "dim"}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN equal to NaN (an input holding NaN that nobody changed is unchanged)."""
    if a.is_floating_point() or a.is_complex():
        return a.shape == b.shape and bool(
            torch.isclose(a, b, rtol=0, atol=0, equal_nan=True).all()
        )
    return torch.equal(a, b)


@overload
def guarded(code: M, names: tuple[str, ...] = ...) -> M: ...
@overload
def guarded(code: Callable[..., R], names: tuple[str, ...] = ...) -> Callable[..., R]: ...
def guarded(
    code: nn.Module | Callable[..., R], names: tuple[str, ...] = ("x", "mask")
) -> nn.Module | Callable[..., R]:
    """``code`` (a module, or a function) that raises InputChanged, naming the argument, when a call
    changes a tensor argument in place; a module is returned itself, watched through its hooks."""

    def compare(args: tuple, before: list) -> None:
        for name, arg, copy in zip(names, args, before):
            if isinstance(arg, torch.Tensor) and not _same(arg, copy):
                raise InputChanged(name)

    def copies(args: tuple) -> list:
        return [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]

    if isinstance(code, nn.Module):
        saved: list[list] = []  # a stack: a forward that raises leaves its entry, popped by nobody
        code.register_forward_pre_hook(lambda module, args: saved.append(copies(args)))
        code.register_forward_hook(lambda module, args, out: compare(args, saved.pop()))
        return code

    @functools.wraps(code)
    def watched(*args: object) -> R:
        before = copies(args)
        out = code(*args)
        compare(args, before)
        return out

    return watched


def source_tree(fn: Callable) -> ast.AST | None:
    """The parsed source of the function ``fn`` (unwrapped), or None when Python cannot show it (a
    function typed at a bare prompt, a builtin)."""
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(fn))))
    except (OSError, TypeError, SyntaxError, ValueError):
        return None


def once_bound(tree: ast.AST) -> dict[str, ast.expr]:
    """The local names of ``tree`` bound once, by ``name = value``, each with its value: a loop over
    one of them loops over what it names (``qkv = q, k, v``, ``n = len(self.normalized_shape)``)."""
    stored = [
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    ]
    values = {
        target.id: node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    return {name: value for name, value in values.items() if stored.count(name) == 1}


def expanded(node: ast.expr, bound: dict[str, ast.expr], depth: int = 4) -> ast.expr:
    """``node`` with each name of ``bound`` replaced by its value, ``depth`` times at most."""

    class Inline(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.expr:
            return (
                expanded(bound[name.id], bound, depth - 1) if name.id in bound and depth else name
            )

    return Inline().visit(deepcopy(node))


def written_out(node: ast.expr) -> bool:
    """A tuple or list written out item by item (``(q, k, v)``), not one spreading a tensor
    (``[*query]``)."""
    return isinstance(node, ast.Tuple | ast.List) and not any(
        isinstance(item, ast.Starred) for item in node.elts
    )


def sizes_of_tensors(node: ast.expr) -> bool:
    """Whether ``node`` reads a tensor's size (``self.weight.numel()``, ``.shape``): a loop over it
    walks the features, not the settings."""
    return any(isinstance(n, ast.Attribute) and n.attr in TENSOR_SIZES for n in ast.walk(node))


def find_loop(code: type | Callable, strict: bool = False) -> str | None:
    """Where a method of the class ``code`` (or the function ``code``) loops over data (for/while over
    range, shapes or its inputs), or None. ``strict``: every loop but one over a written-out tuple or
    list (``(self.query, self.key)``) counts, so ``range(self.num_heads)`` and ``q.split(...)`` do
    too (attention has nothing else to loop over). A local name bound once is read as its value."""
    method = isinstance(code, type)
    members = vars(code).items() if method else [(getattr(code, "__name__", "it"), code)]
    for name, member in members:
        # building layers in a loop is fine
        if not inspect.isfunction(member) or name == "__init__":
            continue
        if (tree := source_tree(member)) is None:
            continue  # source not available: nothing to report
        defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.Lambda)]
        if not defs:
            continue
        inputs = {a.arg for a in defs[0].args.args[int(method) :]}  # without self
        bound = {k: v for k, v in once_bound(tree).items() if k not in inputs}
        for node in ast.walk(tree):
            if isinstance(node, ast.While):
                return f"`{name}` has a while loop"
            if isinstance(node, ast.For | ast.comprehension):
                over, iterable = ast.unparse(node.iter), expanded(node.iter, bound)
                if written_out(iterable):  # (self.query, self.key), (x, mask)
                    continue
                if strict:
                    return f"`{name}` loops over `{over}`"
                names = {n.id for n in ast.walk(iterable) if isinstance(n, ast.Name)}
                # e.g. range(len(self.normalized_shape)): the settings, not the data's sizes
                if names <= SETTINGS_ONLY and not sizes_of_tensors(iterable):
                    continue
                if any(s in over for s in ("range(", "shape", "size(", "len(")) or names & inputs:
                    return f"`{name}` loops over `{over}`"
    return None
