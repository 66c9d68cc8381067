import sys

from exif_jax.cli import main

sys.exit(main())
