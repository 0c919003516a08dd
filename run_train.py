"""Trains a distance model fold by fold on sequence records (`chimpact train`): the
program and its flags are in chimpact/commands/train.py; --help shows them."""

from chimpact.commands import run

if __name__ == "__main__":
    run("train")
