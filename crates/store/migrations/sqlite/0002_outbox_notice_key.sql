-- Refund notifications (apis.md §2.7): Alipay notifies every refund, a
-- partial one with trade_status TRADE_SUCCESS again, so one outbox row per
-- status is not enough. Each row now has the key of the change it reports:
-- the trade_status for a status change, `refund:<id>` for a refund.
-- SQLite cannot drop a table constraint: the table is rebuilt, keeping every
-- row and its id (delivery jobs name rows by id).
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    trade_id        BIGINT NOT NULL REFERENCES trades (id),
    channel_app_id  TEXT NOT NULL,
    trade_status    TEXT NOT NULL,
    notice_key      TEXT NOT NULL,
    notify_url      TEXT NOT NULL,
    fields          TEXT NOT NULL,          -- JSON array of [name, value]
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    generation      BIGINT NOT NULL,        -- bumped by each replay
    -- One notification per change a trade goes through.
    CONSTRAINT outbox_notice_unique UNIQUE (trade_id, notice_key)
);
INSERT INTO outbox_new (id, trade_id, channel_app_id, trade_status, notice_key, notify_url,
    fields, status, attempts, next_attempt_at, last_error, created_at, delivered_at, generation)
SELECT id, trade_id, channel_app_id, trade_status, trade_status, notify_url,
    fields, status, attempts, next_attempt_at, last_error, created_at, delivered_at, generation
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_status ON outbox (status, next_attempt_at);
