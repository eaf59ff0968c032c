"""Integrations of tokenbank with web frameworks; each needs its extra (``tokenbank[fastapi]``...)."""
