"""Browser ES modules from npm packages (`/vendor/<package>/<subpath>`): Yjs and its helpers,
installed into node_modules by scripts/bootstrap.sh, never committed.

The editor imports bare names (`yjs`, `lib0/encoding`) resolved by the import map in
index.html (`IMPORT_MAP`): each package maps to `/vendor/<package>/`, and this route resolves
a subpath through the package's own `exports` (browser, then ESM conditions), as a bundler
would, or serves a module file of the package as is (their relative imports). Only the
packages in `PACKAGES` are served, only `.js`/`.mjs` files inside them.

The import map is an inline script, so the pages' CSP allows exactly its hash
(`IMPORT_MAP_HASH`, api/security_headers.py); tests check index.html holds this very text.
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

from api.problems import Problem
from domain.settings import get_settings

router = APIRouter(tags=["web"])
#: The packages the editor loads, and the ones they import.
PACKAGES = ("yjs", "y-protocols", "lib0", "isomorphic.js")
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


@router.get("/vendor/{package}/{subpath:path}", include_in_schema=False)
async def vendor_module(package: str, subpath: str) -> FileResponse:
    root = get_settings().resolved(get_settings().web_vendor_dir)
    path = resolve(root, package, subpath)
    if path is None:
        raise Problem(404, "not-found", "No such module", f"{package}/{subpath}")
    return FileResponse(
        path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"}
    )
