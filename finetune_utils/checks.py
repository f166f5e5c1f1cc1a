"""What the lessons' exercise checks share: making a shortcut unusable while the student's code runs.

An exercise that says "by hand" or "without X" is only worth its points if X cannot do the work.
A check therefore calls the student's function inside :func:`forbid`, which makes every route to X
raise an ``AssertionError`` with a hint for the duration of the call: the attribute where X lives
(``torch.nn.functional.cross_entropy``), every class that defines a method X (``generate`` on the
model's class and its bases), and any name in the notebook that still holds X (``ce = F.cross_entropy``
typed in an earlier cell, or a bound method such as ``g = lm.generate``). References are computed
*before* the ``with`` block, since the library itself may need X::

    reference = lm.generate(**inputs, max_new_tokens=8)          # the check's own answer
    with checks.forbid("torch.nn.functional.cross_entropy", (lm, "generate"),
                       hint="write the loop with lm(input_ids=...).logits"):
        mine = greedy(inputs["input_ids"], 8)                    # the student's code

Used by every lesson's check cells (lessons 00-10); the shortcut suite in ``tests/`` proves that
each check refuses the lazy answers (``tests/shortcuts/``).
"""

from __future__ import annotations

import importlib
import sys
import types
from contextlib import contextmanager
from typing import Any, Iterator


def _resolve(route: str) -> tuple[Any, str]:
    """``"pkg.module.attr.sub"`` -> (the object that owns ``sub``, ``"sub"``), importing the module part."""
    parts = route.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:-1]:
            owner = getattr(owner, name)
        if not hasattr(owner, parts[-1]):
            raise AttributeError(f"forbid: {route!r} does not exist")
        return owner, parts[-1]
    raise ImportError(f"forbid: no module in {route!r}")


def _owners(target: Any, name: str) -> list[Any]:
    """Where ``name`` must be replaced: a module or class itself; for an instance, the instance and each
    class of its type's MRO that defines ``name``."""
    if isinstance(target, type):
        return [cls for cls in target.__mro__ if name in vars(cls)] or [target]
    if not isinstance(target, types.ModuleType) and hasattr(target, "__dict__"):
        found = [cls for cls in type(target).__mro__ if name in vars(cls)]
        return found + ([target] if name in vars(target) else [])
    return [target]


def _blocker(route: str, hint: str):
    def blocked(*args, **kwargs):
        raise AssertionError(f"{route} is not allowed here: {hint}")
    blocked.__name__ = f"forbidden_{route.rsplit('.', 1)[-1]}"
    return blocked


@contextmanager
def forbid(*routes: str | tuple[Any, str], hint: str, namespace: dict | None = None) -> Iterator[None]:
    """While the block runs, calling any of ``routes`` raises ``AssertionError`` naming it, with ``hint``.

    A route is a dotted path (``"torch.nn.functional.cross_entropy"``, ``"finetune_utils.sft.build_example"``,
    ``"torch.nn.CrossEntropyLoss.forward"``) or a pair (object, attribute name), e.g. ``(lm, "generate")``,
    which blocks the method on the object's class and every base class that defines it. Names in
    ``namespace`` (default: the notebook's globals, ``__main__``) that hold a blocked function, or a
    method bound to it, are blocked too. Everything is restored when the block ends, even on error.
    """
    namespace = vars(sys.modules["__main__"]) if namespace is None else namespace
    saved: list[tuple[Any, str, bool, Any]] = []   # (owner, name, had it in its own __dict__, value)
    originals: dict[int, Any] = {}

    def patch(owner: Any, name: str, value: Any) -> None:
        own = vars(owner) if hasattr(owner, "__dict__") else {}
        record = (owner, name, name in own, own.get(name, getattr(owner, name, None)))
        try:
            setattr(owner, name, value)
        except (TypeError, AttributeError) as err:  # e.g. a method of a built-in type such as torch.Tensor's
            raise TypeError(f"forbid cannot block {getattr(owner, '__name__', owner)}.{name} ({err}); block a "
                            "function the route calls instead, or check the student's code for the name") from None
        saved.append(record)  # only what was patched is restored

    try:
        for route in routes:
            target, name = _resolve(route) if isinstance(route, str) else route
            label = route if isinstance(route, str) else f"{type(target).__name__}.{name}"
            blocked = _blocker(label, hint)
            for owner in _owners(target, name):
                original = vars(owner).get(name, getattr(owner, name)) if hasattr(owner, "__dict__") else getattr(owner, name)
                function = getattr(original, "__func__", original)
                originals[id(function)] = blocked
                originals[id(original)] = blocked
                patch(owner, name, blocked)
        for key, value in list(namespace.items()):
            for candidate in (value, getattr(value, "__func__", None)):
                if candidate is not None and id(candidate) in originals:
                    saved.append((namespace, key, True, value))
                    namespace[key] = originals[id(candidate)]
                    break
        yield
    finally:
        for owner, name, had, value in reversed(saved):  # restore everything, even if one restore fails
            try:
                if owner is namespace:
                    namespace[name] = value
                elif had:
                    setattr(owner, name, value)
                else:
                    delattr(owner, name)
            except (AttributeError, TypeError):
                pass
