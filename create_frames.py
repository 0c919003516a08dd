"""Extracts frames from every camera-trap video in a folder (`chimpact frames`): the
program and its flags are in chimpact/commands/frames.py; --help shows them."""

from chimpact.commands import run

if __name__ == "__main__":
    run("frames")
