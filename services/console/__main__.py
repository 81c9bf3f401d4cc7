"""`python -m services.console`"""

from services.console.settings import ConsoleSettings
from shared.serve import serve

if __name__ == "__main__":
    serve("services.console.app:create_app", ConsoleSettings(), service="console")
