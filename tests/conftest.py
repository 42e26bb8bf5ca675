import sys
from pathlib import Path

# Tests import the program's packages (components/, offline/) the way __main__.py does.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
