# Only the extension modules live here; all metadata is in pyproject.toml.
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

SRC = Path("src/maelstrom_core")

# C headers an extension includes: listed so they ride in the sdist and trigger rebuilds.
DEPENDS = {"_digest_c": [str(SRC / "_sha256.h"), str(SRC / "_sha256.pxd")]}

extensions = [
    Extension(
        f"maelstrom_core.{pyx.stem}",
        [str(pyx)],
        extra_compile_args=["-O2"],
        depends=DEPENDS.get(pyx.stem, []),
    )
    for pyx in sorted(SRC.glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "embedsignature": True},
    )
)
