"""``python -m trunkline``: the ``trunkline`` command line (:mod:`trunkline.cli`)."""

from trunkline.cli import main

main()
