"""`python -m services.intake`"""

from services.intake.settings import IntakeSettings
from shared.serve import serve

if __name__ == "__main__":
    serve("services.intake.app:create_app", IntakeSettings(), service="intake")
