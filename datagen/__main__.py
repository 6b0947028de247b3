"""``python -m datagen --out DIR ...`` (same as ``yibao generate``)."""
import sys

from datagen.cli import generate_main

sys.exit(generate_main(sys.argv[1:], prog="python -m datagen"))
