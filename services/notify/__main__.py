"""`python -m services.notify`"""

from services.notify.settings import NotifySettings
from shared.serve import serve

if __name__ == "__main__":
    serve("services.notify.app:create_app", NotifySettings(), service="notify")
