import sys

from crypto_assets.cli import main

sys.exit(main())
