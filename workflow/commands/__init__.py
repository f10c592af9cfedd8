"""Commands that live outside cli.py."""
