-- What /metrics counts at each scrape (services/notify/metrics.py): the alerts nobody has
-- acknowledged or resolved yet, from a small index.
CREATE INDEX alerts_open ON notify.alerts (created_at)
    WHERE status NOT IN ('acknowledged', 'resolved');
