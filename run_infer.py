"""Predicts distances with a trained model folder (`chimpact infer`): the
program and its flags are in chimpact/commands/infer.py; --help shows them."""

from chimpact.commands import run

if __name__ == "__main__":
    run("infer")
