-- Refund notifications (apis.md §2.7): Alipay notifies every refund, a
-- partial one with trade_status TRADE_SUCCESS again, so one outbox row per
-- status is not enough. Each row now has the key of the change it reports:
-- the trade_status for a status change, `refund:<id>` for a refund.
ALTER TABLE outbox ADD COLUMN notice_key TEXT;
UPDATE outbox SET notice_key = trade_status;
ALTER TABLE outbox ALTER COLUMN notice_key SET NOT NULL;
ALTER TABLE outbox DROP CONSTRAINT outbox_trade_status_unique;
-- One notification per change a trade goes through.
ALTER TABLE outbox ADD CONSTRAINT outbox_notice_unique UNIQUE (trade_id, notice_key);
