-- The deliverer claims the pages of a round 0 (first pages, escalations' pages, their retries)
-- before the repeats of unanswered pages (services/notify/delivery/queries.py, CLAIM): one index
-- each, so each half of the claim reads its due pages in order, not every pending page. They replace
-- deliveries_due, which served the single claim of before.
CREATE INDEX deliveries_first_due ON notify.deliveries (due_at)
    WHERE status = 'pending' AND repeat_round = 0;
CREATE INDEX deliveries_repeat_due ON notify.deliveries (due_at)
    WHERE status = 'pending' AND repeat_round > 0;
DROP INDEX notify.deliveries_due;
