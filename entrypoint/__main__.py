"""``python -m entrypoint``: the same as the ``marketplace-entrypoint`` console script."""

from entrypoint.console import main

if __name__ == "__main__":
    main()
