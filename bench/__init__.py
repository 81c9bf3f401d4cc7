"""`make bench`: how fast a flagged screening reaches the clinician, and how far from the floor.

An open-loop load generator posts screenings to intake on a fixed schedule, a webhook receiver
records when each signed page arrives, and in the same run the floor (two Kafka hops and one
PostgreSQL commit per message, the least work the pipeline could possibly do) is measured on the
same broker and database, so the end-to-end figures can be given as a multiple of it.
"""
