import sys

from tiktalk.commands.main import main

sys.exit(main())
