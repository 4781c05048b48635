"""Building llama.cpp (through llama-cpp-python) for the machine it runs on, and proving it.

`cpu` reads what the running CPU and kernel offer, `flags` turns that and the chosen
backend into CMake arguments (a ladder of ever safer builds) and a build key, `selftest`
runs real llama.cpp in a child process and names the signal when it crashes, and
`install` builds, caches, installs and re-checks the wheel (`python -m lsp_server.llama_build`).

`cpu`, `flags` and `install` use only the standard library: they run before the
project's dependencies are installed.
"""
