import sys

from ulyss_ann.cli.main import main

sys.exit(main())
