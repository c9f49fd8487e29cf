"""Process-wide adjustments to Numba that make its compiles cheaper without changing what it
compiles (jit.py applies them on import, before netdsl's first compile).

- **Error messages without markup.**  Numba builds an error, message and all, wherever one
  of its lookups fails, and compiling fails many: a value with no literal type, an
  implementation sought under another signature, a constant that is not one.  Where
  colorama is installed each message is marked up through colorama's init() and deinit(),
  which wrap and unwrap the standard streams: 8,304 times in a cold LeNet-5 step compile,
  0.24 s of its ~10 s (the MLP's: 4,090, 0.12 s).  Where Numba's colour scheme is its
  default (`no_color`, bold alone) the messages are left unmarked: the same text without
  the escape codes for bold.  Numba's modules keep the scheme they found at import, so the
  method is replaced, not the instance.
- **Intrinsics typed without a registry refresh.**  Typing a call of an `@intrinsic` (the
  views, separately compiled calls, parameter views of generated code) asks for the
  registry to put its lowering in, and Numba refreshes the target context on each ask
  ("in case the target has swapped", CUDA borrowing the CPU's registries): its
  registries' imports, every registry's new entries, the typing context's the same.  Where
  the context already holds the builtin registry, the registry that call returns, the
  refresh cannot change the answer; the lowering it registers is installed by the next
  refresh, which lowering makes on its first miss, as it did.  A cold LeNet-5 step compile
  refreshed 1,419 times, 811 of them here, 0.53 s in all.
"""
from __future__ import annotations


def cheaper_compiles() -> None:
    _plain_error_messages()
    _intrinsics_typed_without_refresh()


def _plain_error_messages() -> None:
    from numba.core import config, errors
    scheme = getattr(errors, "HighlightColorScheme", None)      # absent without colorama
    if scheme is not None and getattr(config, "COLOR_SCHEME", "no_color") == "no_color":
        scheme._markup = _unmarked


def _unmarked(self, msg, color=None, style=None):
    return msg


def _intrinsics_typed_without_refresh() -> None:
    from numba.core.imputils import builtin_registry
    from numba.core.target_extension import _get_local_target_checked, dispatcher_registry
    from numba.core.typing import templates
    mixin = templates._TemplateTargetHelperMixin
    numba_lookup = getattr(mixin._get_target_registry, "numba_lookup",
                           mixin._get_target_registry)

    def _get_target_registry(self, reason):
        target = _get_local_target_checked(self.context,
                                           self.metadata.get("target", "generic"), reason)
        context = dispatcher_registry[target].targetdescr.target_context
        if builtin_registry in context._registries:
            return builtin_registry
        return numba_lookup(self, reason)

    _get_target_registry.numba_lookup = numba_lookup
    mixin._get_target_registry = _get_target_registry


__all__ = ["cheaper_compiles"]
