"""Media service: uploads validated by content, sanitized, stored, served to who may see them."""
