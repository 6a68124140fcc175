"""The logic beside ``dataflows/ingest_flow.py``: chunk planning, stream state, storage steps."""
