import sys

from server.loadgen.run import cli

sys.exit(cli())
