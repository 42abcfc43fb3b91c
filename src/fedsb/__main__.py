"""``python -m fedsb`` = the ``fedsb`` command."""

from .cli import main

if __name__ == "__main__":  # worker processes re-import this module: do not run the CLI there
    main()
