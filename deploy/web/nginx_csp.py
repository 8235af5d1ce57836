"""Write the web server's per-file Content-Security-Policy as an nginx ``map``.

    python deploy/web/nginx_csp.py /web > /etc/nginx/csp.conf      (the image's build stage)

The gateway sends each HTML file of the export its own CSP (``script-src 'self'`` plus the
sha256 of that file's inline scripts, chat_gateway.web); the ``web`` image (nginx) must send
the same. This renders ``csp-hashes.json`` (made by ``python -m chat_gateway.web prepare``)
with the gateway's own ``csp()``, so both always agree. ``$chat_csp`` is empty for files
that are not HTML (nginx then sends no header).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from chat_gateway.web import CSP_MANIFEST, csp


def render(root: Path) -> str:
    hashes: dict[str, list[str]] = json.loads((root / CSP_MANIFEST).read_text())
    lines = ["map $uri $chat_csp {", '    default "";']
    for rel in sorted(hashes):
        policy = csp(hashes[rel])
        assert '"' not in policy and '"' not in rel, rel
        lines.append(f'    "/{rel}" "{policy}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1])))
