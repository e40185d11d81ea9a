"""`python -m streams`: run one worker (the same as `twin worker`)."""

from streams.app import main

main()
