"""Storage backends: the :class:`~tokenbank.storage.base.Storage` interface, the records it speaks
(:mod:`tokenbank.storage.records`), its optional capabilities (:mod:`tokenbank.storage.capabilities`) and one package
per backend (``sql``, ``redis``, ``hybrid``). The registry of storage modes is in :mod:`tokenbank.storage.base`."""
