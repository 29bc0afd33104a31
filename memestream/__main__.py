"""`python -m memestream`: the same command as the `memestream` console script."""

from memestream.cli import main

main()
