"""Storage backends: the :class:`~tokenbank.storage.base.Storage` interface, its optional capabilities
(:mod:`tokenbank.storage.capabilities`) and one package per backend (``sql``, ``redis``, ``hybrid``). The registry of
storage modes is in :mod:`tokenbank.storage.base`."""
