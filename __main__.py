"""Pulumi entry point: kept thin and import-safe; the program lives in program.py."""

from program import main

if __name__ == "__main__":
    main()
