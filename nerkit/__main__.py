"""``python -m nerkit`` = the ``nerkit`` command."""

from nerkit.cli import main

if __name__ == "__main__":
    main()
