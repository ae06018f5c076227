"""The `pynote` resource kind, in Python: the file at `path` holds `text` and a newline.

Built with componentize-py against wit/v0.1 (see README.md); its manifest (manifest.toml)
is added by `homeostat plugin pack`. Errors are raised as `Err(types.Error(...))`: the
WIT `result`s error case."""
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import fs, log, types


def params_of(text: str) -> dict:
    p = json.loads(text)
    if not p["path"].startswith("/"):
        raise Err(types.Error(message=f"`{p['path']}` is not an absolute path", field="path"))
    return p


class Plugin(exports.Plugin):
    def validate(self, id: types.ResourceId, params: str) -> types.ResourceInfo:
        p = params_of(params)
        return types.ResourceInfo(
            footprint=types.Footprint(
                paths=[types.PathGrant(path=p["path"], recursive=False, write=True)],
                commands=[], units=[], sockets=[]),
            watch=[types.WatchItem_Path(types.WatchPath(path=p["path"], recursive=False))],
            depends=[types.Dependency_Path(p["path"].rsplit("/", 1)[0] or "/")],
        )

    def check_apply(self, id: types.ResourceId, params: str, apply: bool, refresh: bool) -> types.CheckResult:
        p = params_of(params)
        want = (p["text"] + "\n").encode()
        try:
            current = fs.read(p["path"])
        except Err as e:
            if e.value.code != fs.ErrorCode.NOT_FOUND:
                raise Err(types.Error(message=e.value.message, field=None))
            current = None
        if current == want:
            return types.CheckResult(ok=True, changes=[], sends=[])
        what = "create" if current is None else "rewrite"
        if apply:
            fs.write(p["path"], want, fs.Attrs(mode=0o644, uid=None, gid=None))
            log.log(log.Level.DEBUG, f"{what} {p['path']}")
        return types.CheckResult(ok=False, changes=[types.Change(summary=f"{what} {p['path']}", diff=None)], sends=[])

    def cleanup(self, id: types.ResourceId, params: str) -> None:
        return None

    def serve(self, id: types.ResourceId, params: str) -> None:
        raise Err(types.Error(message="pynote does not serve", field=None))
