"""Value types and errors every app shares: the adapters, the engine, the proxy and billing all take them from
here, so none of them imports another for a dataclass. This package imports nothing of ours and no Django
(tests/routing/test_engine_is_django_free.py fails if it does)."""
