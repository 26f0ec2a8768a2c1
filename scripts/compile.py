"""Compile ``corral.native.MODULES`` with mypyc beside their sources, then write the
manifest that ``corral.native.guard`` checks: ``python scripts/compile.py``.

Run by ``make install`` after the editable install (mypy, which carries mypyc, is a dev
dependency). Does nothing when the build is complete and current. ``CORRAL_COMPILE=0``
removes a build instead (every module then runs from its source). With no C compiler
or no Python headers it says so, removes any old build and leaves Corral interpreted:
it runs the same, slower. The C sources and objects go to a temporary directory; only
the extensions (``src/corral/**/*.so`` and ``src/corral_native__mypyc*.so``) and the
manifest stay, all git-ignored.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
sys.path.insert(0, str(SRC))

from corral import native  # noqa: E402  (the tree being built, not an installed one)


def extensions() -> list[Path]:
    """Every extension a build made (the modules' and the group's shared library)."""
    return [*SRC.glob(f"{native.GROUP}__mypyc*.so"), *SRC.glob("corral/**/*.so")]


def clean() -> None:
    for path in extensions():
        path.unlink()
    (native.PACKAGE_DIR / native.MANIFEST).unlink(missing_ok=True)


def toolchain_missing() -> str:
    """Why no extension can be built here ("" when one can)."""
    cc = sysconfig.get_config_var("CC") or "cc"
    if shutil.which(cc.split()[0]) is None:
        return f"no C compiler ({cc.split()[0]})"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        return f"no Python headers ({include})"
    return ""


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    paths = [str(native.source_path(name).relative_to(SRC)) for name in native.MODULES]
    with tempfile.TemporaryDirectory(prefix="corral-compile-") as tmp:
        cwd = os.getcwd()
        os.chdir(SRC)  # --inplace puts each extension beside its source
        try:
            setup(
                name=native.GROUP,
                ext_modules=mypycify(
                    paths,
                    opt_level="3",
                    debug_level="0",
                    group_name=native.GROUP,
                    target_dir=str(Path(tmp) / "c"),
                ),
                script_args=["-q", "build_ext", "--inplace", "--build-temp", str(Path(tmp) / "o")],
            )
        finally:
            os.chdir(cwd)


def main() -> int:
    if os.environ.get("CORRAL_COMPILE") == "0":
        clean()
        print("compile: CORRAL_COMPILE=0, Corral runs interpreted")
        return 0
    if not native.build_problems():
        print("compile: the compiled modules are current")
        return 0
    missing = toolchain_missing()
    if missing:
        clean()
        print(f"compile: {missing}; Corral runs interpreted (slower)", file=sys.stderr)
        return 0
    clean()
    start = time.monotonic()
    build()
    manifest = {name: native.record(native.source_path(name)) for name in native.MODULES}
    (native.PACKAGE_DIR / native.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    problems = native.build_problems()
    if problems:
        clean()
        print("compile: the build is incomplete: " + "; ".join(problems), file=sys.stderr)
        return 1
    # the build must load: a fresh interpreter imports every compiled module
    check = "import corral.native as n, importlib; [importlib.import_module(m) for m in n.MODULES]"
    check += "; assert n.active(), n.disabled"
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    env["PYTHONPATH"] = str(SRC)
    subprocess.run([sys.executable, "-c", check], check=True, env=env)
    took = time.monotonic() - start
    print(f"compile: {len(native.MODULES)} modules compiled with mypyc in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
