"""`GET /vendor/<package>/<path>`: the browser files the pages use from npm packages.

The packages come from package.json into node_modules/ (scripts/bootstrap.sh, never committed),
so the repo holds no copied library code and the CSP stays strict. Two kinds, nothing else:
- listed files (`FILES`): uPlot's minified build and stylesheet for /analytics;
- ES modules of `PACKAGES` (Yjs and what it imports) for the editor's shared drafts: the
  editor imports bare names (`yjs`, `lib0/encoding`) resolved by the import map in index.html
  (`IMPORT_MAP`): each package maps to `/vendor/<package>/`, and the route resolves a subpath
  through the package's own `exports` (browser, then ESM conditions), as a bundler would, or
  serves a `.js`/`.mjs` file of the package as is (their relative imports).
The import map is an inline script, so the pages' CSP allows exactly its hash
(`IMPORT_MAP_HASH`, api/security_headers.py); tests check index.html holds this very text.
Versions in package.json are exact, so files are cached for a day. Without node_modules (an
image built without npm) they answer 404, and the pages say so.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.problems import Problem, problem_responses
from domain.settings import get_settings

router = APIRouter(tags=["web"])
#: The ES module packages the editor loads, and the ones they import.
PACKAGES = ("yjs", "y-protocols", "lib0", "isomorphic.js")
#: Listed files: package -> served name -> its path under the package's folder.
FILES: dict[str, dict[str, str]] = {
    "uplot": {
        # The minified build (50 KB; the ES module build is not minified: 145 KB).
        "uPlot.iife.min.js": "dist/uPlot.iife.min.js",
        "uPlot.min.css": "dist/uPlot.min.css",
    },
}
CONDITIONS = ("browser", "module", "import", "default")
IMPORT_MAP = json.dumps(
    {
        "imports": {
            "yjs": "/vendor/yjs/",
            "y-protocols/": "/vendor/y-protocols/",
            "lib0/": "/vendor/lib0/",
            "isomorphic.js": "/vendor/isomorphic.js/",
        }
    },
    separators=(",", ":"),
)
IMPORT_MAP_HASH = (
    "sha256-" + base64.b64encode(hashlib.sha256(IMPORT_MAP.encode()).digest()).decode()
)


def _pick(target: Any) -> str | None:
    """The first path an `exports` target offers under our conditions."""
    if isinstance(target, str):
        return target
    if isinstance(target, dict):
        for condition in CONDITIONS:
            if condition in target:
                found = _pick(target[condition])
                if found is not None:
                    return found
    return None


@lru_cache(maxsize=512)
def resolve(root: Path, package: str, subpath: str) -> Path | None:
    """`subpath` ("" for the package itself) to a module file inside `root/package`."""
    if package not in PACKAGES:
        return None
    folder = (root / package).resolve()
    manifest = folder / "package.json"
    if not manifest.is_file():
        return None
    meta = json.loads(manifest.read_bytes())
    exports = meta.get("exports")
    key = f"./{subpath}" if subpath else "."
    target = None
    if isinstance(exports, dict):
        target = _pick(exports.get(key)) if key.startswith("./") or key == "." else None
        if target is None and key == "." and not any(k.startswith(".") for k in exports):
            target = _pick(exports)
    elif isinstance(exports, str) and key == ".":
        target = exports
    if target is None and key == ".":
        target = meta.get("module") or meta.get("main")
    path = (folder / (target or subpath)).resolve()
    if not path.is_relative_to(folder) or path.suffix not in (".js", ".mjs"):
        return None
    return path if path.is_file() else None


def vendor_root() -> Path:
    return get_settings().resolved(get_settings().web_vendor_dir)


def vendor_file(package: str, subpath: str, root: Path) -> Path:
    """The installed file, or a 404 problem (not listed, not a module of `PACKAGES`, or the
    package is not installed)."""
    if package in FILES:
        relative = FILES[package].get(subpath)
        path = root / package / relative if relative else None
    else:
        path = resolve(root, package, subpath)
    if path is None or not path.is_file():
        raise Problem(404, "not-found", "No such vendor file", f"{package}/{subpath}")
    return path


@router.get(
    "/vendor/{package}/{subpath:path}", include_in_schema=False, responses=problem_responses(404)
)
async def vendor(package: str, subpath: str) -> FileResponse:
    path = vendor_file(package, subpath, vendor_root())
    media_type = "text/javascript" if path.suffix in (".js", ".mjs") else None
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )
