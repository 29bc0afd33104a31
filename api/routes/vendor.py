"""`GET /vendor/<package>/<file>`: the few browser files the pages use from npm packages.

The packages come from package.json into node_modules/ (scripts/bootstrap.sh, never committed),
so the repo holds no copied library code and the CSP stays `script-src 'self'`. Only the files
listed here are served, never the rest of node_modules (sources, maps, other packages); the
version in package.json is exact, so the files are cached for a day and revalidated by ETag.
Without node_modules (an image built without npm) they answer 404 and the page says so.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.problems import Problem, problem_responses
from domain.settings import PROJECT_ROOT

NODE_MODULES = PROJECT_ROOT / "node_modules"
#: package -> served file name -> its path under the package's folder.
FILES: dict[str, dict[str, str]] = {
    "uplot": {
        # The minified build (50 KB; the ES module build is not minified: 145 KB).
        "uPlot.iife.min.js": "dist/uPlot.iife.min.js",
        "uPlot.min.css": "dist/uPlot.min.css",
    },
}
router = APIRouter(tags=["web"])


def vendor_file(package: str, name: str, root: Path = NODE_MODULES) -> Path:
    """The installed file, or a 404 problem (unknown name, or the package is not installed)."""
    relative = FILES.get(package, {}).get(name)
    path = root / package / relative if relative else None
    if path is None or not path.is_file():
        raise Problem(404, "not-found", "No such vendor file", f"{package}/{name}")
    return path


@router.get(
    "/vendor/{package}/{name}",
    include_in_schema=False,
    responses=problem_responses(404),
)
async def vendor(package: str, name: str) -> FileResponse:
    return FileResponse(vendor_file(package, name), headers={"Cache-Control": "max-age=86400"})
