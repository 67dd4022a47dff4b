import sys

from tiktalk.cli import main

sys.exit(main())
