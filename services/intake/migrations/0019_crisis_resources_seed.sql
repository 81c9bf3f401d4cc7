-- The first crisis resources: a crisis line and an emergency number for each of the United
-- States, the United Kingdom, Canada, Spain, Mexico, Ireland and Australia, with the authority
-- that publishes each. A migration runs once: an admin's later change or deletion of a seeded
-- row is never undone (a later seed migration may update only rows with `updated_by IS NULL`,
-- i.e. as seeded, by `seed_key`).
--
-- verified_at is the day the contact was checked (2026-12-06); NULL where it could not be
-- confirmed from a current page, so the row shows `stale` until an admin checks it.
INSERT INTO intake.crisis_resources
    (id, seed_key, country, region, languages, name, kind, channel, contact, keyword, note,
     hours, open_24_7, source, verified_at)
VALUES
    -- United States
    (gen_random_uuid(), 'us-988-phone', 'US', NULL, '{en,es}', '988 Suicide & Crisis Lifeline',
     'crisis_line', 'phone', '988', NULL,
     'Press 1 for the Veterans Crisis Line, 2 for Spanish (español)', NULL, true,
     'https://988lifeline.org/', '2026-12-06'),
    (gen_random_uuid(), 'us-988-sms', 'US', NULL, '{en,es}', '988 Suicide & Crisis Lifeline',
     'crisis_line', 'sms', '988', NULL, NULL, NULL, true,
     'https://988lifeline.org/', '2026-12-06'),
    (gen_random_uuid(), 'us-988-chat', 'US', NULL, '{en,es}', '988 Suicide & Crisis Lifeline',
     'crisis_line', 'chat', 'https://988lifeline.org/', NULL, 'Chat from the Lifeline''s site',
     NULL, true, 'https://988lifeline.org/', '2026-12-06'),
    (gen_random_uuid(), 'us-911', 'US', NULL, '{en}', 'Emergency services (911)',
     'emergency', 'phone', '911', NULL, NULL, NULL, true,
     'https://www.911.gov/', '2026-12-06'),
    -- United Kingdom
    (gen_random_uuid(), 'gb-samaritans-phone', 'GB', NULL, '{en}', 'Samaritans',
     'crisis_line', 'phone', '116 123', NULL, 'Free from any phone', NULL, true,
     'https://www.samaritans.org/how-we-can-help/contact-samaritan/', '2026-12-06'),
    (gen_random_uuid(), 'gb-shout-sms', 'GB', NULL, '{en}', 'Shout',
     'crisis_line', 'sms', '85258', 'SHOUT', NULL, NULL, true,
     'https://giveusashout.org/', '2026-12-06'),
    (gen_random_uuid(), 'gb-eng-nhs-111', 'GB', 'GB-ENG', '{en}', 'NHS 111 (mental health option)',
     'crisis_line', 'phone', '111', NULL, 'Choose the mental health option (option 2)', NULL,
     true,
     'https://www.nhs.uk/nhs-services/mental-health-services/where-to-get-urgent-help-for-mental-health/',
     '2026-12-06'),
    (gen_random_uuid(), 'gb-999', 'GB', NULL, '{en}', 'Emergency services (999)',
     'emergency', 'phone', '999', NULL, NULL, NULL, true,
     'https://www.nhs.uk/nhs-services/urgent-and-emergency-care-services/when-to-call-999/',
     '2026-12-06'),
    -- Canada
    (gen_random_uuid(), 'ca-988-phone', 'CA', NULL, '{en,fr}', '9-8-8: Suicide Crisis Helpline',
     'crisis_line', 'phone', '988', NULL, NULL, NULL, true,
     'https://988.ca/', '2026-12-06'),
    (gen_random_uuid(), 'ca-988-sms', 'CA', NULL, '{en,fr}', '9-8-8: Suicide Crisis Helpline',
     'crisis_line', 'sms', '988', NULL, NULL, NULL, true,
     'https://988.ca/', '2026-12-06'),
    (gen_random_uuid(), 'ca-911', 'CA', NULL, '{en,fr}', 'Emergency services (911)',
     'emergency', 'phone', '911', NULL, NULL, NULL, true,
     'https://www.canada.ca/en/public-health/services/mental-health-services/mental-health-get-help.html',
     '2026-12-06'),
    -- Spain
    (gen_random_uuid(), 'es-024', 'ES', NULL, '{es}',
     '024 Línea de atención a la conducta suicida', 'crisis_line', 'phone', '024', NULL,
     'Gratuita y confidencial; interpretación a otros idiomas', NULL, true,
     'https://www.sanidad.gob.es/linea024/', '2026-12-06'),
    (gen_random_uuid(), 'es-112', 'ES', NULL, '{es}', 'Emergencias (112)',
     'emergency', 'phone', '112', NULL, NULL, NULL, true,
     'https://digital-strategy.ec.europa.eu/en/policies/112', '2026-12-06'),
    -- Mexico
    (gen_random_uuid(), 'mx-linea-de-la-vida', 'MX', NULL, '{es}', 'Línea de la Vida (CONASAMA)',
     'crisis_line', 'phone', '800 911 2000', NULL, 'Sin costo', NULL, true,
     'https://www.gob.mx/salud/conasama', '2026-12-06'),
    (gen_random_uuid(), 'mx-911', 'MX', NULL, '{es}', 'Emergencias (911)',
     'emergency', 'phone', '911', NULL, NULL, NULL, true,
     'https://www.gob.mx/911', '2026-12-06'),
    -- Ireland
    (gen_random_uuid(), 'ie-samaritans-phone', 'IE', NULL, '{en}', 'Samaritans',
     'crisis_line', 'phone', '116 123', NULL, 'Free from any phone', NULL, true,
     'https://www.samaritans.org/ireland/how-we-can-help/contact-samaritan/', '2026-12-06'),
    (gen_random_uuid(), 'ie-pieta-phone', 'IE', NULL, '{en}', 'Pieta',
     'crisis_line', 'phone', '1800 247 247', NULL, NULL, NULL, true,
     'https://www.pieta.ie/', NULL),
    (gen_random_uuid(), 'ie-pieta-sms', 'IE', NULL, '{en}', 'Pieta',
     'crisis_line', 'sms', '51444', 'HELP', NULL, NULL, true,
     'https://www.pieta.ie/', NULL),
    (gen_random_uuid(), 'ie-112', 'IE', NULL, '{en,ga}', 'Emergency services (112)',
     'emergency', 'phone', '112', NULL, NULL, NULL, true,
     'https://www2.hse.ie/emergencies/when-to-call-112-or-999/', '2026-12-06'),
    (gen_random_uuid(), 'ie-999', 'IE', NULL, '{en,ga}', 'Emergency services (999)',
     'emergency', 'phone', '999', NULL, NULL, NULL, true,
     'https://www2.hse.ie/emergencies/when-to-call-112-or-999/', '2026-12-06'),
    -- Australia
    (gen_random_uuid(), 'au-lifeline-phone', 'AU', NULL, '{en}', 'Lifeline',
     'crisis_line', 'phone', '13 11 14', NULL, NULL, NULL, true,
     'https://www.lifeline.org.au/', '2026-12-06'),
    (gen_random_uuid(), 'au-lifeline-sms', 'AU', NULL, '{en}', 'Lifeline',
     'crisis_line', 'sms', '0477 13 11 14', NULL, NULL, NULL, true,
     'https://www.lifeline.org.au/', '2026-12-06'),
    (gen_random_uuid(), 'au-lifeline-chat', 'AU', NULL, '{en}', 'Lifeline',
     'crisis_line', 'chat', 'https://www.lifeline.org.au/crisis-chat/', NULL, NULL, NULL, true,
     'https://www.lifeline.org.au/', NULL),
    (gen_random_uuid(), 'au-000', 'AU', NULL, '{en}', 'Emergency services (000)',
     'emergency', 'phone', '000', NULL, NULL, NULL, true,
     'https://www.triplezero.gov.au/', '2026-12-06')
ON CONFLICT (seed_key) DO NOTHING;
