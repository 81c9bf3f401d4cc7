"""Pages to the clinician's phone: texts and voice calls through Twilio's REST API, and what the
phone answers (a reply to a text, a key pressed in a call, the provider's status reports).

A text names the alert's level and a short code unique among the open alerts, and how to
acknowledge ("Reply 7K3Q or 1"); a call says the level and waits for a pressed 1. Only a reply
or a 1 from a phone that was paged for the alert acknowledges it, under that clinician's name.
A provider's report that a text was delivered delivers the page; a text that failed moves to
the clinician's next method at once; a call that ends without a pressed 1 (no answer, busy,
voicemail, hung up) is a failed attempt, never a delivery. Every inbound request is checked
against Twilio's signature first (api.py).
"""
