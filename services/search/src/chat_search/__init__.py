"""chat-search: full-text search over the conversations a caller belongs to (PROTOCOL §5).

Storage lives in :mod:`chat_search.backends`: one interface, two implementations (SQLite
FTS5 for the embedded default, OpenSearch for production).
"""
