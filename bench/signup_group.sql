-- pgbench script for bench/signup_floor.sh: what PostgreSQL alone spends on
-- one signup group, with no Tidings, wrk or smtp-sink in the way. The same
-- statement as db::signups::insert on PostgreSQL (four inserts in one
-- statement, one commit per group), its values made up server-side, then
-- the outbox worker's settle of the group's emails (db::outbox::mark_sent)
-- in a transaction of its own. :group is the group size.
WITH t AS MATERIALIZED (
  SELECT gen_random_uuid()::text AS id,
         md5(random()::text) || '@bench.example' AS email,
         'Reader' AS name, '127.0.0.1' AS ip, 'wrk' AS user_agent,
         NULL::text AS source, 'form' AS method,
         encode(sha256(gen_random_uuid()::text::bytea), 'hex') AS token_hash,
         '{"nonce":"0123456789abcdef0123456789abcdef","name":"Reader"}' AS payload
  FROM generate_series(1, :group)),
p AS (SELECT 'pending'::text AS status, now()::timestamp AS now,
             'requested'::text AS event, '2026-11-01'::text AS version,
             now()::timestamp + interval '48 hours' AS expires_at,
             'sending'::text AS outbox_status, 1 AS attempts,
             now()::timestamp + interval '2 minutes' AS lease_until),
s AS (INSERT INTO subscribers (id, email, email_key, name, status, created_at,
          updated_at, last_confirmation_at)
      SELECT t.id, t.email, t.email, t.name, p.status, p.now, p.now, p.now FROM t, p
      ON CONFLICT (email_key) DO NOTHING RETURNING id),
e AS (INSERT INTO consent_events (subscriber_id, event, occurred_at, ip, user_agent,
          source, consent_text_version, method)
      SELECT t.id, p.event, p.now, t.ip, t.user_agent, t.source, p.version, t.method
      FROM t JOIN s USING (id), p),
k AS (INSERT INTO confirmation_tokens (token_hash, subscriber_id, created_at, expires_at)
      SELECT t.token_hash, t.id, p.now, p.expires_at FROM t JOIN s USING (id), p),
o AS (INSERT INTO outbox (kind, subscriber_id, recipient, payload, status, attempts,
          next_attempt_at, locked_until, created_at)
      SELECT 'confirm', t.id, t.email, t.payload, p.outbox_status, p.attempts, p.now,
             p.lease_until, p.now
      FROM t JOIN s USING (id), p RETURNING id)
SELECT quote_literal(array_agg(id)::text) AS ids FROM o \gset
UPDATE outbox SET status = 'sent', sent_at = now()::timestamp, locked_until = NULL,
    last_error = NULL
WHERE id = ANY(:ids::bigint[]);
