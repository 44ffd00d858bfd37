"""`python -m hexadd.hub push|push-data|push-space ...`: publishing from the command line (publish.main)."""
from .publish import main

main()
