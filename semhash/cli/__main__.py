"""``python -m semhash.cli``: the ``semhash`` command."""

from semhash.cli.entry import main

if __name__ == "__main__":  # pragma: no cover
    main()
