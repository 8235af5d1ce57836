"""Text people choose for others to read (display names, channel names, topics).

Besides control characters, the bidirectional controls and invisible formatting
characters are removed: they reorder or hide what others see (a name that renders as
"admin" but is stored as something else, text that runs right-to-left over its
neighbours). Zero-width joiners stay: emoji sequences and some scripts need them.
"""

from __future__ import annotations

import re

# U+061C ALM, U+200B ZWSP, U+200E/F LRM/RLM, U+202A..U+202E embeddings and overrides,
# U+2060 WJ, U+2066..U+2069 isolates, U+FEFF BOM / ZWNBSP.
_HIDDEN = re.compile("[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


def strip_hidden(text: str) -> str:
    return _HIDDEN.sub("", text)
