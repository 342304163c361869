-- Two indexes that no query reads, each written by every payment: entries by
-- account (balances are computed from whole journals) and trades by merchant
-- (trades are found by channel order, upstream order, trade_no or state).
DROP INDEX IF EXISTS journal_entries_account;
DROP INDEX IF EXISTS trades_merchant;
