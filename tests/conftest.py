import os

os.environ.setdefault("CLIPPRO_ENV", "test")
