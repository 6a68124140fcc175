"""The vidflow portal: a Litestar + HTMX view over a PostgreSQL projection of ``vidflow.status``."""
