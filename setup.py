"""The one C extension, built at install (a C compiler is needed: gcc or clang); everything else about the
package is in pyproject.toml. clarify/bias/_knn.c is the Flip Test's k-NN kernel."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("clarify.bias._knn", ["clarify/bias/_knn.c"], extra_compile_args=["-O3"])])
