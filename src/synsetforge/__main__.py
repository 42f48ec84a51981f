"""`python -m synsetforge` is the same as the `synsetforge` command."""

from synsetforge.cli import main

main()
