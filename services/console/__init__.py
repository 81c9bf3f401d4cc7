"""The web console: screens for on-call clinicians, hotline staff, supervisors and admins.

It keeps no state of its own: every page is made from intake's, risk's and notify's public HTTP
APIs, called with the signed-in person's own credential, so the services' access rules, scopes
and audit trail apply to what a person sees here exactly as they do to an API client.
"""
