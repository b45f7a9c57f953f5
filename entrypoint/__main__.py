"""``python -m entrypoint``: the same as the ``marketplace-entrypoint`` console script."""

from entrypoint.cli import main

if __name__ == "__main__":
    main()
