"""The web app's source hash (chat_devtools.webapp): what the build writes does not make the
build look stale; a source change does."""

from __future__ import annotations

from pathlib import Path

from chat_devtools.webapp import source_hash


def test_files_the_build_writes_do_not_change_the_hash(tmp_path: Path) -> None:
    (tmp_path / "web" / "app").mkdir(parents=True)
    (tmp_path / "web" / "app" / "page.tsx").write_text("export default 1\n")
    before = source_hash(tmp_path)
    (tmp_path / "web" / "next-env.d.ts").write_text("/// <reference types='next' />\n")  # next build
    (tmp_path / "web" / "tsconfig.tsbuildinfo").write_text("{}")
    (tmp_path / "web" / "out").mkdir()
    (tmp_path / "web" / "out" / "index.html").write_text("<html>")
    assert source_hash(tmp_path) == before
    (tmp_path / "web" / "app" / "page.tsx").write_text("export default 2\n")
    assert source_hash(tmp_path) != before
