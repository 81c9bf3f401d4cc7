"""`python -m services.risk`"""

from services.risk.settings import RiskSettings
from shared.serve import serve

if __name__ == "__main__":
    serve("services.risk.app:create_app", RiskSettings(), service="risk")
