"""Blends trained models on their out-of-fold predictions (`chimpact ensemble`): the
program and its flags are in chimpact/commands/ensemble.py; --help shows them."""

from chimpact.commands import run

if __name__ == "__main__":
    run("ensemble")
