import sys

from rbp.cli import main

sys.exit(main())
