"""The platform's CrossGuard policy pack (``pack.py`` assembles it) and the facts it shares with the
program (``facts.py``). Importing the package loads nothing else: the program imports the facts
without the pack.
"""
