"""Packs extracted frames and a label table into sequence TFRecords (`chimpact records`): the
program and its flags are in chimpact/commands/records.py; --help shows them."""

from chimpact.commands import run

if __name__ == "__main__":
    run("records")
