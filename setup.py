"""Build saat: SwiftPM compiles the core into lib_core.so, which *is* the CPython extension
module saat._core. No C compiler step of setuptools is used.

Environment:
  SWIFT                 swift executable (default: `swift` on PATH)
  SAAT_TARGET_CPU       LLVM CPU name for the kernels (default "haswell" = AVX2+FMA; "baseline" = generic x86-64)
  SAAT_DEBUG_BUILD=1    build the core in debug mode (slow; for debugging)
  SAAT_KEEP_SYMBOLS=1   do not strip the library
"""
import os
import shutil
import subprocess
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class SwiftExtension(Extension):
    def __init__(self, name, product):
        super().__init__(name, sources=[])
        self.product = product


class SwiftBuildExt(build_ext):
    def build_extension(self, ext):
        if not isinstance(ext, SwiftExtension):
            return super().build_extension(ext)
        swift = os.environ.get("SWIFT", "swift")
        if shutil.which(swift) is None:
            raise RuntimeError(
                f"saat needs the Swift toolchain to build its core: '{swift}' is not on PATH "
                "(install Swift 6 and put its usr/bin on PATH, or set SWIFT=/path/to/swift)")
        env = dict(os.environ)
        # Headers of the *building* interpreter (pyenv, venv and Debian differ).
        env["PYTHON_INCLUDE"] = sysconfig.get_paths()["include"]
        config = "debug" if env.get("SAAT_DEBUG_BUILD") == "1" else "release"
        scratch = os.path.join(ROOT, ".build")
        cmd = [swift, "build", "-c", config, "--product", ext.product, "--scratch-path", scratch,
               "-Xswiftc", "-static-stdlib"]
        if env.get("SAAT_KEEP_SYMBOLS") != "1" and config == "release":
            cmd += ["-Xlinker", "--strip-all"]
        print("saat: " + " ".join(cmd), flush=True)
        subprocess.check_call(cmd, cwd=ROOT, env=env)
        built = os.path.join(scratch, config, f"lib{ext.product}.so")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        # Copy next to the destination, then rename over it: a process that has the old module
        # loaded keeps its (unlinked) file, where copying in place would rewrite pages it maps.
        tmp = f"{dest}.{os.getpid()}.tmp"
        shutil.copyfile(built, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)


setup(
    ext_modules=[SwiftExtension("saat._core", product="_core")],
    cmdclass={"build_ext": SwiftBuildExt},
)
