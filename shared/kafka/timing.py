"""How the consumer loop paces itself: commits, stall checks, rejoins, hand-overs."""

from __future__ import annotations

#: How long the broker holds a fetch that finds nothing (ms). A message ends the wait at once
#: (the fetch asks for one byte), so this adds no latency to a prompt topic: it sets how often
#: an idle consumer asks again (10 times a second at 100 ms, once at 1000), and each fetch that
#: runs out costs the broker more than the consumer (at 500 ms the broker took 0.3-0.4 % of a
#: core more, idle). A request to the same broker on the consumer's connection (ListOffsets for
#: the lag metric) may wait behind it up to this long, and a gathered topic's pause may end
#: that much later on an idle consumer (`_Gathering`): neither is on a page's path.
FETCH_WAIT_MS = 1000

#: How long aiokafka's background fetcher sleeps when nothing it waits on happens (ms; its
#: `consumer_timeout_ms`, 200 by default). Only a safety net: an answered fetch, a message taken
#: from its buffer, a pause lifted, a seek and a rebalance each wake it at once. At 200 ms it
#: turned five times a second in every consumer of an idle service, for nothing.
FETCHER_TIMEOUT_MS = 2000

#: How long a consumer's gathered topics (`EventConsumer`'s `gathered`: what no page waits on)
#: stay paused once they have given messages, so that what comes meanwhile is applied in one
#: poll, one transaction and one relay pass, at low rates as under load.
GATHER_MS = 200

#: How long a poll waits for messages when no offset waits to be committed (s). A message ends
#: the wait at once, a gathered topic's pause cuts it short (`_Gathering.wait`), and a stop ends
#: it at once (`EventConsumer.close`), so it only sets how often an idle consumer's loop turns
#: for nothing: twice a second at 0.5 s, in each of a replica's consumers.
IDLE_POLL_SECONDS = 2.0

#: Seconds between offset commits while messages flow (see `_Offsets`).
COMMIT_INTERVAL = 0.5
#: How long a dead consumer holds its partitions (the broker's group.min.session.timeout.ms).
CONSUMER_SESSION_TIMEOUT_MS = 6000
#: A consumer that fetched nothing this long checks that it is not stuck (see `_Progress`); 0:
#: no check. Off by default: with it, the first page after a quiet spell came one to two seconds
#: later (contract vignettes: page p50 1.0-2.6 s, 0.18-0.34 s without), whether the check ran in
#: the poll loop or beside it, and even when a client of its own asked for the log's end; why is
#: not found yet (docs/operations.md, "Failure").
STALL_SECONDS = 0.0
#: A consumer still joining its group after this long is made anew (see `EventConsumer._poll`).
REJOIN_SECONDS = 60.0
#: How long an offset commit, or the stop of a consumer, may take.
HANDOVER_SECONDS = 10.0
#: How long the commit of revoked partitions may hold up a rebalance: less than the group's
#: rebalance timeout (the session timeout), or this member would be left out of the new round.
REVOKE_COMMIT_SECONDS = 4.0
