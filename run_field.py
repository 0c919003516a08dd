"""Predicts distances in raw survey videos (`chimpact field`): the program and its flags are in
chimpact/commands/field.py; --help shows them."""

from chimpact.commands import run

if __name__ == "__main__":
    run("field")
