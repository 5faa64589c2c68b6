"""llama.cpp's own C++ ``llama-server``, built from the llama.cpp that ``llama-cpp-python``
vendors, so that ``tether bench compare`` runs the same kernels in both servers.

The sources come from llama-cpp-python's sdist of the installed version (``pip download``,
which pip's cache answers after the first time); only ``vendor/llama.cpp`` is unpacked and
only the ``llama-server`` target is built, statically, with llama.cpp's default CPU flags
(``GGML_NATIVE``: tuned for this CPU, as pip's source build of llama-cpp-python is). Extra
CMake flags in ``CMAKE_ARGS`` reach both builds the same way. The binary is cached under
``<cache>/llama-server-<version>/`` (about 5 minutes on 2 cores the first time).
"""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import platformdirs

from tether.client.api import ClientError

PACKAGE = "llama-cpp-python"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    # No web UI: it would be fetched from the network, and the benchmark never loads it.
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)


def default_cache() -> Path:
    return Path(os.environ.get("TETHER_CACHE_DIR") or platformdirs.user_cache_dir("tether"))


def version() -> str:
    """The installed llama-cpp-python's version: the llama.cpp Tether runs."""
    return importlib.metadata.version(PACKAGE)


def binary_path(cache: Path) -> Path:
    return cache / f"llama-server-{version()}" / "llama-server"


def ensure_built(cache: Path, say: Callable[[str], None] = print) -> Path:
    """The cached ``llama-server`` binary, built first if it is not there yet."""
    target = binary_path(cache)
    if target.is_file():
        return target
    for tool in ("cmake", "make"):
        if shutil.which(tool) is None:
            raise ClientError(f"building llama-server needs {tool} on the PATH")
    with tempfile.TemporaryDirectory(prefix="tether-llama-server-") as tmp:
        work = Path(tmp)
        say(f"downloading the {PACKAGE}=={version()} sources (pip's cache, if it has them)")
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--no-binary", ":all:", f"{PACKAGE}=={version()}", "-d", str(work)])  # fmt: skip
        source = _unpack_llama_cpp(work)
        build = work / "build"
        flags = [*CMAKE_FLAGS, *shlex.split(os.environ.get("CMAKE_ARGS", ""))]
        say("building llama-server (about 5 minutes on 2 cores; cached afterwards)")
        _run(["cmake", "-S", str(source), "-B", str(build), *flags])
        jobs = str(os.cpu_count() or 1)
        _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs])
        built = build / "bin" / "llama-server"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, target.with_suffix(".partial"))
        (target.parent / "cmake-flags.txt").write_text("\n".join(flags) + "\n")
        target.with_suffix(".partial").rename(target)  # whole or absent, never half-copied
    return target


def _unpack_llama_cpp(folder: Path) -> Path:
    archives = sorted(folder.glob("*.tar.gz"))
    if not archives:
        raise ClientError(f"pip downloaded no sdist of {PACKAGE}=={version()}")
    with tarfile.open(archives[0]) as tar:
        top = tar.getnames()[0].split("/")[0]
        prefix = f"{top}/vendor/llama.cpp/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(folder, members=members, filter="data")
    return folder / top / "vendor" / "llama.cpp"


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-20:]
        raise ClientError(f"{shlex.join(command[:4])} ... failed:\n" + "\n".join(tail))


def command(
    binary: Path, model: str, port: int, *, threads: int, slots: int, ctx_per_slot: int, batch: int
) -> list[str]:
    """``llama-server`` configured as ``tether serve`` is: the same threads, slots, context per
    slot (one KV stream each: llama-server's default when ``--parallel`` is given) and batch,
    and no weight repacking (Tether loads with ``use_extra_bufts = False``: ARCHITECTURE.md,
    "AMX")."""
    return [
        str(binary),
        "--model", model,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--threads", str(threads),
        "--threads-batch", str(threads),
        "--parallel", str(slots),
        "--ctx-size", str(ctx_per_slot * slots),
        "--batch-size", str(batch),
        "--ubatch-size", str(batch),
        "--cont-batching",
        "--no-repack",
        "--no-webui",
    ]  # fmt: skip
