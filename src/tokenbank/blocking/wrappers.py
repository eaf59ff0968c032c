"""Blocking views of async objects: descriptors that run a coroutine method (or an async generator method) on
the owner's loop thread, generated from the async method so the two cannot drift apart."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from tokenbank.blocking.loop import BankLoop

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
Y = TypeVar("Y")


class BlockingWrapper(Generic[S]):
    """A blocking view of one async object: its coroutine methods run on the owner's loop thread."""

    def __init__(self, target: S, loop: BankLoop) -> None:
        self._target = target
        self._loop = loop


class BlockingMethod(Generic[S, P, R]):
    """Descriptor: the blocking twin of the async method ``method`` (signature, docs and errors the same)."""

    def __init__(self, method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]]) -> None:
        self._method = method
        self.__wrapped__ = method  # inspect.signature and help() show the async method's
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: BlockingWrapper[S], owner: type[Any]) -> Callable[P, R]: ...
    def __get__(self, obj: BlockingWrapper[S] | None, owner: type[Any]) -> Self | Callable[P, R]:
        if obj is None:
            return self
        target, loop, method = obj._target, obj._loop, self._method

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            return loop.run(method, target, *args, **kwargs)

        return call


class BlockingIterator(Generic[S, P, Y]):
    """Descriptor: an async generator method as a blocking iterator (each step one round trip to the loop)."""

    def __init__(self, method: Callable[Concatenate[S, P], AsyncIterator[Y]]) -> None:
        self._method = method
        self.__wrapped__ = method  # inspect.signature and help() show the async method's
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: BlockingWrapper[S], owner: type[Any]) -> Callable[P, Iterator[Y]]: ...
    def __get__(self, obj: BlockingWrapper[S] | None, owner: type[Any]) -> Self | Callable[P, Iterator[Y]]:
        if obj is None:
            return self
        target, loop, method = obj._target, obj._loop, self._method

        @functools.wraps(method)
        def iterate(*args: P.args, **kwargs: P.kwargs) -> Iterator[Y]:
            agen = loop.call(method, target, *args, **kwargs)
            try:
                while True:
                    try:
                        yield loop.run(agen.__anext__)
                    except StopAsyncIteration:
                        return
            finally:
                if not loop.closed:
                    loop.run(_aclose, agen)

        return iterate


async def _aclose(agen: AsyncIterator[Any]) -> None:
    close = getattr(agen, "aclose", None)
    if close is not None:
        await close()
