"""A local stand-in for Twilio (SMS and voice), the embedded default of `make run` and tests.

Why its own: notify's Twilio channel is written against Twilio's documentation, and must be
runnable and testable without an account, a network or a real phone. This server answers the
part of Twilio's REST API notify uses, exactly as documented (paths, form fields, basic auth,
JSON resources, error codes), and makes Twilio's webhooks (status callbacks, the voice Url,
<Gather> actions, incoming texts) signed with X-Twilio-Signature by the official `twilio`
package. The phones on the other side are web pages, and a JSON API for tests.

Run: `python -m deploy.phones` (`make run` starts it when TWILIO_ACCOUNT_SID is unset).

Settings (environment):
    PHONES_HOST (127.0.0.1), PHONES_PORT (8005)
    PHONES_ACCOUNT_SID, PHONES_AUTH_TOKEN (required): the credentials the REST API accepts
        (HTTP basic) and the key every webhook is signed with
    PHONES_SMS_URL: the number's "A message comes in" webhook (replies typed on a phone)
    PHONES_NUMBER (+15555550100): the provider number a phone replies to when nothing reached
        it yet
    PHONES_NUMBERS: more numbers of the account, each with its own "A message comes in"
        webhook: "+15555550101=<url>,+15555550102=<url>" (PHONES_NUMBER keeps PHONES_SMS_URL).
        A phone's reply goes to the number that last texted or called it, unless the reply
        names another `To`, and is posted to that number's webhook.
    PHONES_MAX_ITEMS (50) texts and calls kept per phone; PHONES_MAX_PHONES (200) phones kept
    PHONES_WEBHOOK_TIMEOUT_SECONDS (15), PHONES_LOG_LEVEL (INFO)

Twilio's REST API (basic auth AccountSid:AuthToken; 401/20003 otherwise):
    POST /2010-04-01/Accounts/{AccountSid}/Messages.json   To, From | MessagingServiceSid,
        Body, StatusCallback -> 201 Message (status queued); then StatusCallback gets sent and
        delivered (undelivered, ErrorCode 30003, for an unreachable phone). Errors: 21604 no
        To, 21603 no From, 21606 From not one of the account's numbers, 21211 bad To,
        21602 no Body, 21617 body over 1600, 21610 opted out (the phone texted STOP).
    GET  .../Messages/{sid}.json
    POST .../Calls.json   To, From, Url (+Method) | Twiml, StatusCallback (+Method),
        StatusCallbackEvent (initiated ringing answered completed; default completed),
        MachineDetection (AnsweredBy human or machine_start), Timeout (1-600 s, default 60:
        then no-answer) -> 201 Call (status queued). Errors: 21201 no To, 21213 no From,
        21210 From not one of the account's numbers, 21211 bad To, 21205 no or bad Url (nor Twiml).
    GET  .../Calls/{sid}.json;  POST .../Calls/{sid}.json Status=canceled|completed

Pages: GET / (the phones), GET /phones/{number} (texts and calls, newest first, reply box,
call buttons).

Test API (JSON, no auth, loopback only; like the pages' forms, a browser's cross-site POST,
one with a foreign Origin, is refused with 403):
    GET  /_local/phones                      {"phones": [numbers]}
    GET  /_local/phones/{number}             {number, unreachable, opted_out_from,
        messages: [...], calls: [...]} newest first; each message is Twilio's resource plus
        "callbacks" [{kind, url, method, params, status_code, body, error}], each call also
        "transcript" (what the phone heard and did) and "waiting_for_digits"
    POST /_local/phones/{number}/reply       {"Body": "1", "To": optional provider number}
        -> the inbound message with its webhook call (the replies are in the phone's messages)
    POST /_local/phones/{number}/unreachable {"unreachable": true}
    POST /_local/phones/{number}/reports-first {"reports_first": true}: its texts' status
        callbacks are sent (and answered) before the REST API answers the send
    GET  /_local/calls/{sid}
    POST /_local/calls/{sid}/answer | machine | hangup | no-answer | busy | fail | silence
    POST /_local/calls/{sid}/press           {"Digits": "1"}
    Each call action returns once the webhooks it causes are answered (409 when it does not
    apply to the call as it is, e.g. pressing on a ringing call).

Limits: in memory and bounded; one account and its numbers; no MMS, no <Dial>, <Record>,
<Say> voices or languages; a <Gather> waits for `press` or `silence` rather than its timeout;
no retries of failed webhooks (Twilio has none by default either).
"""
