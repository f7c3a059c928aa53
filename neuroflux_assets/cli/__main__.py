"""`python -m neuroflux_assets.cli`: the `neuroflux` command without its console script."""

import sys

from neuroflux_assets.cli import main

sys.exit(main())
